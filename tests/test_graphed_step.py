"""Replaying the optimisation step as a graph: the sketches eager steps draw, and safe fallbacks.

The logic around the graphs runs on the CPU with a stand-in that re-runs the captured step; the CUDA
graphs themselves are tested where a GPU is present.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from clipasso_core import graphed_step
from clipasso_core.augment import Augmentations, sample_augmentations
from clipasso_core.graphed_step import GraphedStep, StepRun
from clipasso_core.models import LoadedModels, ModelSpec, load_models
from clipasso_core.params import SketchParams
from clipasso_core.precision import Precision
from clipasso_core.raster import pair_capacity, rasterize_within
from clipasso_core.sketch import SketchResult, sketch_image
from testkit.raster_reference import make_strokes
from tests.support.pictures import CLOSED, CURVE, EDITED, LOCKED, cup, picture

SIZE = 64


class RerunGraphs:
    """A stand-in for CUDA graphs on the CPU: a replay runs the captured step again and refills its outputs."""

    def __init__(self, leaves: list[torch.Tensor], fail: bool = False) -> None:
        self.leaves, self.fail = leaves, fail

    def eager(self, run):
        return run()

    def capture(self, run):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        outputs = run()

        def replay() -> None:
            for leaf in self.leaves:
                leaf.grad = None
            for static, fresh in zip(outputs, run()):
                static.copy_(fresh)

        return outputs, replay


def small_problem(steps: int = 14) -> tuple[torch.Tensor, StepRun, list[Augmentations]]:
    """Strokes to optimise against fixed pixel weights under paired transforms, and the transforms of each step."""
    points = (make_strokes("init", 6, (SIZE, SIZE), seed=3).expand(2, -1, -1, -1) * 0.8).clone().requires_grad_(True)
    weights = torch.randn(SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    generator = torch.Generator().manual_seed(5)
    transforms = [sample_augmentations(3, SIZE, generator) for _ in range(steps)]

    def run(warps, capacity):
        grey, needed = rasterize_within(points, capacity, 3.0, (SIZE, SIZE))
        terms = (warps(grey[:, None]).squeeze(1) * weights).mean(dim=(-2, -1)).view(len(warps), -1).t()
        terms.sum().backward()
        return terms, needed

    return points, run, transforms


def optimise(step_of: Callable[[torch.Tensor, StepRun], Callable[[Augmentations], torch.Tensor]],
             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Adam on :func:`small_problem` with ``step_of(points, run)`` as the step: final points and every step's terms."""
    points, run, transforms = small_problem()
    optimizer = torch.optim.Adam([points], lr=1.5)
    step = step_of(points, run)
    history = []
    for augmentations in transforms:
        history.append(step(augmentations).clone())
        optimizer.step()
    return points.detach(), history


def eager_step(points: torch.Tensor, run: StepRun) -> Callable[[Augmentations], torch.Tensor]:
    """The optimizer's own eager step."""

    def step(augmentations: Augmentations) -> torch.Tensor:
        points.grad = None
        return run(augmentations, None)[0]

    return step


def graphed_on_cpu(made: list[GraphedStep], fail: bool = False):
    """A GraphedStep around :class:`RerunGraphs`, recorded in ``made``."""

    def step_of(points: torch.Tensor, run: StepRun) -> GraphedStep:
        step = GraphedStep(run, lambda: pair_capacity(points, 3.0, (SIZE, SIZE)), [points], RerunGraphs([points], fail))
        made.append(step)
        return step

    return step_of


def test_replayed_steps_give_the_eager_steps_sketch_bit_for_bit():
    made: list[GraphedStep] = []
    replayed, history = optimise(graphed_on_cpu(made))
    eager, eager_history = optimise(eager_step)
    assert made[0].captures >= 1 and made[0].replays >= len(history) // 2
    assert torch.equal(replayed, eager) and all(map(torch.equal, history, eager_history))
    assert not torch.equal(eager, small_problem()[0].detach())  # the strokes moved


def test_a_step_whose_strokes_outgrow_the_buffers_is_redone_in_full(monkeypatch):
    monkeypatch.setattr(graphed_step, "HEADROOM", 0.5)  # every capture is too small: every step is redone
    made: list[GraphedStep] = []
    replayed, history = optimise(graphed_on_cpu(made))
    eager, eager_history = optimise(eager_step)
    assert made[0].captures == len(history) - graphed_step.WARMUP_STEPS and made[0].replays == 0
    assert torch.equal(replayed, eager) and all(map(torch.equal, history, eager_history))


def test_a_step_that_cannot_be_captured_runs_eagerly_and_says_so(caplog):
    made: list[GraphedStep] = []
    with caplog.at_level(logging.WARNING, logger="clipasso_core.graphed_step"):
        replayed, history = optimise(graphed_on_cpu(made, fail=True))
    eager, eager_history = optimise(eager_step)
    assert made[0].captures == 0 and "runs eagerly" in caplog.text
    assert torch.equal(replayed, eager) and all(map(torch.equal, history, eager_history))


@pytest.fixture(scope="module")
def cuda_models(tiny_spec: ModelSpec, precision: Precision) -> LoadedModels:
    """The tiny models on the GPU, in fp32 and in the default precision."""
    return load_models(dataclasses.replace(tiny_spec, precision=precision), torch.device("cuda"))


@pytest.fixture
def graphed(monkeypatch: pytest.MonkeyPatch) -> list[GraphedStep]:
    """Every GraphedStep the optimizer makes, to see how often it captured."""
    made: list[GraphedStep] = []

    class Recorded(GraphedStep):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr("clipasso_core.optimize.GraphedStep", Recorded)
    return made


def sketch_with_history(image: Image.Image, params: SketchParams, models: LoadedModels,
                        ) -> tuple[SketchResult, list[float]]:
    """A sketch job and its best total eval loss after every step."""
    history: list[float] = []
    result = sketch_image(image, params, models, progress=lambda p: history.append(sum(p.best_loss.values())))
    return result, history


def eagerly(monkeypatch: pytest.MonkeyPatch, job: Callable[[], tuple[SketchResult, list[float]]],
            ) -> tuple[SketchResult, list[float]]:
    """``job`` with every step eager (the warm-up never ends)."""
    with monkeypatch.context() as patch:
        patch.setattr(graphed_step, "WARMUP_STEPS", 10**9)
        return job()


def assert_same_sketches(replayed: SketchResult, eager: SketchResult, replayed_history: list[float],
                         eager_history: list[float]) -> None:
    """Graph replay and eager steps give the same losses, step by step, up to the GPU's summation order."""
    assert len(replayed_history) == len(eager_history)
    assert replayed_history == pytest.approx(eager_history, rel=0.03)
    assert replayed_history[-1] < 0.95 * replayed_history[0]  # and the sketch improved
    for ours, theirs in zip(replayed.levels, eager.levels):
        assert ours.strokes == theirs.strokes and ours.loss == pytest.approx(theirs.loss, rel=0.03)
        assert all(np.isfinite(ours.segments(index)).all() for index in range(ours.strokes))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_replayed_steps_draw_what_eager_steps_draw(cuda_models, graphed, monkeypatch):
    params = SketchParams(strokes=[4, 16], seeds=2, iterations=30, eval_interval=5)
    replayed, history = sketch_with_history(cup(), params, cuda_models)
    assert len(graphed) == 1 and graphed[0].replays > params.iterations // 2
    eager, eager_history = eagerly(monkeypatch, lambda: sketch_with_history(cup(), params, cuda_models))
    assert_same_sketches(replayed, eager, history, eager_history)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_strokes_that_outgrow_the_graphs_buffers_are_redrawn_in_full(cuda_models, graphed, monkeypatch):
    monkeypatch.setattr(graphed_step, "HEADROOM", 0.5)  # every capture is too small: every step is redone
    params = SketchParams(strokes=[8], seeds=2, iterations=12)
    replayed, history = sketch_with_history(cup(), params, cuda_models)
    assert graphed[0].captures == params.iterations - graphed_step.WARMUP_STEPS and graphed[0].replays == 0
    eager, eager_history = eagerly(monkeypatch, lambda: sketch_with_history(cup(), params, cuda_models))
    assert_same_sketches(replayed, eager, history, eager_history)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_refined_sketch_with_styled_strokes_replays_and_keeps_its_locked_path(cuda_models, graphed, monkeypatch):
    params = SketchParams(init_paths=[CURVE, EDITED, LOCKED, CLOSED], locked=[2], iterations=25,
                          optimize_width=True, optimize_opacity=True)
    replayed, history = sketch_with_history(picture(), params, cuda_models)
    assert len(graphed) == 1 and graphed[0].replays > params.iterations // 2
    level = replayed.levels[0]
    assert level.paths[2] == LOCKED
    eager, eager_history = eagerly(monkeypatch, lambda: sketch_with_history(picture(), params, cuda_models))
    assert_same_sketches(replayed, eager, history, eager_history)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_after_a_pick_a_graph_for_the_kept_attempts_replays_what_eager_steps_draw(cuda_models, graphed, monkeypatch):
    params = SketchParams(strokes=[4, 16], seeds=3, iterations=30, eval_interval=5, pick_seed_at=10)
    replayed, history = sketch_with_history(cup(), params, cuda_models)
    assert len(graphed) == 2 and graphed[1].captures >= 1 and graphed[1].replays >= 10  # steps 11–13 eager
    eager, eager_history = eagerly(monkeypatch, lambda: sketch_with_history(cup(), params, cuda_models))
    assert_same_sketches(replayed, eager, history, eager_history)
