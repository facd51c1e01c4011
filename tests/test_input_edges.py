"""Input at the edges: numbers at the limits of float, masks of the size people draw, and refine round trips.

Every path the package reads (a mask, ``init_paths``, a layer to refine or score) goes through one parser,
which keeps coordinates within ±1e6, clamps arc radii and reads only SVG's ASCII numbers; every refusal is
a sentence about the field, never pydantic's names for the branches of a union.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, ValidationError

from clipasso_core.cli import main
from clipasso_core.image import CanvasFrame
from clipasso_core.level import StrokeLevel
from clipasso_core.mask import MaskError, mask_coverage
from clipasso_core.params import MAX_MASK_NODES, SketchParams, describe_validation_errors
from clipasso_core.path_data import PathDataError, parse_path
from clipasso_core.refine_svg import LayeredDrawing
from clipasso_core.score import choose_layer
from clipasso_core.svg import read_sketch_document, sketch_document, stroke_paths
from clipasso_core.svg_xml import user_length

FRAME = CanvasFrame(640, 360)
PYDANTIC_NAMES = ("constrained-str", "list[", "function-", "str]", "union[")


def refusal(**fields: Any) -> str:
    """The one sentence a parameter object's refusal reads as (what the CLI and the server say)."""
    with pytest.raises(ValidationError) as caught:
        SketchParams(**fields)
    return describe_validation_errors(caught.value.errors())


# -- 2. numbers at the edge of float ------------------------------------------------------------------------------

BEYOND = {
    "a mask across ±1e308": "M -1e308 0 L 1e308 360 L 0 360 Z",
    "relative steps past float": "M 0 0 l 1e308 0 l 1e308 0 l 0 10 Z",
    "a large arc of radius 1e300": "M 10 10 A 1e300 1e300 0 1 1 100 100 Z",
}


@pytest.mark.parametrize("d", BEYOND.values(), ids=BEYOND.keys())
def test_coordinates_beyond_the_bound_are_refused_in_words_everywhere(d):
    with pytest.raises(MaskError, match=r"beyond ±1,000,000"):
        mask_coverage(d, FRAME)
    assert "beyond ±1,000,000" in refusal(mask=d)
    assert "beyond ±1,000,000" in refusal(init_paths=[d.removesuffix(" Z")])


def test_arcs_of_huge_or_tiny_radius_draw_as_svg_says():
    (straight,) = parse_path("M 10 10 A 1e300 1e300 0 0 1 100 100")
    assert np.allclose(straight.segments[-1, 3], [100, 100])
    chord = np.array([1.0, 1.0]) / math.sqrt(2)
    off_chord = np.abs((straight.segments.reshape(-1, 2) - 10) @ np.array([-chord[1], chord[0]]))
    assert off_chord.max() < 1e-3  # a circle that large is the straight line between the end points
    for tiny in ("1e-300 1e-300", "5e-324 5e-324", "1e-12 1e-12"):  # radii too small: scaled up to a half circle
        (half,) = parse_path(f"M 10 10 A {tiny} 0 0 1 100 100")
        (reference,) = parse_path("M 10 10 A 1 1 0 0 1 100 100")
        np.testing.assert_allclose(half.segments, reference.segments, atol=1e-6)
    params = SketchParams(init_paths=["M 10 10 A 1e300 1e300 0 0 1 100 100", "M 0 0 A 1e-300 1e-300 0 0 1 5 5"])
    assert len(params.init_paths) == 2


def test_a_sliver_inside_the_image_is_too_thin_not_outside():
    with pytest.raises(MaskError) as caught:
        mask_coverage("M 10.2 10 L 10.201 10 L 10.201 200 L 10.2 200 Z", FRAME)
    assert "too thin" in str(caught.value) and "outside" not in str(caught.value)
    with pytest.raises(MaskError, match="outside the image"):
        mask_coverage("M 999000 999000 h 0.5 v 0.5 h -0.5 Z", FRAME)  # far away, with an area measured as such


def test_numbers_are_svg_numbers_in_ascii():
    with pytest.raises(PathDataError, match="expected a number"):
        parse_path("M ١٠ ١٠ L 20 20")  # Arabic-Indic digits
    assert "mask" in refusal(mask="M ١٠ ١٠ L ٢٠ ٢٠ L 5 20 Z")
    assert "strokes" in refusal(strokes="٤,٨")  # int() alone would read them as 4 and 8
    assert user_length("\u00a012") is None and user_length(" 12px ") == 12.0  # SVG's white space is ASCII


# -- 8. masks people draw ----------------------------------------------------------------------------------------

def traced_outline(nodes: int, centre=(320.0, 180.0), radius: float = 150.0) -> str:
    """A closed outline of ``nodes`` cubic nodes around a circle, written the way Inkscape writes a traced path."""
    angles = np.linspace(0.0, 2 * math.pi, nodes + 1)
    points = np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], axis=1)
    steps = np.diff(points, axis=0)
    cubic = " ".join(f"{a / 3:.4f},{b / 3:.4f} {2 * a / 3:.4f},{2 * b / 3:.4f} {a:.4f},{b:.4f}" for a, b in steps)
    return f"m {points[0, 0]:.4f},{points[0, 1]:.4f} c {cubic} z"


def test_a_traced_outline_of_twenty_thousand_nodes_is_a_mask():
    outline = traced_outline(20_000)
    assert len(outline) > 100_000  # more than one path field of init_paths may hold
    params = SketchParams(mask=outline)
    coverage = mask_coverage(params.mask, FRAME)
    area = float(coverage.sum()) * FRAME.scale ** 2
    assert area == pytest.approx(math.pi * 150.0 ** 2, rel=0.01)


def test_a_mask_beyond_the_node_limit_is_refused_naming_the_limit():
    message = refusal(mask=["M 0 0 H 10 V 10 Z", traced_outline(MAX_MASK_NODES)])
    assert message.startswith("mask: ") and f"{MAX_MASK_NODES:,} nodes" in message and "shape 1" in message


@pytest.mark.parametrize("mask", [5, True, {"d": "M 0 0"}, ["M 0 0 H 5 V 5 Z", 5], [], " ", "x" * 4_000_001,
                                  ["M 0 0 H 5 V 5 Z", "C 1 1"]],
                         ids=["number", "boolean", "object", "list with a number", "empty list", "blank", "too long",
                              "list with bad path data"])
def test_mask_refusals_are_one_sentence_about_the_mask(mask):
    message = refusal(mask=mask)
    assert message.startswith("mask: ") and message.count("mask") >= 1
    assert not any(name in message for name in PYDANTIC_NAMES), message
    assert len(message) < 300


class _Union(BaseModel):
    value: int | list[int]


def test_any_union_field_is_named_without_pydantic_branch_names():
    with pytest.raises(ValidationError) as caught:
        _Union(value="many")
    message = describe_validation_errors(caught.value.errors())
    assert message.startswith("value: ") and message.count("value") == 1 and "list[" not in message, message


# -- 9. refine round trips ---------------------------------------------------------------------------------------

SKETCH_POINTS = np.array([[[5, 5], [10, 8], [15, 12], [20, 20]], [[30, 5], [25, 10], [20, 15], [10, 25]],
                          [[5, 25], [12, 22], [20, 18], [35, 10]], [[8, 3], [16, 9], [24, 15], [32, 27]]], float)


def sketch_text(edited: str | None = None) -> str:
    """A 40×30 sketch with levels of 2 and 4 strokes; ``edited`` replaces the 2-stroke level's first path,
    as a designer's edit in Inkscape writes it (relative, several segments)."""
    two = StrokeLevel(stroke_paths(SKETCH_POINTS[:2]), 1.5)
    if edited is not None:
        two = StrokeLevel((edited, two.paths[1]), 1.5)
    return sketch_document(40, 30, [two, StrokeLevel(stroke_paths(SKETCH_POINTS), 1.5)])


def test_score_reads_a_whole_file_with_an_edited_layer(tmp_path, tiny_model_args, capsys):
    Image.new("RGB", (40, 30), "white").save(tmp_path / "target.png")
    sketch = tmp_path / "sketch.svg"
    sketch.write_text(sketch_text(edited="m 5,5 c 2,1 4,3 6,6 s 5,5 9,9 l 3,-4 q 2,2 4,0 a 3,3 0 0 1 5,0"))
    for level in ("4", "2"):  # the untouched level, then the edited one
        assert main(["score", str(tmp_path / "target.png"), str(sketch), "--level", level, "--json",
                     *tiny_model_args]) == 0, capsys.readouterr().err
        assert math.isfinite(json.loads(capsys.readouterr().out)["total"])
    sketch.write_text(sketch_text(edited="M 5 5 Q"))  # an unreadable level fails only when it is the one scored
    assert main(["score", str(tmp_path / "target.png"), str(sketch), "--level", "4", *tiny_model_args]) == 0
    capsys.readouterr()
    assert main(["score", str(tmp_path / "target.png"), str(sketch), "--level", "2", *tiny_model_args]) == 1
    error = capsys.readouterr().err
    assert "'2 strokes'" in error and "Traceback" not in error and error.count("\n") == 1


def test_a_level_after_a_refine_is_the_refined_layer_on_top():
    drawing = LayeredDrawing(sketch_text(), 40, 30)
    original = drawing.find_layer(level=4)
    strokes = drawing.strokes(original)
    moved = StrokeLevel(tuple(d.replace("M 5 5", "M 6 6") for d in strokes.paths), 1.5)
    label = drawing.add_refined(original, strokes, moved)
    refined = drawing.find_layer(level=4)
    assert refined is not original and refined.get("{http://www.inkscape.org/namespaces/inkscape}label") == label
    document = read_sketch_document(drawing.to_string())
    chosen = choose_layer(document, 4)
    assert chosen.label == label and chosen.stroke_level().paths[0].startswith("M 6 6")
