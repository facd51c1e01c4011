"""Replaying the optimisation step as a CUDA graph: the sketches eager steps draw, and safe fallbacks (CUDA only)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from PIL import Image

from clipasso_core import graphed_step
from clipasso_core.graphed_step import GraphedStep
from clipasso_core.joined_paths import read_paths
from clipasso_core.models import LoadedModels, ModelSpec, load_models
from clipasso_core.params import SketchParams
from clipasso_core.precision import Precision
from clipasso_core.sketch import SketchResult, sketch_image
from test_optimize import cup
from test_refine import CLOSED, CURVE, EDITED, LOCKED, picture

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


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
        assert torch.isfinite(ours.points).all()


def test_replayed_steps_draw_what_eager_steps_draw(cuda_models, graphed, monkeypatch):
    params = SketchParams(strokes=[4, 16], seeds=2, iterations=30, eval_interval=5)
    replayed, history = sketch_with_history(cup(), params, cuda_models)
    assert len(graphed) == 1 and graphed[0].replays > params.iterations // 2
    eager, eager_history = eagerly(monkeypatch, lambda: sketch_with_history(cup(), params, cuda_models))
    assert_same_sketches(replayed, eager, history, eager_history)


def test_strokes_that_outgrow_the_graphs_buffers_are_redrawn_in_full(cuda_models, graphed, monkeypatch):
    monkeypatch.setattr(graphed_step, "HEADROOM", 0.5)  # every capture is too small: every step is redone
    params = SketchParams(strokes=[8], seeds=2, iterations=12)
    replayed, history = sketch_with_history(cup(), params, cuda_models)
    assert graphed[0].captures == params.iterations - graphed_step.WARMUP_STEPS and graphed[0].replays == 0
    eager, eager_history = eagerly(monkeypatch, lambda: sketch_with_history(cup(), params, cuda_models))
    assert_same_sketches(replayed, eager, history, eager_history)


def test_a_refined_sketch_with_styled_strokes_replays_and_keeps_its_locked_path(cuda_models, graphed, monkeypatch):
    params = SketchParams(init_paths=[CURVE, EDITED, LOCKED, CLOSED], locked=[2], iterations=25,
                          optimize_width=True, optimize_opacity=True)
    replayed, history = sketch_with_history(picture(), params, cuda_models)
    assert len(graphed) == 1 and graphed[0].replays > params.iterations // 2
    level = replayed.levels[0]
    assert torch.equal(level.points[8:10], torch.from_numpy(read_paths(params.init_paths)[2].segments))
    eager, eager_history = eagerly(monkeypatch, lambda: sketch_with_history(picture(), params, cuda_models))
    assert_same_sketches(replayed, eager, history, eager_history)
