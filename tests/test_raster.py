"""Tests of the differentiable stroke rasterizer against a brute-force supersampled reference."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clipasso_core.raster import PairCapacity, _pairs, pair_capacity, rasterize, rasterize_within
from testkit.raster_reference import SCENE_KINDS, make_strokes, reference_render

CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")])


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Run on one intra-op thread: these small ops gain nothing from more, and on a busy machine OpenMP waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ink(image: torch.Tensor) -> float:
    """Total ink of an image in px^2."""
    return float((1.0 - image).sum())


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two flat tensors."""
    return float((a * b).sum() / (a.norm() * b.norm()))


def _weights(size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Fixed random per-pixel loss weights :math:`(H, W)`, float64."""
    return torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("num", [4, 16, 64])
@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_image_matches_supersampled_reference(kind: str, num: int) -> None:
    points = make_strokes(kind, num, seed=num)
    image = rasterize(points)
    reference = reference_render(points)
    assert image.shape == (224, 224) and image.dtype == torch.float32
    assert (image - reference).abs().mean() <= 0.004
    # and the error is not hidden by a mostly blank canvas: ink totals agree within 2 %
    assert _ink(image) == pytest.approx(_ink(reference), rel=0.02)


def test_collinear_evenly_spaced_points_draw_the_full_line() -> None:
    points = torch.tensor([[[20.0, 100.0], [80.0, 100.0], [140.0, 100.0], [200.0, 100.0]]])
    image = rasterize(points)
    assert image[99:101, 20:200].max() < 1e-3  # the two rows the 3 px line fully covers, end to end
    assert _ink(image) == pytest.approx(180 * 3 + math.pi * 1.5**2, rel=0.005)


@pytest.mark.parametrize("width", [2.0, 3.0, 8.0])
def test_coincident_points_draw_a_round_dot(width: float) -> None:
    points = torch.full((1, 4, 2), 50.3)
    image = rasterize(points, width, (100, 100))
    assert _ink(image) == pytest.approx(math.pi * (width / 2) ** 2, rel=0.02)
    ink = 1.0 - image
    centre = torch.arange(100) + 0.5
    centroid = (float((ink.sum(0) * centre).sum() / ink.sum()), float((ink.sum(1) * centre).sum() / ink.sum()))
    assert centroid == pytest.approx((50.3, 50.3), abs=0.02)
    assert ((image < 1).sum(0) > 0).sum() == math.ceil(50.3 + width / 2) - math.floor(50.3 - width / 2)


DEGENERATE = {
    "centres on the curve": [[10.5, 20.5], [20.5, 20.5], [30.5, 20.5], [40.5, 20.5]],
    "dot on a pixel centre": [[30.5, 30.5]] * 4,
    "coincident inner points": [[5.0, 5.0], [5.0, 5.0], [25.0, 40.0], [25.0, 40.0]],
    "cusp": [[10.0, 10.0], [40.0, 40.0], [10.0, 40.0], [40.0, 10.0]],
    "huge off canvas": [[1e4, 1e4], [2e4, -1e4], [3e4, 1e4], [1e4, 2e4]],
    "huge crossing": [[-1e4, 20.0], [0.0, 1e4], [0.0, -1e4], [1e4, 30.0]],
    "on the border": [[0.0, 0.0], [0.0, 20.0], [0.0, 40.0], [0.0, 63.0]],
}


@pytest.mark.parametrize("width", [0.01, 0.3, 3.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_strokes_give_finite_images_and_gradients(case: str, dtype: torch.dtype, width: float) -> None:
    points = torch.tensor([DEGENERATE[case]], dtype=dtype, requires_grad=True)
    stroke_width = torch.tensor(width, dtype=dtype, requires_grad=True)
    image = rasterize(points, stroke_width, (64, 64))
    (image * _weights((64, 64)).to(dtype)).sum().backward()
    assert torch.isfinite(image).all() and torch.isfinite(points.grad).all() and torch.isfinite(stroke_width.grad)
    assert image.min() >= 0 and image.max() <= 1


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_degenerate_strokes_agree_across_devices(device: str) -> None:
    points = torch.tensor(list(DEGENERATE.values()))  # one sketch holding all the cases
    results = []
    for dev in ["cpu", device]:
        pts = points.detach().to(dev).requires_grad_(True)
        image = rasterize(pts, 3.0, (64, 64))
        (image * _weights((64, 64)).float().to(dev)).sum().backward()
        assert torch.isfinite(image).all() and torch.isfinite(pts.grad).all()
        results.append((image.cpu(), pts.grad.cpu()))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-4)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-3, rtol=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    coords=st.lists(st.sampled_from([-3.0, 0.0, 0.5, 1.0, 7.5, 8.0, 15.5, 16.0, 40.0, 1e5]), min_size=8, max_size=8),
    width=st.sampled_from([0.05, 1.0, 3.0, 25.0]),
)
def test_no_nan_or_inf_for_any_control_points(coords: list[float], width: float) -> None:
    points = torch.tensor(coords).view(1, 4, 2).requires_grad_(True)
    image = rasterize(points, width, (16, 16))
    image.sum().backward()
    assert torch.isfinite(image).all() and torch.isfinite(points.grad).all()
    assert image.min() >= 0 and image.max() <= 1


def test_blank_canvas_without_strokes() -> None:
    points = torch.zeros(2, 0, 4, 2, requires_grad=True)
    image = rasterize(points, 3.0, (30, 40))
    assert image.shape == (2, 30, 40) and (image == 1).all()
    image.sum().backward()  # still part of the graph
    assert points.grad.shape == points.shape


def test_strokes_outside_the_canvas_draw_nothing_and_cost_nothing() -> None:
    points = torch.stack([make_strokes("long", 8, seed=1) + torch.tensor([300.0, 0.0]), 1e4 + make_strokes("init", 8)])
    assert (rasterize(points) == 1).all()
    stroke = _pairs(points.view(-1, 4, 2), torch.full((16,), 1.5), 8, 224, 224).stroke
    assert stroke.numel() == 0


def test_work_scales_with_ink_not_canvas() -> None:
    points = make_strokes("init", 4, seed=2) + 900.0
    start = time.perf_counter()
    image = rasterize(points, 3.0, (2048, 2048))
    assert time.perf_counter() - start < 1.0
    pairs = _pairs(points, torch.full((4,), 1.5), 4, 2048, 2048).stroke.numel()
    assert pairs < 4 * 300  # a short 3 px stroke covers well under 300 pixels
    assert pairs >= _ink(image)


def test_wider_strokes_give_proportionally_more_ink() -> None:
    size = (128, 128)
    points = make_strokes("long", 6, size, seed=3)
    ink = {width: _ink(rasterize(points, width, size)) for width in [1.0, 2.0, 4.0, 8.0]}
    for width in ink:
        assert ink[width] == pytest.approx(_ink(reference_render(points, width, size)), rel=0.01)
        assert 0.9 * width <= ink[width] / ink[1.0] <= 1.05 * width  # length x width, less overlaps


def test_per_stroke_widths() -> None:
    points = make_strokes("long", 6, seed=4)
    widths = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    together = rasterize(points, widths)
    alone = torch.stack([rasterize(points[i : i + 1], float(w)) for i, w in enumerate(widths)])
    assert torch.allclose(together, alone.prod(0), atol=1e-5)


def test_values_stay_in_unit_interval_under_heavy_overlap() -> None:
    points = make_strokes("long", 64, (32, 32), seed=5)
    image = rasterize(points, 6.0, (32, 32))
    assert image.min() >= 0 and image.max() <= 1
    assert image.min() < 1e-5  # fully inked pixels are (numerically) black


def test_batch_equals_separate_renders() -> None:
    points = torch.stack([make_strokes(kind, 16, seed=i) for i, kind in enumerate(["init", "long", "loop"])])
    batch = rasterize(points)
    assert batch.shape == (3, 224, 224)
    for i in range(3):
        assert torch.equal(batch[i], rasterize(points[i]))
    nested = rasterize(torch.stack([points, points.flip(0)]))
    assert nested.shape == (2, 3, 224, 224)
    assert torch.equal(nested[0], batch) and torch.equal(nested[1, 0], batch[2])


def test_gradient_of_batch_equals_separate_gradients() -> None:
    points = torch.stack([make_strokes("init", 8, seed=7), make_strokes("long", 8, seed=8)]).requires_grad_(True)
    weights = torch.randn(2, 224, 224, generator=torch.Generator().manual_seed(0))
    (rasterize(points) * weights).sum().backward()
    for i in range(2):
        single = points[i].detach().requires_grad_(True)
        (rasterize(single) * weights[i]).sum().backward()
        assert torch.equal(points.grad[i], single.grad)


@pytest.mark.parametrize(
    ("kind", "num", "size"), [("init", 4, (40, 40)), ("long", 3, (96, 96)), ("loop", 2, (96, 96))]
)
def test_gradient_matches_finite_difference_of_reference(kind: str, num: int, size: tuple[int, int]) -> None:
    """Autograd of sum(w * I) against a central difference (h = 0.25 px) of the 16x16-spp reference."""
    points = make_strokes(kind, num, size, seed=0, dtype=torch.float64)
    weights = _weights(size)
    pts = points.clone().requires_grad_(True)
    (rasterize(pts, 3.0, size) * weights).sum().backward()
    fd = torch.zeros(points.numel(), dtype=torch.float64)
    h = 0.25
    for i in range(points.numel()):
        step = torch.zeros(points.numel(), dtype=torch.float64)
        step[i] = h
        step = step.view_as(points)
        plus = (reference_render(points + step, 3.0, size) * weights).sum()
        minus = (reference_render(points - step, 3.0, size) * weights).sum()
        fd[i] = (plus - minus) / (2 * h)
    assert _cosine(pts.grad.flatten(), fd) >= 0.95
    assert 0.8 <= float(pts.grad.norm() / fd.norm()) <= 1.3  # h = 0.25 smooths the difference a little


@pytest.mark.parametrize("kind", ["init", "long", "loop", "line"])
def test_gradient_matches_own_finite_difference(kind: str) -> None:
    size = (64, 64)
    points = make_strokes(kind, 3, size, seed=11, dtype=torch.float64)
    width = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    weights = _weights(size, 1)
    pts = points.clone().requires_grad_(True)
    (rasterize(pts, width, size) * weights).sum().backward()
    grad = torch.cat([pts.grad.flatten(), width.grad.view(1)])

    def loss(flat: torch.Tensor) -> float:
        return float((rasterize(flat[:-1].view_as(points), flat[-1], size) * weights).sum())

    flat = torch.cat([points.flatten(), torch.tensor([3.0], dtype=torch.float64)])
    h = 1e-4
    fd = torch.stack([torch.tensor(loss(flat + h * e) - loss(flat - h * e)) / (2 * h) for e in torch.eye(flat.numel())])
    assert _cosine(grad, fd) >= 0.99
    assert float(grad[-1]) == pytest.approx(float(fd[-1]), rel=0.05)


def test_width_gradient_matches_reference() -> None:
    points = make_strokes("long", 4, (96, 96), seed=2, dtype=torch.float64)
    width = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    rasterize(points, width, (96, 96)).sum().backward()
    fd = (_ink(reference_render(points, 2.75, (96, 96))) - _ink(reference_render(points, 3.25, (96, 96)))) / 0.5
    assert float(width.grad) == pytest.approx(fd, rel=0.03)


@pytest.mark.parametrize("threads", [1, 2])
def test_cpu_results_are_bit_identical(threads: int) -> None:
    torch.set_num_threads(threads)
    points = torch.cat([make_strokes("long", 24, seed=3), make_strokes("init", 24, seed=4)])
    weights = _weights((224, 224)).float()
    results = []
    for _ in range(2):
        pts = points.clone().requires_grad_(True)
        image = rasterize(pts)
        (image * weights).sum().backward()
        results.append((image, pts.grad))
    torch.set_num_threads(1)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_devices_agree(device: str) -> None:
    points = torch.stack([make_strokes("init", 32, seed=5), make_strokes("long", 32, seed=6)])
    weights = torch.randn(2, 224, 224, generator=torch.Generator().manual_seed(0))
    results = []
    for dev in ["cpu", device]:
        pts = points.detach().to(dev).requires_grad_(True)
        image = rasterize(pts)
        assert image.device.type == dev
        (image * weights.to(dev)).sum().backward()
        results.append((image.cpu(), pts.grad.cpu()))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-4)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-3, rtol=1e-3)


def _render_and_gradients(render, points: torch.Tensor, widths: torch.Tensor, opacity: torch.Tensor,
                          weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Image and gradients (points, widths, opacity) of ``render(points, widths, opacity)`` under fixed weights."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (points, widths, opacity)]
    image = render(*leaves)
    (image * weights).sum().backward()
    return (image.detach(), *(leaf.grad for leaf in leaves))


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_fixed_capacity_render_equals_the_exact_one(device: str) -> None:
    points = torch.stack([make_strokes("init", 16, seed=7), make_strokes("long", 16, seed=8)]).to(device)
    widths = torch.linspace(1.0, 6.0, 32).view(2, 16).to(device)
    opacity = torch.linspace(0.2, 1.0, 32).view(2, 16).to(device)
    weights = torch.randn(2, 224, 224, generator=torch.Generator().manual_seed(1)).to(device)
    exact = pair_capacity(points, widths)
    roomy = exact.scaled(1.5)
    assert roomy.holds(exact) and not exact.scaled(0.5).holds(exact)

    expected = _render_and_gradients(lambda p, w, o: rasterize(p, w, opacity=o), points, widths, opacity, weights)
    needed = []

    def within(p: torch.Tensor, w: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        image, sizes = rasterize_within(p, roomy, w, opacity=o)
        needed.append(PairCapacity(*sizes.tolist()))
        return image

    got = _render_and_gradients(within, points, widths, opacity, weights)
    assert needed == [exact]
    for want, have in zip(expected, got):
        if device == "cpu":  # the same pairs in the same order: the same sums, bit for bit
            assert torch.equal(want, have)
        else:  # atomics sum in any order
            assert torch.allclose(want, have, atol=1e-5, rtol=1e-4)


def test_a_capacity_too_small_reports_what_it_needed_and_drops_ink() -> None:
    points = make_strokes("long", 24, seed=9)
    exact = pair_capacity(points)
    for short in (exact._replace(candidates=exact.candidates // 2), exact._replace(keys=exact.keys // 2),
                  exact._replace(pairs=exact.pairs // 2)):
        image, sizes = rasterize_within(points, short)
        needed = PairCapacity(*sizes.tolist())
        assert needed[:2] == exact[:2] and not short.holds(needed)
        assert torch.isfinite(image).all() and _ink(image) < _ink(rasterize(points))


def test_fixed_capacity_without_strokes_is_a_blank_canvas() -> None:
    image, needed = rasterize_within(torch.zeros(2, 0, 4, 2), PairCapacity(1024, 1024, 1024), size=(32, 32))
    assert torch.equal(image, torch.ones(2, 32, 32)) and needed.tolist() == [0, 0, 0]
    no_room = rasterize_within(make_strokes("init", 4, (32, 32), seed=1), PairCapacity(0, 0, 1024), size=(32, 32))
    assert torch.equal(no_room[0], torch.ones(32, 32)) and no_room[1][0] > 0  # it drew nothing and says why
    off_canvas = torch.full((1, 3, 4, 2), -1e4)
    image, needed = rasterize_within(off_canvas, PairCapacity(1024, 1024, 1024), size=(32, 32))
    assert torch.equal(image, torch.ones(1, 32, 32)) and needed.tolist() == [0, 0, 0]
