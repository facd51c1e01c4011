"""Time of ``clipasso sketch IMAGE --preset quick`` against today's draft configuration, in one run, with its quality guard.

Each configuration runs as the command does: the models loaded from local checkpoint files (the paper's
RN101 and ViT-B-32 at full size with random weights, written once into ``--models``, outside the repository:
no real weights are needed, the networks cost what the real ones cost), the image read, the saliency init,
then the optimisation of the four levels. ``--steps N`` stops each job after N steps and extrapolates:
the time up to the end of the first step (models, init and the first step, where oneDNN prepares its kernels)
plus the remaining steps at the mean pace of steps 2 … N; without it the whole job runs.
``draft`` is the draft as it was measured at 6 min 47 s (1 attempt × 300 steps, 4 augmented pairs);
``quick`` is today's preset, or with ``--variant '{"augmentations": 2, "iterations": 220, "lr": 1.5}'`` a
candidate for it (quick's values with those replaced). The ratio quick / draft is the figure to keep (target ≤ 0.44, i.e.
6 min 47 s → 3 min); on a machine shared with other work, take ``--clock process --threads 1`` (CPU seconds
of this process, which other work inflates far less than wall seconds) and read the wall time of a quiet
machine as CPU seconds ÷ the speed-up of the threads used there.

``--guard`` also runs the quality guard (``testkit/ink_guard.py``) with the full-size loss network: both
configurations sketch the same picture from the same random strokes, and quick must put at least the draft's
share of ink on the object.

    python -m bench.presets [--clock wall|process] [--threads N] [--steps N] [--variant JSON] [--guard]
                            [--guard-seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from clipasso_core.image import read_image
from clipasso_core.models import load_models
from clipasso_core.optimize import Progress
from clipasso_core.params import SketchParams, make_params
from clipasso_core.sketch import sketch_image
from testkit.ink_guard import DRAFT, guard_shares, mean_share, start_shares
from testkit.tiny_models import full_size_models_in

TARGET_RATIO = 180 / 407
"""3 minutes against the draft's 6 min 47 s."""


@dataclass
class JobTime:
    """Seconds of one job: up to the end of its first step, per later step (each), and the job's steps."""

    first: float
    later: list[float]
    iterations: int

    def total(self) -> float:
        """The whole job's seconds, extrapolated at the mean pace of the later steps where not all of them ran."""
        missing = self.iterations - 1 - len(self.later)
        pace = statistics.fmean(self.later) if self.later else 0.0
        return self.first + sum(self.later) + missing * pace


def time_job(image: Image.Image, params: SketchParams, models_dir: Path, steps: int | None,
             clock: Callable[[], float]) -> JobTime:
    """Load the models, sketch ``image`` with ``params`` for ``steps`` steps (all: None) and time it."""
    stop = threading.Event()
    stamps: list[float] = []

    def stamp(progress: Progress) -> None:
        stamps.append(clock())
        if steps is not None and progress.iteration >= steps:
            stop.set()

    start = clock()
    models = load_models(full_size_models_in(models_dir), torch.device("cpu"))
    sketch_image(image, params, models, progress=stamp, cancel=stop)
    return JobTime(stamps[0] - start, [b - a for a, b in zip(stamps, stamps[1:])], params.iterations)


def minutes(seconds: float) -> str:
    """``6 min 47 s``."""
    return f"{int(seconds // 60)} min {round(seconds % 60):02d} s"


def main() -> None:
    """Parse options, time draft and quick in turn, print both and their ratio (and the guard)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=Path("examples/mug.png"))
    parser.add_argument("--models", type=Path, default=Path("/tmp/clipasso-bench-models"),
                        help="where the random-weight checkpoints are written once (outside the repository)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--steps", type=int, help="time this many steps of each job and extrapolate (default: all)")
    parser.add_argument("--clock", choices=("wall", "process"), default="wall",
                        help="wall seconds, or CPU seconds of this process (steadier on a shared machine)")
    parser.add_argument("--variant", type=json.loads, default={}, metavar="JSON",
                        help="parameters that replace quick's, e.g. '{\"augmentations\": 2}' (default: none)")
    parser.add_argument("--guard", action="store_true", help="also run the quality guard with the full-size models")
    parser.add_argument("--guard-seeds", default="0,1", help="seeds of the guard's runs (default: 0,1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    image = read_image(args.image)
    configs = {"draft": make_params(**DRAFT), "quick": make_params("quick", **args.variant)}
    full_size_models_in(args.models)  # written before any clock starts
    print(f"{args.image}: 4 levels {configs['quick'].strokes}; CPU, {torch.get_num_threads()} threads; "
          f"{args.clock} clock; {'all steps' if args.steps is None else f'{args.steps} steps, extrapolated'}")
    totals = {}
    for name, params in configs.items():
        job = time_job(image, params, args.models, args.steps, clock)
        totals[name] = job.total()
        pace = statistics.fmean(job.later) if job.later else float("nan")
        print(f"{name:<6} {params.seeds} × {params.iterations} steps, {params.augmentations} augmented pairs, "
              f"learning rate {params.lr:g}, loss network at "
              f"{f'{params.loss_size} px' if params.loss_size else 'its own size'}: "
              f"first step done at {job.first:.1f} s, then {pace:.2f} s per step → {totals[name]:.0f} s "
              f"({minutes(totals[name])})", flush=True)
    ratio = totals["quick"] / totals["draft"]
    print(f"quick / draft = {ratio:.3f} (target ≤ {TARGET_RATIO:.2f}: 3 min where the draft took 6 min 47 s)")
    if args.guard:
        print_guard(configs, [int(seed) for seed in args.guard_seeds.split(",")], args.models)


def print_guard(configs: dict[str, SketchParams], seeds: list[int], models_dir: Path) -> None:
    """The share of ink on the object each configuration reaches from the same random strokes, per seed."""
    encoder = load_models(full_size_models_in(models_dir), torch.device("cpu")).loss
    means = {}
    for name, params in configs.items():
        shares = []
        for seed in seeds:
            run = params.model_copy(update={"seed": seed, "attention_init": False})
            levels = guard_shares(encoder, run)
            shares.append(mean_share(levels))
            print(f"guard {name}, seed {seed}: ink on the object " +
                  ", ".join(f"{count} strokes {share:.3f}" for count, share in levels.items()) +
                  f" (from {mean_share(start_shares(run)):.3f})", flush=True)
        means[name] = statistics.fmean(shares)
    verdict = "holds" if means["quick"] >= means["draft"] else "FAILS"
    print(f"guard: ink on the object, mean over levels and seeds: quick {means['quick']:.3f} vs draft "
          f"{means['draft']:.3f}: {verdict}")


if __name__ == "__main__":
    main()
