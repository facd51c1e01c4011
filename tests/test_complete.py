"""Completing a drawing (add_strokes), keeping every stroke on the picture, and tidying a level: library and CLI
(the API's add_strokes and tidy are in test_refine.py, beside the refine API)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pydantic import ValidationError

from clipasso_core.cli import main
from clipasso_core.image import CanvasFrame, to_canvas
from clipasso_core.level import StrokeLevel
from clipasso_core.optimize import SketchBatch
from clipasso_core.params import SketchParams
from clipasso_core.path_data import parse_path, transform_subpaths
from clipasso_core.saliency import uncovered
from clipasso_core.sketch import refine_start, sketch_image
from clipasso_core.svg import sketch_document
from clipasso_core.svg_transform import parse_transform, svg_matrix
from clipasso_core.svg_xml import CLIPASSO_NS, INKSCAPE_NS, SODIPODI_NS, SVG_NS
from clipasso_core.tidy import tidy_level
from tests.support.pictures import CURVE, LOCKED, picture

LABEL = f"{{{INKSCAPE_NS}}}label"
ADDED = f"{{{CLIPASSO_NS}}}added"
LEFT_OUT = f"{{{CLIPASSO_NS}}}left-out"


def dark_picture(width: int, height: int) -> Image.Image:
    """A dark picture with a light ring: its whole border is an edge, where the saliency init likes to start strokes."""
    image = Image.new("RGB", (width, height), (40, 40, 40))
    ImageDraw.Draw(image).ellipse((width * 0.25, height * 0.2, width * 0.75, height * 0.8), outline="white", width=5)
    return image


def control_points(level: StrokeLevel) -> np.ndarray:
    """Every control point ``[K, 2]`` of a level's paths, in the image's pixels."""
    return np.concatenate([level.segments(index).reshape(-1, 2) for index in range(level.strokes)])


def assert_on_picture(points: np.ndarray, width: float, height: float, slack: float = 1e-3) -> None:
    low, high = points.min(axis=0), points.max(axis=0)
    assert low[0] >= -slack and high[0] <= width + slack and low[1] >= -slack and high[1] <= height + slack, (low, high)


OFF_THE_PICTURE = "M 10 -30 C 60 -10 90 20 140 10"
"""A designer's stroke that starts above the picture's top edge (in a wide picture's padding)."""


@pytest.mark.parametrize("size", [(320, 120), (120, 320)], ids=["wide", "tall"])
@pytest.mark.parametrize("job", ["sketch", "refine"])
def test_no_control_point_ever_leaves_a_wide_or_tall_picture(tiny_models, monkeypatch, size, job):
    width, height = size
    image = dark_picture(width, height)
    frame = CanvasFrame(width, height)
    left, top, right, bottom = frame.picture_box()
    evaluated: list[torch.Tensor] = []
    record = SketchBatch.record

    def checked_record(batch: SketchBatch, terms: torch.Tensor) -> None:
        for points in batch.segments(batch.points):  # the strokes every eval sees, on the canvas
            evaluated.append(points.detach().reshape(-1, 2).clone())
        record(batch, terms)

    monkeypatch.setattr(SketchBatch, "record", checked_record)
    extra = {"init_paths": [OFF_THE_PICTURE, CURVE], "add_strokes": 6} if job == "refine" else {"strokes": [6, 12]}
    params = SketchParams(seeds=2, iterations=8, eval_interval=1, lr=4.0, seed=7, **extra)
    snapshots = []
    result = sketch_image(image, params, tiny_models, snapshot=snapshots.append)
    assert evaluated and snapshots
    for points in evaluated:
        assert float(points[:, 0].min()) >= left and float(points[:, 0].max()) <= right
        assert float(points[:, 1].min()) >= top and float(points[:, 1].max()) <= bottom
    for level in [level for snapshot in snapshots for level in snapshot.levels] + result.levels:
        assert_on_picture(control_points(level), width, height)


def test_uncovered_weighs_placement_down_where_the_ink_lies():
    ink = torch.zeros(64, 64)
    ink[30:34, 10:30] = 1.0
    weighted = uncovered(None, ink)
    assert float(weighted[32, 20]) == 0.0, "the most inked pixel gets no stroke"
    assert float(weighted[32, 33]) < float(weighted[32, 50]), "near the ink less likely than far from it"
    assert float(weighted[5, 60]) == pytest.approx(float(weighted[60, 5]))
    assert float(weighted.sum()) == pytest.approx(1.0)
    salient = torch.zeros(64, 64, dtype=torch.float64)
    salient[32, 20] = salient[10, 50] = 0.5
    assert torch.equal(uncovered(salient, ink).nonzero(), torch.tensor([[10, 50]])), "saliency still decides"


def two_rings() -> Image.Image:
    image = Image.new("RGB", (320, 160), "white")
    draw = ImageDraw.Draw(image)
    for left in (20, 180):
        draw.ellipse((left, 20, left + 120, 140), outline="black", width=6)
    return image


def ring_strokes(left: float) -> list[str]:
    """Eight strokes tracing the ring at ``left`` of :func:`two_rings` (a designer's drawing of it)."""
    paths, reach = [], 60 * 4 / 3 * np.tan(np.pi / 16)  # a cubic's handles for an eighth of a circle of radius 60
    for k in range(8):
        a, b = 2 * np.pi * k / 8, 2 * np.pi * (k + 1) / 8
        points = [(left + 60 + 60 * np.cos(a), 80 + 60 * np.sin(a)),
                  (left + 60 + 60 * np.cos(a) - reach * np.sin(a), 80 + 60 * np.sin(a) + reach * np.cos(a)),
                  (left + 60 + 60 * np.cos(b) + reach * np.sin(b), 80 + 60 * np.sin(b) - reach * np.cos(b)),
                  (left + 60 + 60 * np.cos(b), 80 + 60 * np.sin(b))]
        x0, y0, x1, y1, x2, y2, x3, y3 = (f"{v:.2f}" for point in points for v in point)
        paths.append(f"M {x0} {y0} C {x1} {y1} {x2} {y2} {x3} {y3}")
    return paths


def test_added_strokes_start_where_the_picture_is_salient_and_the_drawing_leaves_it_uncovered(tiny_models):
    image = two_rings()
    target, frame = to_canvas(image)
    params = SketchParams(init_paths=ring_strokes(20), add_strokes=24, seeds=2, attention_init=True)
    start = refine_start(params, frame, target, tiny_models, frame.picture_pixels())
    assert start.layout.shape.segments == (1,) * 32
    added = start.layout.segments(start.points)[:, 8:]
    assert added.shape == (2, 24, 4, 2)
    first = frame.to_source(added[:, :, 0].double())
    on_the_right = (first[..., 0] > 160).double().mean()
    assert on_the_right >= 0.9, f"only {on_the_right:.0%} of the new strokes start on the ring not yet drawn"
    assert not torch.equal(added[0], added[1]), "each attempt places its own"


def test_a_completed_drawing_keeps_every_locked_stroke_and_returns_the_added_ones_last(tiny_models):
    params = SketchParams(init_paths=[CURVE, LOCKED], locked=[0, 1], add_strokes=5, iterations=4)
    assert params.strokes == [7]
    level = sketch_image(picture(), params, tiny_models).levels[0]
    assert level.strokes == 7 and level.added == 5
    assert level.paths[:2] == (CURVE, LOCKED), "every stroke locked: only the new ones move"
    assert [level.is_added(index) for index in range(7)] == [False] * 2 + [True] * 5
    assert all(len(parse_path(d)[0].segments) == 1 for d in level.paths[2:]), "an added stroke is one cubic"


@pytest.mark.parametrize("values, field, mentions", [
    ({"add_strokes": 3}, "", "add_strokes needs init_paths"),
    ({"init_paths": [CURVE], "add_strokes": -1}, "add_strokes", "greater than or equal to 0"),
    ({"init_paths": [CURVE], "add_strokes": 3, "strokes": [1]}, "", "one per added stroke (4 in all)"),
    ({"init_paths": [CURVE], "add_strokes": 256}, "strokes", "between 1 and 256"),
    ({"init_paths": [CURVE], "locked": [0]}, "locked", "unlock at least one or add strokes"),
    ({"tidy": "yes"}, "tidy", "valid boolean"),
])
def test_bad_add_strokes_or_tidy_are_named(values, field, mentions):
    with pytest.raises(ValidationError) as caught:
        SketchParams(**values)
    error = caught.value.errors()[0]
    assert ".".join(map(str, error["loc"])) == field and mentions in error["msg"]


def test_tidy_leaves_out_specks_and_near_duplicates_but_never_the_kept_paths():
    speck = "M 50 50 C 51 50 51 51 50 51"
    stroke = "M 10 10 C 40 20 60 40 90 90"
    backwards_copy = "M 90.5 90 C 60 40.5 40 20 10 10.5"
    other = "M 10 90 C 40 70 60 50 90 10"
    level = StrokeLevel((speck, stroke, backwards_copy, other, speck), 2.0, widths=(1, 2, 3, 4, 5), added=3)
    tidied = tidy_level(level, 100, 100)
    assert tidied.paths == (stroke, other) and tidied.widths == (2, 4) and tidied.left_out == 3
    assert tidied.added == 1, "one of the added strokes is kept"
    kept = tidy_level(level, 100, 100, keep=3)
    assert kept.paths == (speck, stroke, backwards_copy, other) and kept.left_out == 1
    assert tidy_level(StrokeLevel((speck,), 2.0), 100, 100).paths == (speck,), "a level keeps at least one stroke"


@pytest.fixture(scope="module")
def wide_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("complete") / "wide.png"
    dark_picture(300, 120).save(path)
    return path


def hand_drawn_svg(locked: bool) -> str:
    """An Inkscape drawing over a 300×120 picture: three strokes in a moved layer, in mm at 1 px = 0.5 mm."""
    lock = ' sodipodi:insensitive="true"' if locked else ""
    return f"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
     xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd" width="150mm" height="60mm"
     viewBox="0 0 150 60">
  <g id="layer1" inkscape:groupmode="layer" inkscape:label="Layer 1" transform="translate(5,2)">
    <path id="p1" d="M 20 10 C 30 5 40 5 50 10" style="fill:none;stroke:#aa0000;stroke-width:1"{lock}/>
    <path id="p2" d="m 60 40 c 10 5 20 5 30 0" style="fill:none;stroke:#aa0000;stroke-width:1"{lock}/>
    <path id="p3" d="M 100 20 L 120 30 L 110 45" style="fill:none;stroke:#aa0000;stroke-width:1"{lock}/>
  </g>
</svg>"""


def test_cli_refine_adds_strokes_to_a_hand_drawn_drawing_and_marks_them(wide_png, tmp_path, tiny_model_args, capsys):
    drawing, out = tmp_path / "drawing.svg", tmp_path / "completed.svg"
    drawing.write_text(hand_drawn_svg(locked=True))
    status = main(["refine", str(wide_png), str(drawing), "-o", str(out), "--add", "13", "--iterations", "4",
                   *tiny_model_args])
    assert status == 0, capsys.readouterr().err
    assert "13 added" in capsys.readouterr().err
    root = ET.fromstring(out.read_text())
    old, new = [g for g in root.iter(f"{{{SVG_NS}}}g") if g.get(f"{{{INKSCAPE_NS}}}groupmode") == "layer"]
    assert new.get(LABEL) == "16 strokes (completed)" and "display:none" in old.get("style")
    paths = new.findall(f"{{{SVG_NS}}}path")
    assert len(paths) == 16 and [p.get(ADDED) for p in paths] == [None] * 3 + ["true"] * 13
    assert all(p.get(f"{{{SODIPODI_NS}}}insensitive") == "true" for p in paths[:3])
    before, after = user_space_points(old), user_space_points(new)
    for original, kept in zip(before, after[:3]):
        assert np.allclose(original, kept, atol=1e-6), "the designer's strokes are untouched"
    assert all("stroke:#aa0000" in p.get("style") for p in paths), "added strokes take the designer's colour"
    # No stroke lies outside the picture: 0..150 × 0..60 user units (its 300 × 120 pixels at 0.5 mm).
    assert_on_picture(np.concatenate(after), 150, 60)


def user_space_points(layer: ET.Element) -> list[np.ndarray]:
    """The control points ``[K, 2]`` of each path of ``layer`` in root user units (the layer's transform applied)."""
    matrix = svg_matrix(parse_transform(layer.get("transform")))
    return [np.concatenate([subpath.segments.reshape(-1, 2) for subpath in transform_subpaths(parse_path(p.get("d")),
                                                                                              matrix)])
            for p in layer.findall(f"{{{SVG_NS}}}path")]


def test_cli_refine_refuses_every_stroke_locked_without_add(wide_png, tmp_path, tiny_model_args, capsys):
    drawing = tmp_path / "drawing.svg"
    drawing.write_text(hand_drawn_svg(locked=True))
    assert main(["refine", str(wide_png), str(drawing), "-o", str(tmp_path / "x.svg"), *tiny_model_args]) == 1
    assert "unlock at least one to refine, or add strokes with --add" in capsys.readouterr().err


def test_cli_tidy_records_how_many_strokes_each_level_left_out(wide_png, tmp_path, tiny_model_args, capsys):
    out = tmp_path / "tidy.svg"
    assert main(["sketch", str(wide_png), "-o", str(out), "--strokes", "4,24", "--seeds", "1", "--iterations", "3",
                 "--tidy", *tiny_model_args]) == 0
    layers = [g for g in ET.fromstring(out.read_text()).iter(f"{{{SVG_NS}}}g") if g.get(LEFT_OUT) is not None]
    assert len(layers) == 2
    for layer in layers:
        held = len(layer.findall(f"{{{SVG_NS}}}path"))
        assert layer.get(LABEL) == f"{held} strokes", "the label says what the layer holds"
        assert held + int(layer.get(LEFT_OUT)) in (4, 24)
    plain = tmp_path / "plain.svg"
    assert main(["sketch", str(wide_png), "-o", str(plain), "--strokes", "4", "--seeds", "1", "--iterations", "3",
                 *tiny_model_args]) == 0
    assert LEFT_OUT not in plain.read_text() and "left-out" not in plain.read_text()


def test_a_tidied_level_with_left_out_strokes_is_written_and_read_by_the_count_it_holds():
    level = StrokeLevel(("M 1 2 C 3 4 5 6 7 8",) * 3, 2.0, left_out=5)
    root = ET.fromstring(sketch_document(100, 100, [level]))
    (layer,) = [g for g in root.iter(f"{{{SVG_NS}}}g")]
    assert (layer.get(LABEL), layer.get(LEFT_OUT), layer.get("id")) == ("3 strokes", "5", "level-8")


def test_cli_refine_names_a_bad_add_count_as_its_option(wide_png, tmp_path, tiny_model_args, capsys):
    drawing = tmp_path / "drawing.svg"
    drawing.write_text(hand_drawn_svg(locked=False))
    assert main(["refine", str(wide_png), str(drawing), "-o", str(tmp_path / "x.svg"), "--add", "-1",
                 *tiny_model_args]) == 2
    assert "invalid option: --add:" in capsys.readouterr().err
