"""Masks: only what lies inside is sketched — the target is white outside and first points start inside."""

import io
import math

import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from clipasso_core.cli import main
from clipasso_core.image import CanvasFrame, read_image
from clipasso_core.mask import MaskError, mask_coverage
from clipasso_core.mask_svg import read_mask_svg
from clipasso_core.params import SketchParams, describe_validation_errors
from clipasso_core.sketch import initial_points, masked_canvas, sketch_image

SQUARE = "M 100 100 H 300 V 300 H 100 Z"  # a 200-px square; on a 448-px square image it is 100 canvas px wide


def canvas_area(mask, width=448, height=448):
    return float(mask_coverage(mask, CanvasFrame(width, height)).sum())


def test_coverage_is_the_area_of_the_shape_on_the_canvas():
    assert canvas_area(SQUARE) == pytest.approx(100 * 100, rel=1e-3)
    circle = "m 224 24 a 200 200 0 1 0 0 400 a 200 200 0 1 0 0 -400 z"  # relative commands and arcs
    assert canvas_area(circle) == pytest.approx(math.pi * 100 ** 2, rel=3e-3)


def test_fill_is_nonzero_and_a_list_is_a_union():
    outer, inner_reversed = "M 0 0 H 400 V 400 H 0 Z", "M 100 100 V 300 H 300 V 100 Z"
    assert canvas_area(f"{outer} {SQUARE}") == pytest.approx(200 * 200)  # same direction: still filled
    assert canvas_area(f"{outer} {inner_reversed}") == pytest.approx(200 * 200 - 100 * 100)  # a hole
    assert canvas_area([outer, inner_reversed]) == pytest.approx(200 * 200)  # separate shapes: union


def black_picture(width=448, height=224):
    return Image.new("RGB", (width, height), "black")


def test_the_target_is_white_outside_the_mask_and_unchanged_inside():
    target, frame, coverage = masked_canvas(black_picture(), "M 0 0 H 224 V 224 H 0 Z")  # the left half
    # the 448×224 picture fills canvas rows 56..168; the mask covers its left half: columns 0..112
    assert float(target[:, 60:164, 2:110].max()) < 0.02
    assert float(target[:, 60:164, 114:].min()) > 0.98 and float(target[:, :54].min()) > 0.98
    unmasked, _, none = masked_canvas(black_picture(), None)
    assert none is None and float(unmasked[:, 60:164, 114:].max()) < 0.02


def test_transparency_still_counts_as_white_with_a_mask():
    picture = Image.new("RGBA", (448, 448), (0, 0, 0, 255))
    picture.paste((0, 0, 0, 0), (0, 0, 448, 224))  # the top half is transparent
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    target, _, _ = masked_canvas(read_image(buffer.getvalue()), "M 0 0 H 224 V 448 H 0 Z")  # the left half
    assert float(target[:, 2:110, 2:110].min()) > 0.98  # transparent, inside the mask
    assert float(target[:, 114:222, 2:110].max()) < 0.02  # opaque black, inside the mask
    assert float(target[:, 114:222, 114:].min()) > 0.98  # opaque black, outside the mask


@pytest.mark.parametrize("attention_init", [True, False])
def test_first_points_are_sampled_only_inside_the_mask(tiny_models, attention_init):
    picture = Image.new("RGB", (448, 448), "white")
    picture.paste((0, 0, 0), (300, 300, 420, 420))  # the salient object is outside the mask
    target, _, coverage = masked_canvas(picture, SQUARE)
    params = SketchParams(strokes=[8, 32], seeds=3, attention_init=attention_init)
    inside = coverage >= 0.5
    for points in initial_points(target, params, tiny_models, inside).values():
        first = points[:, :, 0]  # [seeds, S, 2] canvas pixels
        assert float(first.min()) > 50 and float(first.max()) < 150  # the square spans canvas 50..150
    unmasked = initial_points(target, params, tiny_models)[32][:, :, 0]
    assert bool(((unmasked < 50) | (unmasked > 150)).any())  # without a mask some start outside


def test_a_masked_job_runs_and_returns_strokes(tiny_models):
    result = sketch_image(black_picture(), SketchParams(strokes=[4], seeds=1, iterations=2, mask=SQUARE), tiny_models)
    assert result.levels[0].strokes == 4 and result.levels[0].single_cubics


@pytest.mark.parametrize("mask, message", [
    ("M 0 0 L 100 100", "encloses no area"),
    ("M 500 0 H 600 V 100 H 500 Z", "outside the image"),
    ("M 0 -100 H 100 V -10 H 0 Z", "outside the image"),  # on the canvas, but in the padding above the picture
])
def test_a_mask_that_covers_nothing_of_the_image_is_refused(mask, message):
    with pytest.raises(MaskError, match=message):
        mask_coverage(mask, CanvasFrame(448, 224))


@pytest.mark.parametrize("mask, message", [
    ("", "give SVG path data"),
    (" ", "give SVG path data"),
    ([], "give SVG path data"),
    ("M 0 0 Q", "cannot be read"),
    ("L 10 10", "must start with a move"),
])
def test_an_empty_or_invalid_mask_is_refused_by_name(mask, message):
    with pytest.raises(ValidationError) as caught:
        SketchParams(mask=mask)
    text = describe_validation_errors(caught.value.errors())
    assert text.startswith("mask") and message in text


MASK_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="448" height="448" viewBox="0 0 448 448">
  <defs><rect width="448" height="448"/></defs>
  <g transform="translate(100 200)">
    <g transform="rotate(90)"><rect x="-100" y="-100" width="200" height="100" transform="scale(1 2)"/></g>
  </g>
  <circle cx="10" cy="10" r="5" style="fill:none;stroke:black"/>
  <ellipse cx="400" cy="400" rx="20" ry="10" fill="red" style="display:none"/>
</svg>"""


def test_an_svg_masks_with_its_filled_shapes_and_their_transforms():
    shapes = read_mask_svg(MASK_SVG)
    assert len(shapes) == 1  # defs, unfilled and hidden shapes do not count
    expected = mask_coverage(SQUARE, CanvasFrame(448, 448))
    assert torch.allclose(mask_coverage(shapes, CanvasFrame(448, 448)), expected)


@pytest.mark.parametrize("text, message", [
    ("<svg", "not valid SVG"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><circle r="4" fill="none"/></svg>', "no filled shape"),
])
def test_an_svg_without_a_usable_shape_is_refused(text, message):
    with pytest.raises(MaskError, match=message):
        read_mask_svg(text)


def test_cli_mask_errors_are_one_sentence(tmp_path, capsys):
    picture = tmp_path / "picture.png"
    black_picture().save(picture)
    outside = tmp_path / "outside.svg"
    outside.write_text('<svg xmlns="http://www.w3.org/2000/svg"><rect x="900" y="0" width="50" height="50"/></svg>')
    for mask, message in [(outside, "lies outside the image (448×224 pixels)"), (tmp_path / "none.svg", "Cannot read"),
                          (tmp_path, "is a folder")]:
        assert main(["sketch", str(picture), "-o", str(tmp_path / "x.svg"), "--mask", str(mask)]) == 1
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error
    assert not (tmp_path / "x.svg").exists()


def test_cli_sketch_with_a_mask_file(tmp_path, tiny_model_args, capsys):
    picture = tmp_path / "picture.png"
    black_picture().save(picture)
    mask = tmp_path / "mask.svg"
    mask.write_text(MASK_SVG)
    out = tmp_path / "masked.svg"
    assert main(["sketch", str(picture), "-o", str(out), "--mask", str(mask), "--strokes", "4", "--seeds", "1",
                 "--iterations", "2", *tiny_model_args]) == 0
    assert out.exists() and "4 strokes: loss" in capsys.readouterr().err
