"""Time per sketch-iteration: our batched loop in fp32 and in the default precision vs a paper-style loop, one run.

The paper-style loop is how the original code spends an iteration, in fp32: the CLIP tower as open_clip
builds it (BatchNorms, default layout), its weights not frozen (autograd also computes their gradients),
the target recomputed through the network together with the sketch on every step, one sketch at a time.
Ours runs every level and seed of a job as one batch through the tower as the loader prepares it (frozen,
BatchNorms folded, channels_last), reuses the target's features and augments with one sampling grid, once
in ``fp32`` and once in ``auto`` (bf16 where the CPU or GPU computes it natively). All compute the same
loss (1 clean + K augmented pairs), with the same random weights. Prints the times, their ratios to the
paper-style loop, the rasterizer's share of our iteration, and on CUDA the paper job's time at this pace.
On CUDA our loop runs as replayed CUDA graphs (the default) and once more eagerly (``auto``, no graphs),
and the rasterizer is timed with exact buffers, with fixed ones, and replayed as a graph.
``--paper-job`` also runs the whole paper job (2000 steps) once and prints its wall time.

It also prints the sketch-steps (one sketch's forward and backward pass in one step) of each quality preset's
job, with and without its pick. ``--pick-job N`` times a job of N steps shaped like ``balanced`` (every
attempt until the eval step nearest a quarter of the steps, then each level's best one) against the same
job without the pick, one after the other in this run.

``--clock process`` times CPU seconds of this process instead of wall seconds: on a shared machine, where
other work takes turns on the cores, the ratios stay meaningful.

    python -m bench.iteration [--device cpu|cuda] [--strokes 4,8,16,32] [--seeds 3] [--iterations 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import open_clip
import torch
from PIL import Image, ImageDraw
from torch import nn

from clipasso_core.augment import sample_augmentations
from clipasso_core.frozen import freeze_for_inference
from clipasso_core.graphed_step import HEADROOM, CudaGraphs
from clipasso_core.image import to_canvas
from clipasso_core.loss import ClipConvLoss
from clipasso_core.models import ClipEncoder
from clipasso_core.optimize import optimize_sketches, planned_sketch_steps, render, stroke_batch
from clipasso_core.params import CANVAS_SIZE, PRESETS, SketchParams, make_params
from clipasso_core.precision import Precision, resolve_precision
from clipasso_core.raster import pair_capacity, rasterize_within
from clipasso_core.saliency import initial_strokes

PAPER_ITERATIONS = 2000


def target_image() -> torch.Tensor:
    """A simple drawing to sketch: ``[3, 224, 224]``."""
    image = Image.new("RGB", (480, 360), "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((140, 90, 320, 300), radius=30, fill=(215, 70, 55), outline="black", width=6)
    draw.ellipse((70, 270, 410, 340), outline="navy", width=5)
    return to_canvas(image)[0]


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so host clocks measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ours(encoder: ClipEncoder, target: torch.Tensor, initial: dict[int, torch.Tensor],
              params: SketchParams, warmup: int, clock: Callable[[], float], cuda_graphs: bool = True) -> float:
    """Median seconds per job iteration of :func:`optimize_sketches`, after ``warmup`` iterations."""
    stamps: list[float] = []

    def stamp(_progress: object) -> None:
        synchronize(encoder.device)
        stamps.append(clock())

    optimize_sketches(ClipConvLoss(encoder, target), initial, params, progress=stamp, graphs=cuda_graphs)
    return statistics.median(b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:]))


def time_paper_job(encoder: ClipEncoder, target: torch.Tensor, initial: dict[int, torch.Tensor],
                   params: SketchParams) -> float:
    """Wall seconds of the whole job at the paper's 2000 steps (models loaded, first step included)."""
    params = params.model_copy(update={"iterations": PAPER_ITERATIONS})
    synchronize(encoder.device)
    start = time.perf_counter()
    optimize_sketches(ClipConvLoss(encoder, target), initial, params)
    synchronize(encoder.device)
    return time.perf_counter() - start


def print_preset_steps(strokes: list[int]) -> None:
    """Sketch-steps of each preset's job for ``strokes``, and of the same job without its pick where it has one."""
    for preset in PRESETS:
        params = make_params(preset, strokes=strokes)
        line = f"sketch-steps of a {preset} job ({len(strokes)} levels): {planned_sketch_steps(params)}"
        if params.pick_seed_at is not None:
            unpicked = planned_sketch_steps(params.model_copy(update={"pick_seed_at": None}))
            line += (f" with its pick at step {params.pick_seed_at}, {unpicked} without "
                     f"({planned_sketch_steps(params) / unpicked:.3f})")
        print(line)


def time_pick(encoder: ClipEncoder, target: torch.Tensor, initial: dict[int, torch.Tensor], params: SketchParams,
              steps: int, clock: Callable[[], float]) -> None:
    """Time a ``balanced``-shaped job of ``steps`` steps (a pick at a quarter of them) and the same job without it."""
    balanced = PRESETS["balanced"]
    share = balanced["pick_seed_at"] / balanced["iterations"]
    pick_at = max(1, round(steps * share / params.eval_interval)) * params.eval_interval
    picked = params.model_copy(update={"iterations": steps, "pick_seed_at": pick_at})
    times = {}
    for label, job in (("without the pick", picked.model_copy(update={"pick_seed_at": None})), ("with the pick", picked)):
        synchronize(encoder.device)
        start = clock()
        outcome = optimize_sketches(ClipConvLoss(encoder, target), initial, job)
        synchronize(encoder.device)
        times[label] = (clock() - start, outcome.sketch_steps)
    (plain, plain_steps), (fast, fast_steps) = times["without the pick"], times["with the pick"]
    print(f"a {steps}-step job, pick at step {pick_at} ({encoder.precision}): {fast:.1f} s with the pick vs "
          f"{plain:.1f} s without = {fast / plain:.3f}; sketch-steps {fast_steps} vs {plain_steps} = "
          f"{fast_steps / plain_steps:.3f}")


def print_profile(encoder: ClipEncoder, target: torch.Tensor, initial: dict[int, torch.Tensor],
                  params: SketchParams, warmup: int, steps: int = 3) -> None:
    """The operators that take the device time of ``steps`` eager job iterations, and that time against the wall."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if encoder.device.type == "cuda" else [])
    stamps: list[float] = []

    def stamp(progress: object) -> None:
        synchronize(encoder.device)
        stamps.append(time.perf_counter())
        if len(stamps) == warmup:
            trace.start()
        if len(stamps) == warmup + steps:
            trace.stop()

    trace = profile(activities=activities)
    params = params.model_copy(update={"iterations": warmup + steps})
    optimize_sketches(ClipConvLoss(encoder, target), initial, params, progress=stamp, graphs=False)
    events = trace.key_averages()
    sort = "self_device_time_total" if encoder.device.type == "cuda" else "self_cpu_time_total"
    busy = sum(event.self_device_time_total for event in events) / 1e6 if encoder.device.type == "cuda" else 0.0
    print(f"profile of {steps} eager iterations: wall {stamps[-1] - stamps[warmup - 1]:.4f} s, "
          f"device busy {busy:.4f} s")
    print(events.table(sort_by=sort, row_limit=30, max_name_column_width=70))


def paper_features(visual: nn.Module, encoder: ClipEncoder, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """layer2, layer3 and the embedding of images ``[B, 3, 224, 224]``, through the whole tower as the paper runs it."""
    x = visual.layer1(visual.stem(encoder.normalize(images)))
    layer2 = visual.layer2(x)
    layer3 = visual.layer3(layer2)
    return {"layer2": layer2, "layer3": layer3, "embedding": visual.attnpool(visual.layer4(layer3))}


def time_paper(visual: nn.Module, encoder: ClipEncoder, target: torch.Tensor, initial: dict[int, torch.Tensor],
               params: SketchParams, warmup: int, clock: Callable[[], float]) -> float:
    """Median seconds per sketch-iteration of the paper-style loop on ``visual`` (trainable), after ``warmup``.

    It runs the first seed of every level (the job's mix of stroke counts): the loop's cost per sketch
    does not depend on how many sketches there are.
    """
    device = target.device
    visual = visual.requires_grad_(True)
    generator = torch.Generator().manual_seed(params.seed)
    sketches = [points[:1].to(device).clone().requires_grad_(True) for points in initial.values()]
    optimizers = [torch.optim.Adam([points], lr=params.lr) for points in sketches]
    times = []
    for _ in range(params.iterations):
        synchronize(device)
        start = clock()
        for points, optimizer in zip(sketches, optimizers):
            optimizer.zero_grad(set_to_none=True)
            clean = torch.cat([render([points], params.stroke_width, CANVAS_SIZE), target[None]])
            augmented = sample_augmentations(params.augmentations, CANVAS_SIZE, generator)(clean)
            features = paper_features(visual, encoder, torch.cat([clean, augmented]))  # with grad, every step
            total = sum((features[tap][0::2] - features[tap][1::2]).pow(2).mean() for tap in ("layer2", "layer3"))
            cosine = torch.cosine_similarity(features["embedding"][0::2], features["embedding"][1::2])
            total = total + 0.1 * (1 - cosine).mean()
            visual.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
        synchronize(device)
        times.append((clock() - start) / len(sketches))
    return statistics.median(times[warmup:])


def time_raster(initial: dict[int, torch.Tensor], params: SketchParams, device: torch.device,
                clock: Callable[[], float], mode: str = "exact", repeats: int = 10) -> float:
    """Median seconds for one forward + backward render of every sketch of the job.

    ``mode``: ``exact`` buffers (two host synchronisations), ``fixed`` buffers (none), or ``graph``: fixed
    buffers, the pass replayed as a CUDA graph.
    """
    batch, width, _ = stroke_batch([p.to(device) for p in initial.values()], params.stroke_width)
    points = batch.clone().requires_grad_(True)
    weights = torch.rand(batch.shape[0], CANVAS_SIZE, CANVAS_SIZE, device=device)
    capacity = None if mode == "exact" else pair_capacity(points, width, (CANVAS_SIZE, CANVAS_SIZE)).scaled(HEADROOM)

    def step() -> None:
        points.grad = None
        grey, _ = rasterize_within(points, capacity, width, (CANVAS_SIZE, CANVAS_SIZE))
        (grey * weights).sum().backward()

    run = step
    if mode == "graph":
        graphs = CudaGraphs(device)
        for _ in range(3):
            graphs.eager(step)
        points.grad = None
        _, run = graphs.capture(step)
    times = []
    for _ in range(repeats + 1):
        synchronize(device)
        start = clock()
        run()
        synchronize(device)
        times.append(clock() - start)
    return statistics.median(times[1:])


def main() -> None:
    """Parse options, run the three loops on the same job, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--strokes", default="4,8,16,32")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per loop")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed iterations first (on a CPU, a large batch takes ~5 steps to reach its pace)")
    parser.add_argument("--model", default="RN101", help="loss network (random weights)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--profile", action="store_true", help="also print the kernels that take the time of eager steps")
    parser.add_argument("--paper-job", action="store_true", help=f"also run the whole job ({PAPER_ITERATIONS} steps)")
    parser.add_argument("--pick-job", type=int, metavar="N",
                        help="also time an N-step job with balanced's pick (at the eval step nearest N/4) against "
                             "the same job without the pick")
    parser.add_argument("--clock", choices=("wall", "process"), default="wall",
                        help="wall seconds, or CPU seconds of this process (steadier on a shared machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    device = torch.device(args.device)
    params = SketchParams(strokes=args.strokes, seeds=args.seeds, iterations=args.warmup + args.iterations)
    paper_visual = open_clip.create_model(args.model).visual.to(device).eval()
    ours_visual = freeze_for_inference(copy.deepcopy(paper_visual), device)
    target = target_image().to(device)
    initial = {
        count: torch.stack([initial_strokes(None, count, seed, CANVAS_SIZE) for seed in params.sketch_seeds()])
        for count in params.strokes
    }
    sketches = len(params.strokes) * params.seeds
    warmup = max(1, args.warmup)
    if device.type == "cuda":  # untimed: the GPU's clocks rise and cuDNN picks its algorithms
        encoder = ClipEncoder(ours_visual, 224, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD,
                              precision=resolve_precision(Precision.AUTO, device))
        time_ours(encoder, target, initial, params, warmup, clock)
    ours = {}
    for requested in (Precision.FP32, Precision.AUTO):
        encoder = ClipEncoder(ours_visual, 224, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD,
                              precision=resolve_precision(requested, device))
        ours[str(requested)] = (encoder.precision, time_ours(encoder, target, initial, params, warmup, clock))
    if device.type == "cuda":
        ours[f"{Precision.AUTO}, no CUDA graphs"] = (
            encoder.precision, time_ours(encoder, target, initial, params, warmup, clock, cuda_graphs=False))
    paper_encoder = ClipEncoder(paper_visual, 224, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    paper = time_paper(paper_visual, paper_encoder, target, initial, params, warmup, clock)
    modes = ("exact", "fixed", "graph") if device.type == "cuda" else ("exact",)
    raster = {mode: time_raster(initial, params, device, clock, mode) for mode in modes}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; loss network {args.model}; job: strokes {params.strokes} × "
          f"{params.seeds} seeds = {sketches} sketches, {1 + params.augmentations} pairs each; {args.clock} clock")
    print(f"{'loop':<44}{'s / job-iteration':>20}{'s / sketch-iteration':>22}{'ratio':>8}")
    print(f"{'paper-style (fp32, one sketch)':<44}{paper * sketches:>20.4f}{paper:>22.4f}{1:>8.3f}")
    for requested, (effective, job_iteration) in ours.items():
        label = f"ours, {requested} (= {effective})"
        print(f"{label:<44}{job_iteration:>20.4f}{job_iteration / sketches:>22.4f}"
              f"{job_iteration / sketches / paper:>8.3f}")
    auto_iteration = ours[str(Precision.AUTO)][1]
    print(f"ratio ours ({Precision.AUTO}) / paper-style: {auto_iteration / sketches / paper:.3f} (CPU target ≤ 0.18)")
    for mode, seconds in raster.items():
        print(f"rasterizer, {mode} buffers{' (CUDA graph)' if mode == 'graph' else ''} (fwd + bwd, all sketches): "
              f"{seconds * 1000:.2f} ms = {100 * seconds / auto_iteration:.1f} % of our {Precision.AUTO} iteration")
    if device.type == "cuda":
        print(f"paper job ({len(params.strokes)} levels × {params.seeds} seeds × {PAPER_ITERATIONS} steps) at this "
              f"pace: {auto_iteration * PAPER_ITERATIONS:.0f} s ({Precision.AUTO}), "
              f"{ours[str(Precision.FP32)][1] * PAPER_ITERATIONS:.0f} s (fp32)")
    print_preset_steps(params.strokes)
    if args.pick_job:
        time_pick(encoder, target, initial, params, args.pick_job, clock)
    if args.profile:
        print_profile(encoder, target, initial, params, warmup)
    if args.paper_job:
        print(f"paper job, run whole ({Precision.AUTO}): {time_paper_job(encoder, target, initial, params):.1f} s")


if __name__ == "__main__":
    main()
