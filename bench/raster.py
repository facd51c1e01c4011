"""Benchmark of ``clipasso_core.raster.rasterize``: forward + backward time against one CLIP RN101 step.

Usage (from the repository root): ``python -m bench.raster [--device cpu|cuda] [--threads 1,2] [--repeats R] [--accuracy]``

For each thread count it prints, per scene (CLIPasso-init-like strokes and 30-120 px "long" arcs; 4-64 strokes at
224 x 224, 32/64 at 512 x 512), the median forward + backward time of the rasterizer, the median time of one
RN101 forward + backward w.r.t. a batch of 5 input images at 224 x 224 (random weights, frozen) measured in the
same run, and the ratio. Where ``pydiffvg`` is importable, diffvg's time (2 x 2 samples, seed 0) for the same
curves is printed too. ``--accuracy`` adds the image MAE against a 16 x 16-sample supersampled reference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from clipasso_core.raster import rasterize
from testkit.raster_reference import make_strokes, reference_render

try:  # optional: diffvg is not on PyPI
    import pydiffvg
except ImportError:
    pydiffvg = None

WIDTH = 3.0  # full stroke width (diffvg half-width 1.5, CLIPasso's default)
SCENES = [(kind, num, 224) for kind in ("init", "long") for num in (4, 8, 16, 32, 64)]
SCENES += [(kind, num, 512) for kind in ("init", "long") for num in (32, 64)]


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(step: Callable[[], None], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``step`` in milliseconds."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _ours_step(points: torch.Tensor, size: int) -> Callable[[], None]:
    """One forward + backward of ``rasterize`` on :math:`(S, 4, 2)` points."""
    weights = torch.randn(size, size, generator=torch.Generator().manual_seed(0)).to(points.device)

    def step() -> None:
        pts = points.detach().requires_grad_(True)
        (rasterize(pts, WIDTH, (size, size)) * weights).sum().backward()

    return step


def _diffvg_step(points: torch.Tensor, size: int) -> Callable[[], None]:
    """One forward + backward of diffvg (2 x 2 samples, seed 0, half-width ``WIDTH / 2``) on the same curves."""
    pydiffvg.set_use_gpu(points.is_cuda)
    weights = torch.randn(size, size, generator=torch.Generator().manual_seed(0)).to(points.device)

    def step() -> None:
        pts = points.detach().requires_grad_(True)
        shapes = [
            pydiffvg.Path(
                num_control_points=torch.tensor([2]),
                points=pts[i],
                stroke_width=torch.tensor(WIDTH / 2),
                is_closed=False,
            )
            for i in range(pts.shape[0])
        ]
        groups = [
            pydiffvg.ShapeGroup(
                shape_ids=torch.tensor([i]), fill_color=None, stroke_color=torch.tensor([0.0, 0.0, 0.0, 1.0])
            )
            for i in range(pts.shape[0])
        ]
        args = pydiffvg.RenderFunction.serialize_scene(size, size, shapes, groups)
        rgba = pydiffvg.RenderFunction.apply(size, size, 2, 2, 0, None, *args)
        alpha = rgba[:, :, 3:4]
        gray = (alpha * rgba[:, :, :3] + (1 - alpha)).mean(-1)
        (gray * weights).sum().backward()

    return step


def _rn101_step(device: torch.device) -> Callable[[], None]:
    """One forward + backward w.r.t. the input of a frozen random-weight CLIP RN101 on 5 images of 224^2."""
    import open_clip

    model = open_clip.create_model("RN101", pretrained=None).visual.to(device).eval().requires_grad_(False)
    images = torch.rand(5, 3, 224, 224, device=device)

    def step() -> None:
        x = images.detach().requires_grad_(True)
        model(x).square().sum().backward()

    return step


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", default="1,2", help="comma-separated torch intra-op thread counts")
    parser.add_argument("--repeats", type=int, default=21, help="timed repeats of the rasterizer")
    parser.add_argument("--rn101-repeats", type=int, default=3, help="timed repeats of the RN101 step")
    parser.add_argument("--accuracy", action="store_true", help="also print MAE vs a 16x16-spp reference")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, stroke width {WIDTH} px, diffvg: {pydiffvg is not None}")

    for threads in [int(n) for n in args.threads.split(",")]:
        torch.set_num_threads(threads)
        rn101 = _median_ms(_rn101_step(device), device, args.rn101_repeats, warmup=1)
        print(f"\n== torch.set_num_threads({threads}); RN101 fwd+bwd, 5 x 224^2, frozen: {rn101:.0f} ms (median)")
        header = f"{'scene':>6} {'S':>3} {'size':>4} | {'ours ms':>8} {'% RN101':>8}"
        header += f" | {'diffvg ms':>9}" if pydiffvg is not None else ""
        header += f" | {'MAE':>7}" if args.accuracy else ""
        print(header)
        for kind, num, size in SCENES:
            points = make_strokes(kind, num, (size, size), seed=0).to(device)
            ours = _median_ms(_ours_step(points, size), device, args.repeats)
            row = f"{kind:>6} {num:>3} {size:>4} | {ours:8.2f} {100 * ours / rn101:7.2f}%"
            if pydiffvg is not None:
                row += f" | {_median_ms(_diffvg_step(points, size), device, 3, warmup=1):9.1f}"
            if args.accuracy:
                image = rasterize(points.double(), WIDTH, (size, size)).cpu()
                row += f" | {(image - reference_render(points, WIDTH, (size, size))).abs().mean():7.5f}"
            print(row)


if __name__ == "__main__":
    main()
