"""Time per sketch-iteration: our batched loop vs a paper-faithful naive loop, measured in the same run.

The naive loop is how the original code spends an iteration: CLIP weights not frozen (autograd also
computes their gradients), the target recomputed through the network together with the sketch on
every step, one sketch at a time. Ours runs every level and seed of a job as one batch with frozen
weights and reuses the target's features. Both compute the same loss (1 clean + K augmented pairs).
Prints both times, their ratio, and the rasterizer's share of our iteration.

    python -m bench.iteration [--device cpu|cuda] [--strokes 4,8,16,32] [--seeds 3] [--iterations 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import open_clip
import torch
from PIL import Image, ImageDraw

from clipasso_core.image import to_canvas
from clipasso_core.augment import sample_augmentations
from clipasso_core.loss import ClipConvLoss
from clipasso_core.models import ClipEncoder, load_encoder
from clipasso_core.optimize import optimize_sketches, render
from clipasso_core.params import CANVAS_SIZE, SketchParams
from clipasso_core.saliency import initial_strokes


def target_image() -> torch.Tensor:
    """A simple drawing to sketch: ``[3, 224, 224]``."""
    image = Image.new("RGB", (480, 360), "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((140, 90, 320, 300), radius=30, fill=(215, 70, 55), outline="black", width=6)
    draw.ellipse((70, 270, 410, 340), outline="navy", width=5)
    return to_canvas(image)[0]


def random_encoder(name: str, device: torch.device) -> ClipEncoder:
    """An open_clip image tower with random weights (no download needed), frozen, in eval mode."""
    visual = open_clip.create_model(name).visual.to(device).eval().requires_grad_(False)
    return ClipEncoder(visual, 224, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so host clocks measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ours(encoder: ClipEncoder, target: torch.Tensor, initial: dict[int, torch.Tensor],
              params: SketchParams, device: torch.device, warmup: int) -> float:
    """Median seconds per job iteration of :func:`optimize_sketches`, after ``warmup`` iterations."""
    stamps: list[float] = []

    def stamp(_progress: object) -> None:
        synchronize(device)
        stamps.append(time.perf_counter())

    optimize_sketches(ClipConvLoss(encoder, target), initial, params, progress=stamp)
    return statistics.median(b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:]))


def time_naive(encoder: ClipEncoder, target: torch.Tensor, initial: dict[int, torch.Tensor],
               params: SketchParams, device: torch.device, warmup: int) -> float:
    """Median seconds per sketch-iteration of the naive loop, after ``warmup`` iterations.

    It runs the first seed of every level (the job's mix of stroke counts): the naive loop's cost per
    sketch does not depend on how many sketches there are.
    """
    visual = encoder.visual.requires_grad_(True)
    loss = ClipConvLoss(encoder, target)
    generator = torch.Generator().manual_seed(params.seed)
    sketches = [points[:1].to(device).clone().requires_grad_(True) for points in initial.values()]
    optimizers = [torch.optim.Adam([points], lr=params.lr) for points in sketches]
    times = []
    try:
        for _ in range(params.iterations):
            synchronize(device)
            start = time.perf_counter()
            for points, optimizer in zip(sketches, optimizers):
                optimizer.zero_grad(set_to_none=True)
                image = render([points], params.stroke_width, CANVAS_SIZE)
                clean = torch.cat([image, loss.target])
                augmented = sample_augmentations(params.augmentations, CANVAS_SIZE, generator)(clean)
                features = loss.features(torch.cat([clean, augmented]))  # sketch and target, with grad, every step
                total = 0.0
                for tap, weight in ((features.layer2, 1.0), (features.layer3, 1.0)):
                    total = total + weight * (tap[0::2] - tap[1::2]).pow(2).mean()
                cosine = torch.cosine_similarity(features.embedding[0::2], features.embedding[1::2])
                total = total + 0.1 * (1 - cosine).mean()
                visual.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
            synchronize(device)
            times.append((time.perf_counter() - start) / len(sketches))
    finally:
        visual.requires_grad_(False)
    return statistics.median(times[warmup:])


def time_raster(initial: dict[int, torch.Tensor], params: SketchParams, device: torch.device,
                repeats: int = 10) -> float:
    """Median seconds for one forward + backward render of every sketch of the job."""
    points = [p.to(device).clone().requires_grad_(True) for p in initial.values()]
    weights = torch.rand(sum(p.shape[0] for p in points), 3, CANVAS_SIZE, CANVAS_SIZE, device=device)
    times = []
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        (render(points, params.stroke_width, CANVAS_SIZE) * weights).sum().backward()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    """Parse options, run both loops on the same job, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--strokes", default="4,8,16,32")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per loop")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed iterations first (on a CPU, a large batch takes ~5 steps to reach its pace)")
    parser.add_argument("--model", default="RN101", help="loss network (random weights unless --weights)")
    parser.add_argument("--weights", help="checkpoint file or pretrained tag to load instead of random weights")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    params = SketchParams(strokes=args.strokes, seeds=args.seeds, iterations=args.warmup + args.iterations)
    if args.weights:
        weights = args.weights if args.weights in open_clip.list_pretrained_tags_by_model(args.model) else None
        encoder = load_encoder(args.model, weights, None if weights else args.weights, device, "--weights")
    else:
        encoder = random_encoder(args.model, device)
    target = target_image().to(device)
    initial = {
        count: torch.stack([initial_strokes(None, count, seed, CANVAS_SIZE) for seed in params.sketch_seeds()])
        for count in params.strokes
    }
    sketches = len(params.strokes) * params.seeds
    ours_iteration = time_ours(encoder, target, initial, params, device, max(1, args.warmup))
    ours = ours_iteration / sketches
    naive = time_naive(encoder, target, initial, params, device, max(1, args.warmup))
    raster = time_raster(initial, params, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; loss network {args.model}; job: strokes {params.strokes} × {params.seeds} seeds "
          f"= {sketches} sketches, {1 + params.augmentations} pairs each")
    print(f"{'loop':<34}{'s / job-iteration':>20}{'s / sketch-iteration':>22}")
    print(f"{'naive (paper code, one sketch)':<34}{naive * sketches:>20.4f}{naive:>22.4f}")
    print(f"{'ours (batched, frozen, reused)':<34}{ours_iteration:>20.4f}{ours:>22.4f}")
    print(f"ratio ours / naive: {ours / naive:.3f} (target on CPU: ≤ 0.4; floor with 5 pairs ≈ 0.33)")
    print(f"rasterizer (fwd + bwd, all sketches): {raster * 1000:.1f} ms = {100 * raster / ours_iteration:.1f} % "
          "of our iteration")


if __name__ == "__main__":
    main()
