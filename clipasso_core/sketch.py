"""One sketch job from image to strokes: preprocess → saliency init → batched optimisation → source coordinates.

This is the library call behind ``clipasso sketch`` and the sketch server. A job with ``init_paths``
(a refine) starts from those paths instead of the saliency init, keeps each one a joined path and
returns its locked paths exactly as given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from .image import CanvasFrame, to_canvas
from .joined_paths import JoinedPaths, PathShape, join_paths, read_paths
from .loss import ClipConvLoss, LossWeights
from .mask import inside_pixels, mask_coverage, whiten_outside
from .models import LoadedModels, encode_prompt
from .optimize import BestSketches, CancelSignal, LevelOutcome, Progress, optimize_sketches
from .params import CANVAS_SIZE, SketchParams
from .saliency import clip_attention, initial_strokes, sampling_distribution, xdog_edges
from .snapshot import SketchSnapshot, SnapshotLevel, finite_or_none
from .svg import SketchLayer, path_data


@dataclass
class LevelSketch:
    """The chosen sketch of one abstraction level, in the source image's pixel coordinates.

    Without ``shape`` each stroke is one cubic (``points`` ``[S, 4, 2]``); with it (a refine) ``points``
    are the segments ``[N, 4, 2]`` of all paths in order (float64), grouped as ``shape`` says, and
    ``locked_paths`` maps each locked path's index to its path data exactly as it was given.
    ``widths`` (source pixels) and ``opacities`` ``[S]`` are per stroke (per path), when they were optimized.
    """

    strokes: int
    seed: int
    points: torch.Tensor
    stroke_width: float
    loss: float
    terms: dict[str, float]  # weighted eval terms by name (conv_layer2, conv_layer3, fc, …)
    shape: PathShape | None = None
    locked_paths: dict[int, str] | None = None
    widths: torch.Tensor | None = None
    opacities: torch.Tensor | None = None

    def path_data(self) -> list[str]:
        """One SVG path data string per stroke, in the source image's pixels (locked paths verbatim)."""
        points = self.points.detach().cpu().double().numpy()
        if self.shape is None:
            return [path_data(stroke) for stroke in points]
        paths = self.shape.path_data(points)
        for index, d in (self.locked_paths or {}).items():
            paths[index] = d
        return paths

    def layer(self, visible: bool = True) -> SketchLayer:
        """This level as an SVG layer labelled ``"<S> strokes"``."""
        return SketchLayer(f"{self.strokes} strokes", self.points.double().numpy(), self.stroke_width, visible,
                           widths=None if self.widths is None else tuple(self.widths.tolist()),
                           opacities=None if self.opacities is None else tuple(self.opacities.tolist()))


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
    target, frame, coverage = masked_canvas(image, params.mask)
    target = target.to(models.device)
    stroke_width = params.stroke_width * frame.scale

    def to_source(best: BestSketches) -> None:
        assert snapshot is not None
        levels = tuple(
            SnapshotLevel(count, frame.to_source(points.double()).numpy(), finite_or_none(loss),
                          None if count not in best.widths else (best.widths[count].double() * frame.scale).numpy(),
                          None if count not in best.opacities else best.opacities[count].double().numpy())
            for count, (points, loss) in best.levels.items())
        snapshot(SketchSnapshot(best.iteration, frame.width, frame.height, float(stroke_width), levels))

    watch = None if snapshot is None else to_source
    prompt = encode_prompt(models.loss, params.text, models.device) if params.text else None
    loss = ClipConvLoss(models.loss, target, LossWeights.from_params(params), prompt)
    if params.init_paths is not None:
        joined = refine_layout(params, frame).to(models.device)
        initial = {len(params.init_paths): joined.free[None].repeat(params.seeds, 1, 1)}
        outcome = optimize_sketches(loss, initial, params, progress, cancel, {len(params.init_paths): joined}, watch)
        levels = [refined_level(outcome.levels[0], params, frame, joined.shape, loss.term_names)]
    else:
        inside = None if coverage is None else inside_pixels(coverage)
        outcome = optimize_sketches(loss, initial_points(target, params, models, inside), params, progress, cancel,
                                    snapshot=watch)
        levels = [
            LevelSketch(
                strokes=level.strokes,
                seed=level.seed,
                points=frame.to_source(level.points.double()).float(),
                stroke_width=stroke_width,
                loss=level.loss,
                terms=dict(zip(loss.term_names, level.terms)),
                widths=source_widths(level, frame),
                opacities=level.opacities,
            )
            for level in outcome.levels
        ]
    return SketchResult(frame.width, frame.height, levels, outcome.iterations, outcome.cancelled)


def refine_layout(params: SketchParams, frame: CanvasFrame) -> JoinedPaths:
    """``params.init_paths`` joined, on the canvas (float32); the locked paths' points are fixed."""
    joined = join_paths(read_paths(params.init_paths or []), params.locked)
    return JoinedPaths(frame.to_canvas(joined.free).float(), frame.to_canvas(joined.fixed).float(), joined.index,
                       joined.shape)


def refined_level(level: LevelOutcome, params: SketchParams, frame: CanvasFrame, shape: PathShape,
                  term_names: Sequence[str]) -> LevelSketch:
    """The refined paths in source pixels; locked paths are put back exactly as given, not mapped twice."""
    points = frame.to_source(level.points.double())
    given = read_paths(params.init_paths or [])
    starts = [sum(shape.segments[:index]) for index in range(len(shape.segments))]
    for index in params.locked:
        points[starts[index]:starts[index] + shape.segments[index]] = torch.from_numpy(given[index].segments)
    return LevelSketch(
        strokes=level.strokes,
        seed=level.seed,
        points=points,
        stroke_width=params.stroke_width * frame.scale,
        loss=level.loss,
        terms=dict(zip(term_names, level.terms)),
        shape=shape,
        locked_paths={index: (params.init_paths or [])[index] for index in params.locked},
        widths=source_widths(level, frame),
        opacities=level.opacities,
    )


def source_widths(level: LevelOutcome, frame: CanvasFrame) -> torch.Tensor | None:
    """The level's optimized stroke widths in the source image's pixels, or ``None``."""
    return None if level.widths is None else level.widths.double() * frame.scale


def masked_canvas(image: Image.Image, mask: str | list[str] | None) -> tuple[torch.Tensor, CanvasFrame,
                                                                           torch.Tensor | None]:
    """The target on the canvas ``[3, S, S]``, white outside ``mask``, its frame, and the mask's coverage ``[S, S]``."""
    target, frame = to_canvas(image, CANVAS_SIZE)
    if mask is None:
        return target, frame, None
    coverage = mask_coverage(mask, frame)
    return whiten_outside(target, coverage), frame, coverage


def initial_points(target: torch.Tensor, params: SketchParams, models: LoadedModels,
                   inside: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
    """Initial strokes per level: stroke count → ``[seeds, S, 4, 2]`` canvas points, one row per sketch seed.

    With ``inside`` ``[H, W]`` (bool, a mask on the canvas) first points are placed only inside it.
    """
    probabilities = None
    if params.attention_init:
        attention = clip_attention(models.saliency, target)
        edges = xdog_edges(models.saliency.normalize(target[None])[0])
        probabilities = sampling_distribution(attention, edges, params.softmax_temperature)
    size = target.shape[-1]
    return {
        count: torch.stack([initial_strokes(probabilities, count, seed, size, inside) for seed in params.sketch_seeds()])
        for count in params.strokes
    }

