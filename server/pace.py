"""The server's pace, measured from the jobs it runs, and the time a preset's four-level job takes at that pace.

The model is deliberately simple: a step costs the loss network's passes over the sketches in its batch, each
sketch ``1 + augmentations`` images forward and backward (the rasterizer, the target's augmented forward and
Adam are a few per cent and are left out), a pass at a smaller ``loss_size`` in proportion to its pixels (at
112 px a quarter of one at 224; measured: 0.28), so a job's time is ``seconds per image-pass × its image-passes``,
counting every attempt until a pick and one per level after it. The pace is measured between the progress
reports of running jobs, from each job's second report on: model loading, stroke initialisation and the first
step (where kernels are prepared or a CUDA graph captured) are not in it. It is the total over the last
:data:`WINDOW` measured intervals, so it follows the machine as it is now (e.g. other work on the cores).
The time a preset's job takes does not include loading the models (the server keeps them loaded).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from clipasso_core.optimize import sketch_steps_within
from clipasso_core.params import CANVAS_SIZE, PRESETS, SketchParams, make_params

WINDOW = 200
"""How many recent intervals between progress reports the pace is taken over."""
PRESET_STROKES = [4, 8, 16, 32]
"""The four levels a preset's time is given for (the dialog's default levels)."""


def image_passes(params: SketchParams, steps: int) -> float:
    """The loss network's image passes (each forward and backward, at the canvas's 224 px) of a job's first
    ``steps`` steps."""
    size = params.loss_size or CANVAS_SIZE
    return sketch_steps_within(params, steps) * (1 + params.augmentations) * (size / CANVAS_SIZE) ** 2


@dataclass
class _Mark:
    """Where a running job was at its last progress report."""

    params: SketchParams
    iteration: int
    at: float


class PaceMeter:
    """Seconds per image-pass from the progress of running jobs (:meth:`observe`), and each preset's job time.

    ``clock`` gives seconds (monotonic); tests inject their own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: int = WINDOW) -> None:
        self._clock = clock
        self._marks: dict[str, _Mark] = {}
        self._intervals: deque[tuple[float, float]] = deque(maxlen=window)

    def observe(self, job_id: str, params: SketchParams, iteration: int) -> None:
        """Job ``job_id`` (run with ``params``) has done ``iteration`` steps now."""
        now = self._clock()
        mark = self._marks.get(job_id)
        if mark is not None and iteration > mark.iteration:
            passes = image_passes(params, iteration) - image_passes(params, mark.iteration)
            self._intervals.append((passes, now - mark.at))
        if mark is None or iteration > mark.iteration:
            self._marks[job_id] = _Mark(params, iteration, now)

    def forget(self, job_id: str) -> None:
        """The job has ended: its next report (a run again) starts a new measurement."""
        self._marks.pop(job_id, None)

    def seconds_per_pass(self) -> float | None:
        """Seconds per image-pass over the recent intervals, or ``None`` before one was measured."""
        passes = sum(count for count, _ in self._intervals)
        return None if passes == 0 else sum(seconds for _, seconds in self._intervals) / passes

    def preset_seconds(self) -> dict[str, float] | None:
        """Each preset's four-level job (4, 8, 16, 32 strokes) at the current pace, in seconds; ``None`` until measured."""
        pace = self.seconds_per_pass()
        if pace is None:
            return None
        return {name: round(pace * passes, 1) for name, passes in preset_passes().items()}


@functools.cache
def preset_passes() -> Mapping[str, float]:
    """Each preset's image passes for a four-level job (4, 8, 16, 32 strokes): constants, counted once."""
    return {name: image_passes(params, params.iterations)
            for name, params in ((name, make_params(name, strokes=PRESET_STROKES)) for name in PRESETS)}


def recommended_preset(device: str) -> str:
    """The preset a designer gets by default on ``device``: the paper's run on a CUDA GPU, ``quick`` elsewhere."""
    return "paper" if device.startswith("cuda") else "quick"
