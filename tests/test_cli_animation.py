"""``clipasso sketch --animation``: the run written as a GIF, SVG or MP4, with the format checked before the run."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

import pytest
from PIL import Image, ImageDraw

from clipasso_core.cli import main
from clipasso_core.svg_xml import SVG_NS


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("animation") / "ring.png"
    image = Image.new("RGB", (90, 60), "white")
    ImageDraw.Draw(image).ellipse((20, 10, 70, 50), outline="black", width=5)
    image.save(path)
    return path


def sketch(picture, tmp_path, tiny_model_args, animation):
    return main(["sketch", str(picture), "-o", str(tmp_path / "out.svg"), "--strokes", "2,3", "--seeds", "1",
                 "--iterations", "25", "--animation", str(animation), *tiny_model_args])


def test_gif_animation_has_a_frame_per_snapshot(picture, tmp_path, tiny_model_args, capsys):
    assert sketch(picture, tmp_path, tiny_model_args, tmp_path / "run.gif") == 0
    assert re.search(r"\d+/25 \[\d\d:\d\d<\d\d:\d\d", capsys.readouterr().err)  # the bar shows elapsed<time left
    assert (tmp_path / "out.svg").is_file()
    with Image.open(tmp_path / "run.gif") as gif:
        assert gif.n_frames == 4  # steps 0, 10, 20 and the end (25)


def test_svg_animation_moves_every_stroke_of_every_level(picture, tmp_path, tiny_model_args):
    assert sketch(picture, tmp_path, tiny_model_args, tmp_path / "run.svg") == 0
    root = ET.parse(tmp_path / "run.svg").getroot()
    animations = root.findall(f".//{{{SVG_NS}}}animate")
    assert len(animations) == 5
    assert all(len(a.get("values").split(";")) == 5 for a in animations)  # 4 snapshots + the hold


@pytest.mark.parametrize("name, message", [("run.avi", ".gif, .svg or .mp4"), ("run.mp4", "clipasso-inkscape[mp4]")])
def test_unwritable_format_fails_before_the_run(picture, tmp_path, tiny_model_args, capsys, monkeypatch, name,
                                                 message):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # the mp4 extra is not installed
    assert sketch(picture, tmp_path, tiny_model_args, tmp_path / name) == 1
    err = capsys.readouterr().err
    assert message in err and "Loading CLIP models" not in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out.svg").exists() and not (tmp_path / name).exists()
