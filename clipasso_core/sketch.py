"""One sketch job from image to strokes: preprocess → saliency init → batched optimisation → source coordinates.

This is the library call behind ``clipasso sketch`` and the sketch server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image

from .image import to_canvas
from .loss import ClipConvLoss, LossWeights
from .models import LoadedModels
from .optimize import BestSketches, CancelSignal, Progress, optimize_sketches
from .params import CANVAS_SIZE, SketchParams
from .saliency import clip_attention, initial_strokes, sampling_distribution, xdog_edges
from .snapshot import SketchSnapshot, SnapshotLevel, finite_or_none
from .svg import SketchLayer


@dataclass
class LevelSketch:
    """The chosen sketch of one abstraction level, in the source image's pixel coordinates."""

    strokes: int
    seed: int
    points: torch.Tensor  # [S, 4, 2]
    stroke_width: float
    loss: float
    terms: dict[str, float]  # weighted eval terms by name (conv_layer2, conv_layer3, fc, …)

    def layer(self, visible: bool = True) -> SketchLayer:
        """This level as an SVG layer labelled ``"<S> strokes"``."""
        return SketchLayer(f"{self.strokes} strokes", self.points.double().numpy(), self.stroke_width, visible)


@dataclass
class SketchResult:
    """Every level of one image's sketch, plus how the run ended."""

    width: int
    height: int
    levels: list[LevelSketch]
    iterations: int
    cancelled: bool


def sketch_image(
    image: Image.Image,
    params: SketchParams,
    models: LoadedModels,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelSignal | None = None,
    snapshot: Callable[[SketchSnapshot], None] | None = None,
) -> SketchResult:
    """Sketch an RGB image at every level of ``params``; stops early, keeping the best so far, when cancelled.

    ``snapshot`` receives the best sketch of every level, in the image's pixels, at every eval step and at the end.
    """
    target, frame = to_canvas(image, CANVAS_SIZE)
    target = target.to(models.device)
    initial = initial_points(target, params, models)
    stroke_width = params.stroke_width * frame.scale

    def to_source(best: BestSketches) -> None:
        assert snapshot is not None
        levels = tuple(SnapshotLevel(count, frame.to_source(points.double()).numpy(), finite_or_none(loss))
                       for count, (points, loss) in best.levels.items())
        snapshot(SketchSnapshot(best.iteration, frame.width, frame.height, float(stroke_width), levels))

    loss = ClipConvLoss(models.loss, target, LossWeights.from_params(params))
    outcome = optimize_sketches(loss, initial, params, progress, cancel, None if snapshot is None else to_source)
    levels = [
        LevelSketch(
            strokes=level.strokes,
            seed=level.seed,
            points=frame.to_source(level.points.double()).float(),
            stroke_width=stroke_width,
            loss=level.loss,
            terms=dict(zip(loss.term_names, level.terms)),
        )
        for level in outcome.levels
    ]
    return SketchResult(frame.width, frame.height, levels, outcome.iterations, outcome.cancelled)


def initial_points(target: torch.Tensor, params: SketchParams, models: LoadedModels) -> dict[int, torch.Tensor]:
    """Initial strokes per level: stroke count → ``[seeds, S, 4, 2]`` canvas points, one row per sketch seed."""
    probabilities = None
    if params.attention_init:
        attention = clip_attention(models.saliency, target)
        edges = xdog_edges(models.saliency.normalize(target[None])[0])
        probabilities = sampling_distribution(attention, edges, params.softmax_temperature)
    size = target.shape[-1]
    return {
        count: torch.stack([initial_strokes(probabilities, count, seed, size) for seed in params.sketch_seeds()])
        for count in params.strokes
    }

