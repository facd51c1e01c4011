"""A pick (``pick_seed_at``): each level's best attempt goes on alone, exactly as it would have in the whole batch.

fp32 tiny models on the CPU, where the loss network gives a sketch the same numbers in any batch, so the kept
attempt's strokes are compared bit for bit with the same attempt of a run without the pick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from PIL import Image, ImageDraw

from clipasso_core import graphed_step
from clipasso_core.image import to_canvas
from clipasso_core.loss import ClipConvLoss
from clipasso_core.models import LoadedModels, ModelSpec, load_models
from clipasso_core.optimize import (LevelOutcome, Optimization, SketchBatch, optimize_sketches,
                                    planned_sketch_steps)
from clipasso_core.params import SketchParams, make_params
from clipasso_core.precision import Precision
from clipasso_core.sketch import initial_points, sketch_image

PICKED = SketchParams(strokes=[2, 4], seeds=3, iterations=8, eval_interval=2, pick_seed_at=4, augmentations=1)
"""Steps 0–4 with all three attempts, 5–7 with the best one of each level."""

REFINED_PATHS = ["M 20 30 C 40 10 60 10 80 30 C 100 50 120 50 140 30", "M 60 60 L 100 60 L 100 100 Z",
                 "M 150 20 L 170 90 L 120 110"]


def mug() -> Image.Image:
    """A mug-like drawing to sketch."""
    image = Image.new("RGB", (200, 160), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 30, 150, 140), outline="black", width=6)
    draw.rectangle((80, 60, 110, 100), fill="red")
    return image


class RerunGraphs:
    """A stand-in for CUDA graphs on the CPU: a replay runs the captured step again; records each capture's batch."""

    def __init__(self) -> None:
        self.captured_batches: list[int] = []

    def eager(self, run):
        return run()

    def capture(self, run):
        outputs = run()
        self.captured_batches.append(outputs[0].shape[0])

        def replay() -> None:
            for static, fresh in zip(outputs, run()):
                static.copy_(fresh)

        return outputs, replay


@pytest.fixture(scope="module")
def fp32_models(tiny_spec: ModelSpec) -> LoadedModels:
    """The tiny models in fp32 on the CPU."""
    return load_models(dataclasses.replace(tiny_spec, precision=Precision.FP32), torch.device("cpu"))


@pytest.fixture(scope="module")
def batches() -> list[SketchBatch]:
    """Every SketchBatch the optimizer makes in this module, to read all attempts of a run (see :func:`recording`)."""
    return []


@pytest.fixture(autouse=True)
def recording(monkeypatch: pytest.MonkeyPatch, batches: list[SketchBatch]) -> None:
    """Record each SketchBatch the optimizer makes into ``batches``."""

    class Recorded(SketchBatch):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            batches.append(self)

    monkeypatch.setattr("clipasso_core.optimize.SketchBatch", Recorded)


def optimize(models: LoadedModels, params: SketchParams, **kwargs: object) -> Optimization:
    """Optimize the mug's saliency-initialised strokes under ``params``."""
    target = to_canvas(mug())[0]
    initial = initial_points(target, params, models)
    return optimize_sketches(ClipConvLoss(models.loss, target), initial, params, **kwargs)


def run_with_attempts(job: Callable[[], object], batches: list[SketchBatch]) -> tuple[object, list[list[LevelOutcome]]]:
    """``job()`` and every attempt of every level of the run it made."""
    result = job()
    return result, batches[-1].attempts()


def without_pick(params: SketchParams, **update: object) -> SketchParams:
    return params.model_copy(update={"pick_seed_at": None, **update})


@pytest.fixture(scope="module")
def picked(fp32_models: LoadedModels) -> Optimization:
    return optimize(fp32_models, PICKED)


def assert_same_attempt(ours: LevelOutcome, theirs: LevelOutcome) -> None:
    """Bit for bit the same strokes, style, loss and terms, of the same seed."""
    assert ours.seed == theirs.seed and ours.strokes == theirs.strokes
    assert torch.equal(ours.points, theirs.points)
    assert ours.loss == theirs.loss and ours.terms == theirs.terms
    for mine, other in ((ours.widths, theirs.widths), (ours.opacities, theirs.opacities)):
        assert (mine is None and other is None) or torch.equal(mine, other)


def test_the_kept_attempt_ends_bit_for_bit_as_in_a_run_without_the_pick(fp32_models, picked, batches):
    full, attempts = run_with_attempts(lambda: optimize(fp32_models, without_pick(PICKED)), batches)
    seeds = PICKED.sketch_seeds()
    for level, outcome in enumerate(picked.levels):
        kept = seeds.index(outcome.seed)
        assert_same_attempt(outcome, attempts[level][kept])
        assert outcome.seed_losses[kept] == full.levels[level].seed_losses[kept]
    assert picked.sketch_steps == planned_sketch_steps(PICKED) == 2 * (3 * 5 + 3)
    assert full.sketch_steps == planned_sketch_steps(without_pick(PICKED)) == 2 * 3 * 8


def test_the_pick_keeps_what_a_run_without_it_would_choose_at_that_step(fp32_models, picked):
    # a run that ends at the pick's step evaluates the same strokes last, and chooses among them
    ended = optimize(fp32_models, without_pick(PICKED, iterations=PICKED.pick_seed_at))
    seeds = PICKED.sketch_seeds()
    for outcome, there in zip(picked.levels, ended.levels):
        assert outcome.seed == there.seed
        dropped = [index for index in range(len(seeds)) if seeds[index] != outcome.seed]
        # the dropped attempts report their best loss as it was when they were dropped
        assert [outcome.seed_losses[index] for index in dropped] == [there.seed_losses[index] for index in dropped]
        assert outcome.loss == min(outcome.seed_losses) <= there.loss


def test_after_a_pick_the_step_graph_is_captured_again_for_the_smaller_batch(fp32_models, picked, monkeypatch):
    monkeypatch.setattr(graphed_step, "WARMUP_STEPS", 1)  # captures at steps 1 and 6, replays at 2–4 and 7
    graphs = RerunGraphs()
    replayed = optimize(fp32_models, PICKED, graphs=graphs)
    assert graphs.captured_batches == [2 * 3, 2]
    for ours, eager in zip(replayed.levels, picked.levels):
        assert_same_attempt(ours, eager)
        assert ours.seed_losses == eager.seed_losses


def test_a_refine_with_styled_strokes_and_a_locked_path_takes_a_pick(fp32_models, batches):
    params = make_params(init_paths=REFINED_PATHS, locked=[2], seeds=3, iterations=8, eval_interval=2,
                         pick_seed_at=2, augmentations=1, optimize_width=True, optimize_opacity=True)
    picture = mug()
    result, picked_attempts = run_with_attempts(lambda: sketch_image(picture, params, fp32_models), batches)
    assert batches[-1].sketch_steps == planned_sketch_steps(params) < planned_sketch_steps(without_pick(params))
    _, attempts = run_with_attempts(lambda: sketch_image(picture, without_pick(params), fp32_models), batches)
    level = result.levels[0]
    kept = params.sketch_seeds().index(level.seed)
    assert_same_attempt(picked_attempts[0][kept], attempts[0][kept])
    assert level.paths[2] == REFINED_PATHS[2]  # the locked path is given back as it was
    outcome = picked_attempts[0][kept]
    assert float(outcome.widths[2]) == params.stroke_width and float(outcome.opacities[2]) == 1.0
    assert not torch.equal(outcome.widths[:2], torch.full((2,), params.stroke_width))  # the others' style moved


@pytest.mark.parametrize("params", [
    SketchParams(strokes=[3], seeds=1, iterations=6, eval_interval=2, pick_seed_at=2, augmentations=1),
    SketchParams(strokes=[3], seeds=2, iterations=5, eval_interval=2, pick_seed_at=4, augmentations=1),
    SketchParams(strokes=[3], seeds=2, iterations=5, eval_interval=2, pick_seed_at=6, augmentations=1),
], ids=["one seed", "at the last step", "after the last step"])
def test_a_pick_that_would_change_nothing_is_no_pick(fp32_models, params):
    ours, plain = optimize(fp32_models, params), optimize(fp32_models, without_pick(params))
    assert_same_attempt(ours.levels[0], plain.levels[0])
    assert ours.levels[0].seed_losses == plain.levels[0].seed_losses
    assert ours.sketch_steps == plain.sketch_steps == planned_sketch_steps(params) == params.seeds * params.iterations


def test_balanced_costs_half_the_sketch_steps_of_the_same_job_without_its_pick():
    balanced = make_params("balanced")
    # every attempt runs steps 0 … 250 (the pick's eval is step 250's own forward pass), then one per level
    assert planned_sketch_steps(balanced) == 4 * (3 * 251 + 749)
    assert planned_sketch_steps(without_pick(balanced)) == 4 * 3 * 1000 == 2 * planned_sketch_steps(balanced) - 16
    assert planned_sketch_steps(make_params("paper")) == 4 * 3 * 2000
    assert planned_sketch_steps(make_params("quick")) == 4 * 440
