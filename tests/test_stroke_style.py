"""Per-stroke width and ink (opacity): rasterized with gradients, optimized within range, written everywhere."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
import torch

from clipasso_core.cli import main
from clipasso_core.loss import ClipConvLoss
from clipasso_core.optimize import optimize_sketches, render
from clipasso_core.params import WIDTH_RANGE, SketchParams
from clipasso_core.raster import rasterize
from clipasso_core.sketch import initial_points, sketch_image
from clipasso_core.level import StrokeLevel
from clipasso_core.svg import read_sketch_document, sketch_document, stroke_paths
from clipasso_core.svg_xml import SVG_NS
from server.runner import result_body
from testkit.raster_reference import make_strokes
from tests.support.pictures import cup


def style_of(path: ET.Element) -> dict[str, str]:
    return dict(item.split(":", 1) for item in path.get("style", "").split(";"))


def test_opacity_multiplies_a_strokes_ink_and_full_ink_is_bit_identical():
    points = make_strokes("long", 3, (64, 64), seed=4)
    opaque = rasterize(points, 3.0, (64, 64))
    assert torch.equal(rasterize(points, torch.full((3,), 3.0), (64, 64), torch.ones(3)), opaque)
    one = points[:1]
    half = rasterize(one, 3.0, (64, 64), torch.tensor([0.5]))
    assert torch.allclose(1.0 - half, 0.5 * (1.0 - rasterize(one, 3.0, (64, 64))), atol=1e-6)
    assert torch.equal(rasterize(one, 3.0, (64, 64), torch.tensor([0.0])), torch.ones(64, 64))


def test_render_with_the_default_style_is_bit_identical_to_the_plain_render():
    points = [make_strokes("init", 4, (224, 224), seed=1)[None], make_strokes("init", 8, (224, 224), seed=2)[None]]
    plain = render(points, 3.0, 224)
    styled = render(points, 3.0, 224, [torch.full((1, 4), 3.0), torch.full((1, 8), 3.0)],
                    [torch.ones(1, 4), torch.ones(1, 8)])
    assert torch.equal(plain, styled)


@pytest.mark.parametrize("kind", ["init", "long", "loop"])
def test_width_and_opacity_gradients_match_finite_differences(kind):
    size = (64, 64)
    points = make_strokes(kind, 3, size, seed=5, dtype=torch.float64)
    weights = torch.randn(size, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    start = torch.tensor([2.0, 3.0, 4.5, 0.9, 0.4, 0.7], dtype=torch.float64)
    style = start.clone().requires_grad_(True)
    pts = points.clone().requires_grad_(True)
    (rasterize(pts, style[:3], size, style[3:]) * weights).sum().backward()

    def loss(flat: torch.Tensor) -> float:
        return float((rasterize(points, flat[:3], size, flat[3:]) * weights).sum())

    h = 1e-4
    fd = torch.tensor([(loss(start + h * e) - loss(start - h * e)) / (2 * h) for e in torch.eye(6, dtype=torch.float64)],
                      dtype=torch.float64)
    assert style.grad is not None
    assert torch.allclose(style.grad, fd, rtol=0.05, atol=1e-3 * float(fd.abs().max()))
    assert torch.isfinite(pts.grad).all()


def run(models, target, params):
    loss = ClipConvLoss(models.loss, target)
    return optimize_sketches(loss, initial_points(target, params, models), params)


def test_optimized_widths_and_opacities_change_and_stay_in_range(tiny_models, target):
    params = SketchParams(strokes=[4, 8], seeds=2, iterations=12, optimize_width=True, optimize_opacity=True,
                          width_lr=10.0, opacity_lr=1.0)
    low, high = WIDTH_RANGE[0] * params.stroke_width, WIDTH_RANGE[1] * params.stroke_width
    result = run(tiny_models, target, params)
    for level in result.levels:
        assert level.widths is not None and level.opacities is not None
        assert level.widths.shape == level.opacities.shape == (level.strokes,)
        assert bool(((level.widths >= low) & (level.widths <= high)).all())
        assert bool(((level.opacities >= 0.0) & (level.opacities <= 1.0)).all())
    widths = torch.cat([level.widths for level in result.levels])
    opacities = torch.cat([level.opacities for level in result.levels])
    assert not torch.all(widths == params.stroke_width) and not torch.all(opacities == 1.0)
    # a learning rate this large drives some values onto the bounds, where the clamp holds them
    assert bool(((widths == low) | (widths == high)).any()) and bool(((opacities == 0.0) | (opacities == 1.0)).any())


def test_style_options_are_off_by_default_and_leave_the_run_unchanged(tiny_models, target):
    params = SketchParams(strokes=[4], seeds=1, iterations=6)
    plain = run(tiny_models, target, params)
    assert plain.levels[0].widths is None and plain.levels[0].opacities is None
    again = run(tiny_models, target, params.model_copy(update={"width_lr": 5.0, "opacity_lr": 0.5}))
    assert torch.equal(plain.levels[0].points, again.levels[0].points)
    styled = run(tiny_models, target, params.model_copy(update={"optimize_width": True}))  # 3 px: free both ways
    assert not torch.equal(plain.levels[0].points, styled.levels[0].points)


def test_refine_keeps_locked_paths_style_and_styles_each_path(tiny_models):
    paths = ["M 40 40 C 80 20 120 20 160 40 C 200 60 220 120 200 160", "M 60 150 C 90 120 120 120 150 150",
             "M 230 60 L 260 120"]
    params = SketchParams(init_paths=paths, locked=[1], iterations=8, optimize_width=True, optimize_opacity=True,
                          width_lr=2.0, opacity_lr=0.3)
    (level,) = sketch_image(cup(), params, tiny_models).levels
    scale = 300 / 224
    assert level.widths is not None and level.opacities is not None
    assert len(level.widths) == len(level.opacities) == 3
    assert level.widths[1] == pytest.approx(params.stroke_width * scale) and level.opacities[1] == 1.0
    assert level.widths[0] != pytest.approx(params.stroke_width * scale)


def test_svg_and_api_result_carry_each_strokes_width_and_opacity(tiny_models):
    params = SketchParams(strokes=[4], seeds=1, iterations=6, optimize_width=True, optimize_opacity=True,
                          width_lr=2.0, opacity_lr=0.2)
    result = sketch_image(cup(), params, tiny_models)
    (level,) = result.levels
    body = result_body(result)["levels"][0]
    assert body["widths"] == pytest.approx(level.widths, abs=1e-4)
    assert body["opacities"] == pytest.approx(level.opacities, abs=1e-4)
    document = sketch_document(result.width, result.height, [level])
    paths = ET.fromstring(document).findall(f".//{{{SVG_NS}}}path")
    assert [float(style_of(p)["stroke-width"]) for p in paths] == pytest.approx(level.widths, abs=1e-3)
    assert [float(style_of(p)["stroke-opacity"]) for p in paths] == pytest.approx(level.opacities, abs=1e-3)
    (read,) = read_sketch_document(document).layers
    assert read.level.widths == pytest.approx(level.widths, abs=1e-3)


def test_plain_layers_still_write_one_width_and_full_ink():
    level = StrokeLevel(stroke_paths(make_strokes("init", 2, (50, 50), seed=0).double().numpy()), 2.5)
    paths = ET.fromstring(sketch_document(50, 50, [level])).findall(f".//{{{SVG_NS}}}path")
    assert {(style_of(p)["stroke-width"], style_of(p)["stroke-opacity"]) for p in paths} == {("2.5", "1")}


def test_cli_sketch_writes_styled_strokes_whose_score_is_the_reported_loss(tmp_path, tiny_model_args, capsys):
    image, out = tmp_path / "cup.png", tmp_path / "cup.svg"
    cup().save(image)
    assert main(["sketch", str(image), "-o", str(out), "--strokes", "4", "--seeds", "1", "--iterations", "9",
                 "--optimize-width", "--width-lr", "1.5", "--optimize-opacity", "--opacity-lr", "0.2",
                 *tiny_model_args]) == 0
    reported = float(re.search(r"4 strokes: loss ([0-9.]+)", capsys.readouterr().err).group(1))
    paths = ET.parse(out).getroot().findall(f".//{{{SVG_NS}}}path")
    assert len({style_of(p)["stroke-width"] for p in paths}) > 1
    assert any(float(style_of(p)["stroke-opacity"]) < 1.0 for p in paths)
    assert main(["score", str(image), str(out), "--json", *tiny_model_args]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == pytest.approx(reported, rel=2e-3)


@pytest.mark.parametrize("option, value", [("--width-lr", "0"), ("--opacity-lr", "-1"), ("--opacity-lr", "5")])
def test_cli_refuses_bad_learning_rates_by_their_option(tmp_path, tiny_model_args, capsys, option, value):
    image = tmp_path / "cup.png"
    cup().save(image)
    assert main(["sketch", str(image), "-o", str(tmp_path / "x.svg"), option, value, *tiny_model_args]) == 2
    assert f"invalid option: {option}:" in capsys.readouterr().err
