"""One sketch job from image to strokes: preprocess → saliency init → batched optimisation → source coordinates.

This is the library call behind ``clipasso sketch`` and the sketch server. A job with ``init_paths``
(a refine) starts from those paths instead of the saliency init, keeps each one a joined path and
returns its locked paths exactly as given; with ``add_strokes`` it completes them: the new strokes start
where the picture is salient and the paths leave it uncovered, and come back after the given paths.
Every job keeps its strokes on the picture: first points are drawn on it (not in the padding of a picture
that is not square) and the optimizer projects every control point into its rectangle. With ``tidy``
specks and near-duplicates are left out of the result (:mod:`.tidy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image

from .image import CanvasFrame, to_canvas
from .joined_paths import JoinedPaths, PathShape, join_paths, read_paths
from .level import StrokeLevel
from .loss import ClipConvLoss, LossWeights
from .mask import inside_pixels, mask_coverage, whiten_outside
from .models import LoadedModels, encode_prompt
from .optimize import BestSketches, CancelSignal, LevelOutcome, Progress, optimize_sketches
from .params import CANVAS_SIZE, SketchParams
from .raster import rasterize
from .saliency import clip_attention, initial_strokes, sampling_distribution, uncovered, xdog_edges
from .snapshot import SketchSnapshot, finite_or_none
from .svg import stroke_paths
from .tidy import tidy_level


@dataclass
class SketchResult:
    """Every level of one image's sketch, plus how the run ended."""

    width: int
    height: int
    levels: list[StrokeLevel]
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
    inside = frame.picture_pixels() if coverage is None else inside_pixels(coverage)
    start = None if params.init_paths is None else refine_start(params, frame, target, models, inside)
    shape = None if start is None else start.layout.shape

    def to_source(best: BestSketches) -> None:
        assert snapshot is not None
        levels = tuple(
            source_level(points, params, frame, shape, loss=loss, widths=_per_path(best.widths.get(count), shape),
                         opacities=_per_path(best.opacities.get(count), shape))
            for count, (points, loss) in best.levels.items())
        snapshot(SketchSnapshot(best.iteration, frame.width, frame.height, levels))

    watch = None if snapshot is None else to_source
    prompt = encode_prompt(models.loss, params.text, models.device) if params.text else None
    loss = ClipConvLoss(models.loss, target, LossWeights.from_params(params), prompt, params.loss_size)
    within = frame.picture_box()
    if start is not None:
        count = len(start.layout.shape.segments)
        outcome = optimize_sketches(loss, {count: start.points}, params, progress, cancel, {count: start.layout},
                                    watch, within=within)
    else:
        outcome = optimize_sketches(loss, initial_points(target, params, models, inside), params, progress, cancel,
                                    snapshot=watch, within=within)
    levels = [outcome_level(level, params, frame, shape) for level in outcome.levels]
    if params.tidy:
        levels = [tidy_level(level, frame.width, frame.height, keep=len(params.init_paths or ())) for level in levels]
    return SketchResult(frame.width, frame.height, levels, outcome.iterations, outcome.cancelled)


def source_level(points: torch.Tensor, params: SketchParams, frame: CanvasFrame, shape: PathShape | None = None, *,
                 loss: float, seed: int | None = None, widths: torch.Tensor | None = None,
                 opacities: torch.Tensor | None = None) -> StrokeLevel:
    """Canvas strokes as a level in the source image's pixels: the engine's boundary.

    ``points`` are one cubic per stroke ``[S, 4, 2]``, or with ``shape`` (a refine) the segments ``[N, 4, 2]``
    of all paths in order, whose locked paths are put back exactly as ``params.init_paths`` gave them (the
    ``params.add_strokes`` added ones, last, are marked as added).
    ``widths`` (canvas pixels) and ``opacities`` ``[S]`` are per stroke (per path), when they were optimized.
    """
    source = frame.to_source(points.detach().cpu().double()).numpy()
    if shape is None:
        paths = list(stroke_paths(source))
    else:
        paths = shape.path_data(source)
        for index in params.locked:
            paths[index] = (params.init_paths or [])[index]
    return StrokeLevel(
        tuple(paths), float(params.stroke_width * frame.scale),
        widths=None if widths is None else tuple((widths.detach().cpu().double() * frame.scale).tolist()),
        opacities=None if opacities is None else tuple(opacities.detach().cpu().double().tolist()),
        loss=finite_or_none(loss), seed=seed, added=params.add_strokes if shape is not None else 0)


def outcome_level(level: LevelOutcome, params: SketchParams, frame: CanvasFrame,
                  shape: PathShape | None = None) -> StrokeLevel:
    """One level's winner in the source image's pixels."""
    return source_level(level.points, params, frame, shape, loss=level.loss, seed=level.seed, widths=level.widths,
                        opacities=level.opacities)


def _per_path(values: torch.Tensor | None, shape: PathShape | None) -> torch.Tensor | None:
    """Per-segment values ``[N]`` of a refine as per-path values (each path's first segment's); others as they are."""
    if values is None or shape is None:
        return values
    starts = torch.tensor([0, *shape.segments[:-1]]).cumsum(0)
    return values[starts]


def refine_layout(params: SketchParams, frame: CanvasFrame) -> JoinedPaths:
    """``params.init_paths`` joined, on the canvas (float32); the locked paths' points are fixed."""
    joined = join_paths(read_paths(params.init_paths or []), params.locked)
    return JoinedPaths(frame.to_canvas(joined.free).float(), frame.to_canvas(joined.fixed).float(), joined.index,
                       joined.shape)


def masked_canvas(image: Image.Image, mask: str | list[str] | None) -> tuple[torch.Tensor, CanvasFrame,
                                                                           torch.Tensor | None]:
    """The target on the canvas ``[3, S, S]``, white outside ``mask``, its frame, and the mask's coverage ``[S, S]``."""
    target, frame = to_canvas(image, CANVAS_SIZE)
    if mask is None:
        return target, frame, None
    coverage = mask_coverage(mask, frame)
    return whiten_outside(target, coverage), frame, coverage


@dataclass
class RefineStart:
    """Where a refine starts: its paths (and added strokes) as a layout on the canvas, and the optimized tensor
    ``[seeds, P, 2]`` of each attempt."""

    layout: JoinedPaths
    points: torch.Tensor


def refine_start(params: SketchParams, frame: CanvasFrame, target: torch.Tensor, models: LoadedModels,
                 inside: torch.Tensor | None) -> RefineStart:
    """``params.init_paths`` on the canvas, followed by ``params.add_strokes`` new strokes per attempt, placed
    where the picture is salient and the paths' ink is not (first points only ``inside``, when given)."""
    joined = refine_layout(params, frame).to(target.device)
    start = joined.free[None].repeat(params.seeds, 1, 1)
    if not params.add_strokes:
        return RefineStart(joined, start)
    size = target.shape[-1]
    ink = 1.0 - rasterize(joined.segments(joined.free)[None], params.stroke_width, (size, size))[0]
    salient = placement_distribution(target, params, models)
    probabilities = uncovered(None if salient is None else salient.cpu(), ink.detach().cpu())
    added = torch.stack([initial_strokes(probabilities, params.add_strokes, seed, size, inside)
                         for seed in params.sketch_seeds()]).to(start)
    return RefineStart(joined.with_new_strokes(params.add_strokes),
                       torch.cat([start, added.reshape(params.seeds, -1, 2)], dim=1))


def placement_distribution(target: torch.Tensor, params: SketchParams, models: LoadedModels) -> torch.Tensor | None:
    """Where first points go: CLIP attention on the target's edges as probabilities ``[H, W]`` (``None``: uniform)."""
    if not params.attention_init:
        return None
    attention = clip_attention(models.saliency, target)
    edges = xdog_edges(models.saliency.normalize(target[None])[0])
    return sampling_distribution(attention, edges, params.softmax_temperature)


def initial_points(target: torch.Tensor, params: SketchParams, models: LoadedModels,
                   inside: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
    """Initial strokes per level: stroke count → ``[seeds, S, 4, 2]`` canvas points, one row per sketch seed.

    With ``inside`` ``[H, W]`` (bool: a mask, or the picture, on the canvas) first points are placed only inside it.
    """
    probabilities = placement_distribution(target, params, models)
    size = target.shape[-1]
    return {
        count: torch.stack([initial_strokes(probabilities, count, seed, size, inside) for seed in params.sketch_seeds()])
        for count in params.strokes
    }

