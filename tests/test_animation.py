"""The run as an animation: SVG (SMIL), GIF and MP4 replay the snapshots and end on the result."""

from __future__ import annotations

import io
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from clipasso_core.animation import animation_file, animation_frames, animation_gif, animation_svg, check_format
from clipasso_core.errors import AnimationError
from clipasso_core.level import StrokeLevel
from clipasso_core.snapshot import SketchSnapshot
from clipasso_core.svg import stroke_paths
from clipasso_core.svg_xml import SVG_NS


def run(frames: int = 5, width: int = 80, height: int = 60) -> list[SketchSnapshot]:
    """Snapshots of a made-up run: level 1 is one stroke sliding right, level 2 two strokes growing."""
    snapshots = []
    for step in range(frames):
        shift = 40.0 * step / max(1, frames - 1)
        one = np.array([[[5 + shift, 30], [10 + shift, 20], [20 + shift, 20], [25 + shift, 30]]], dtype=float)
        two = np.array([[[10, 10], [20, 10], [30, 10], [30 + shift, 10]], [[10, 50], [30, 50], [50, 50], [50, 50]]],
                       dtype=float)
        levels = (StrokeLevel(stroke_paths(one), 2.0, loss=1.0 - step * 0.1), StrokeLevel(stroke_paths(two), 2.0))
        snapshots.append(SketchSnapshot(step * 10, width, height, levels))
    return snapshots


def test_svg_animates_every_stroke_from_the_first_snapshot_to_the_result_without_script():
    snapshots = run()
    root = ET.fromstring(animation_svg(snapshots))
    assert root.find(f".//{{{SVG_NS}}}script") is None
    groups = root.findall(f"{{{SVG_NS}}}g")
    assert [g.get("id") for g in groups] == ["level-1", "level-2"]
    assert [len(g.findall(f"{{{SVG_NS}}}path")) for g in groups] == [1, 2]
    path = groups[0].find(f"{{{SVG_NS}}}path")
    animate = path.find(f"{{{SVG_NS}}}animate")
    values = animate.get("values").split(";")
    assert values[0] == snapshots[0].levels[0].paths[0]
    assert values[-1] == values[-2] == snapshots[-1].levels[0].paths[0] == path.get("d")
    key_times = [float(t) for t in animate.get("keyTimes").split(";")]
    assert len(key_times) == len(values) and key_times == sorted(key_times) and key_times[0] == 0 and key_times[-1] == 1
    assert animate.get("repeatCount") == "indefinite" and animate.get("attributeName") == "d"
    assert [t.text for t in root.findall(f"{{{SVG_NS}}}text")] == ["1 strokes", "2 strokes"]


def test_svg_for_a_browser_fits_its_window_and_a_file_keeps_its_pixel_size():
    in_pixels = ET.fromstring(animation_svg(run()))
    fitted = ET.fromstring(animation_svg(run(), fit_window=True))
    width, height = (float(in_pixels.get(name)) for name in ("width", "height"))
    assert in_pixels.get("viewBox") == fitted.get("viewBox") == f"0 0 {width:g} {height:g}"
    assert fitted.get("width") == "100%" and fitted.get("height") is None, "scaled to the window, aspect kept"
    assert ET.tostring(fitted.find(f"{{{SVG_NS}}}g")) == ET.tostring(in_pixels.find(f"{{{SVG_NS}}}g"))


def ink_at(image: Image.Image, x: float, y: float, radius: int = 2) -> bool:
    grey = np.asarray(image.convert("L"))
    x, y = round(x), round(y)
    return bool((grey[y - radius:y + radius + 1, x - radius:x + radius + 1] < 128).any())


def test_frames_draw_the_strokes_where_they_are():
    snapshots = run()
    frames = animation_frames(snapshots, side=80)  # scale 1: panel 1 starts at x = 16, y = 16
    first, last = frames[0], frames[-1]
    # Level 1's stroke midpoint (t = 0.5) is at x = 13.75 + shift, y = 23.75 in the image.
    assert ink_at(first, 16 + 13.75, 16 + 23.75) and not ink_at(first, 16 + 53.75, 16 + 23.75)
    assert ink_at(last, 16 + 53.75, 16 + 23.75) and not ink_at(last, 16 + 13.75, 16 + 23.75)
    # Level 2 sits in the second panel.
    assert ink_at(first, 16 + 80 + 16 + 30, 16 + 50)


def test_gif_has_one_frame_per_snapshot_holds_the_result_and_loops():
    snapshots = run(frames=6)
    with Image.open(io.BytesIO(animation_gif(snapshots))) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6 and gif.info.get("loop") == 0
        pictures, durations = [], []
        for index in range(gif.n_frames):
            gif.seek(index)
            pictures.append(np.asarray(gif.convert("L")))
            durations.append(gif.info["duration"])
    assert durations[-1] > durations[0]
    assert not np.array_equal(pictures[0], pictures[-1])
    expected = np.asarray(animation_frames(snapshots)[-1].convert("L"))
    assert np.abs(pictures[-1].astype(int) - expected).mean() < 2


def test_formats_are_checked_before_a_run(tmp_path, monkeypatch):
    for name in ("a.svg", "b.GIF"):
        check_format(tmp_path / name)
    with pytest.raises(AnimationError, match=r"\.gif, \.svg or \.mp4"):
        check_format(tmp_path / "c.avi")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if the mp4 extra were not installed
    with pytest.raises(AnimationError, match=r"clipasso-inkscape\[mp4\]"):
        check_format(tmp_path / "d.mp4")
    with pytest.raises(AnimationError, match="imageio-ffmpeg"):
        animation_file(run(), ".mp4")


def test_mp4_is_a_video_when_the_extra_is_installed(capfd):
    pytest.importorskip("imageio_ffmpeg", reason="the optional mp4 extra (imageio-ffmpeg) is not installed")
    data = animation_file(run(frames=3), ".mp4")
    assert data[4:8] == b"ftyp" and len(data) > 1000
    assert capfd.readouterr().err == ""  # ffmpeg's own chatter stays off the user's terminal


def test_nothing_to_animate_is_a_clear_error():
    with pytest.raises(AnimationError, match="no snapshot"):
        animation_svg([])


def styled_run(frames: int = 4) -> list[SketchSnapshot]:
    """A made-up run whose two strokes keep still while one gets wide and the other fades out."""
    points = np.array([[[10, 15], [30, 15], [50, 15], [70, 15]], [[10, 45], [30, 45], [50, 45], [70, 45]]], dtype=float)
    snapshots = []
    for step in range(frames):
        grow = step / (frames - 1)
        level = StrokeLevel(stroke_paths(points), 2.0, widths=(2.0 + 8.0 * grow, 2.0), opacities=(1.0, 1.0 - grow))
        snapshots.append(SketchSnapshot(step * 10, 80, 60, (level,)))
    return snapshots


def test_svg_replays_each_strokes_own_width_and_ink():
    root = ET.fromstring(animation_svg(styled_run()))
    wide, faint = root.find(f"{{{SVG_NS}}}g").findall(f"{{{SVG_NS}}}path")
    assert "stroke-width:10;" in wide.get("style") and "stroke-opacity:0" in faint.get("style")
    replays = {a.get("attributeName"): a.get("values").split(";") for a in wide.findall(f"{{{SVG_NS}}}animate")}
    assert [float(v) for v in replays["stroke-width"]][0] == 2 and float(replays["stroke-width"][-1]) == 10
    fading = {a.get("attributeName"): a.get("values").split(";") for a in faint.findall(f"{{{SVG_NS}}}animate")}
    assert float(fading["stroke-opacity"][0]) == 1 and float(fading["stroke-opacity"][-1]) == 0
    plain = ET.fromstring(animation_svg(run()))  # a run without them animates only the path data
    assert {a.get("attributeName") for a in plain.iter(f"{{{SVG_NS}}}animate")} == {"d"}


def test_frames_draw_each_strokes_own_width_and_ink():
    frames = animation_frames(styled_run(), side=80)  # scale 1: panel 1 starts at x = 16, y = 16
    first, last = frames[0], frames[-1]

    def column(image, x):
        return np.asarray(image.convert("L"))[:, 16 + x]

    # The first stroke (y = 15) thickens from 2 to 10 px; the second (y = 45) fades from black to nothing.
    assert (column(first, 40)[16 + 5:16 + 25] < 128).sum() <= 3 and (column(last, 40)[16 + 5:16 + 25] < 128).sum() >= 8
    assert column(first, 40)[16 + 45] < 64 and column(last, 40)[16 + 43:16 + 48].min() > 200
