"""Masks: a filled region (SVG path data in the image's pixels, nonzero fill) that says what to sketch.

Outside the mask the target becomes paper white before the saliency map and the loss see it, as a
cut-out object would be, and first points are placed only inside. The region is rasterised onto the
optimizer's canvas with 4 × 4 samples per pixel, so its edge is anti-aliased. Curves are flattened
into short lines (16 per cubic segment; far below a canvas pixel for any mask that fits the image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .errors import ClipassoError
from .image import CanvasFrame
from .path_data import PathDataError, parse_path

SUPERSAMPLE = 4
"""Samples per canvas pixel along each axis."""

LINES_PER_CURVE = 16
"""Straight lines per cubic segment when a mask's outline is flattened."""


class MaskError(ClipassoError):
    """A mask that cannot be used: unreadable, enclosing nothing, or outside the image."""

    code = "invalid_mask"


def mask_coverage(mask: str | Sequence[str], frame: CanvasFrame) -> torch.Tensor:
    """The fraction of each canvas pixel inside ``mask`` (path data in source pixels): ``[size, size]`` in [0, 1].

    A list of path data is the union of their regions, each filled by the nonzero rule. Raises
    :class:`MaskError` when the path data cannot be read, encloses no area, lies outside the image, or is
    too thin to cover any sample of the canvas. Areas are measured exactly (outlines clipped to the image),
    from each outline's own first point, so huge and tiny coordinates measure alike.
    """
    samples = np.zeros((frame.size * SUPERSAMPLE,) * 2, dtype=bool)
    area = inside = 0.0
    for shape in [mask] if isinstance(mask, str) else mask:
        try:
            subpaths = parse_path(shape)
        except PathDataError as error:
            raise MaskError(f"The mask is not valid SVG path data: {error}") from None
        outlines = [_flatten(subpath.segments) for subpath in subpaths if len(subpath.segments)]
        area += sum(abs(_area(outline)) for outline in outlines)
        inside += sum(abs(_area(_clip_to_box(outline, frame.width, frame.height))) for outline in outlines)
        polygons = [frame.to_canvas(torch.from_numpy(outline)).numpy() for outline in outlines]
        samples |= _winding(polygons, frame.size * SUPERSAMPLE, 1.0 / SUPERSAMPLE) != 0
    coverage = samples.reshape(frame.size, SUPERSAMPLE, frame.size, SUPERSAMPLE).mean(axis=(1, 3))
    if not area > 0.0:
        raise MaskError("The mask encloses no area; draw a closed, filled shape around what to sketch.")
    if not inside > 0.0:
        raise MaskError(f"The mask lies outside the image ({frame.width}×{frame.height} pixels); draw it over the "
                        "part of the picture to sketch.")
    if not (coverage * _image_area(frame)).any():
        raise MaskError(f"The mask is too thin to cover any part of the image: only {inside:.3g} square pixels of it lie "
                        f"inside, between the samples the canvas takes (one every {frame.scale / SUPERSAMPLE:.2g} "
                        "pixels); draw a wider shape.")
    return torch.from_numpy(coverage.astype(np.float32))


def whiten_outside(target: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Blend a canvas image ``[3, H, W]`` to white where ``coverage`` ``[H, W]`` is 0 (kept where it is 1)."""
    coverage = coverage.to(device=target.device, dtype=target.dtype)
    return target * coverage + (1.0 - coverage)


def inside_pixels(coverage: torch.Tensor) -> torch.Tensor:
    """Canvas pixels ``[H, W]`` (bool) whose centre region is mostly inside the mask; any covered ones for a sliver."""
    inside = coverage >= 0.5
    return inside if bool(inside.any()) else coverage > 0


def _flatten(segments: np.ndarray) -> np.ndarray:
    """Points ``[N·LINES_PER_CURVE + 1, 2]`` along cubic segments ``[N, 4, 2]``."""
    t = np.linspace(0.0, 1.0, LINES_PER_CURVE + 1)[:-1, None]
    basis = np.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3], axis=0)  # [4, L, 1]
    points = np.einsum("klx,nkd->nld", basis, segments).reshape(-1, 2)
    return np.concatenate([points, segments[-1:, 3]], axis=0)


def _winding(polygons: list[np.ndarray], samples: int, step: float) -> np.ndarray:
    """Nonzero winding numbers ``[samples, samples]`` of sample points ``((i + ½)·step)`` for closed polygons.

    Each edge that crosses a sample row adds its direction (+1 down, −1 up) to every sample left of the crossing.
    """
    change = np.zeros((samples, samples + 1), dtype=np.int32)
    for polygon in polygons:
        start, end = polygon, np.roll(polygon, -1, axis=0)  # the last point joins the first: fill closes subpaths
        y0, y1 = start[:, 1], end[:, 1]
        direction = np.where(y1 > y0, 1, -1)
        low, high = np.minimum(y0, y1), np.maximum(y0, y1)
        first = np.clip(np.ceil(low / step - 0.5), 0, samples).astype(np.int64)
        last = np.clip(np.ceil(high / step - 0.5), 0, samples).astype(np.int64)  # rows in [first, last)
        counts = last - first
        edges = np.repeat(np.arange(len(start)), counts)
        if not len(edges):
            continue
        rows = first[edges] + np.arange(len(edges)) - np.repeat(np.cumsum(counts) - counts, counts)
        y = (rows + 0.5) * step
        x0, x1, e0, e1 = start[edges, 0], end[edges, 0], y0[edges], y1[edges]
        x = x0 + (y - e0) * (x1 - x0) / (e1 - e0)
        column = np.clip(np.ceil(x / step - 0.5), 0, samples).astype(np.int64)  # samples with centre < x
        np.add.at(change, (rows, np.zeros_like(rows)), direction[edges])
        np.add.at(change, (rows, column), -direction[edges])
    return np.cumsum(change, axis=1)[:, :samples]


def _area(polygon: np.ndarray) -> float:
    """Signed area of a closed polygon ``[N, 2]`` (the shoelace formula, from its first point: no cancellation
    between large coordinates)."""
    if len(polygon) < 3:
        return 0.0
    x, y = (polygon - polygon[0]).T
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _clip_to_box(polygon: np.ndarray, width: float, height: float) -> np.ndarray:
    """The closed polygon ``[N, 2]`` clipped to the box [0, width] × [0, height] (Sutherland–Hodgman): ``[M, 2]``."""
    for axis, bound, below in ((0, 0.0, False), (0, width, True), (1, 0.0, False), (1, height, True)):
        if not len(polygon):
            break
        polygon = _clip_half(polygon, axis, bound, below)
    return polygon


def _clip_half(polygon: np.ndarray, axis: int, bound: float, below: bool) -> np.ndarray:
    """The closed polygon ``[N, 2]`` cut to the half plane ``coordinate[axis] ≤ bound`` (``below``) or ``≥ bound``."""
    following = np.roll(polygon, -1, axis=0)
    here, there = polygon[:, axis], following[:, axis]
    keep_here = here <= bound if below else here >= bound
    keep_there = there <= bound if below else there >= bound
    crossing = keep_here != keep_there
    t = (bound - here[crossing]) / (there[crossing] - here[crossing])
    points = np.empty((len(polygon), 2, 2))
    points[:, 0] = polygon
    points[crossing, 1] = polygon[crossing] + t[:, None] * (following[crossing] - polygon[crossing])
    points[crossing, 1, axis] = bound
    return points[np.stack([keep_here, crossing], axis=1)]


def _image_area(frame: CanvasFrame) -> np.ndarray:
    """Canvas pixels ``[size, size]`` (bool) that show the image rather than the white padding."""
    left, top = (np.asarray(frame.offset, dtype=np.float64)) / frame.scale
    right, bottom = left + frame.width / frame.scale, top + frame.height / frame.scale
    centres = np.arange(frame.size) + 0.5
    columns = (centres > left) & (centres < right)
    rows = (centres > top) & (centres < bottom)
    return rows[:, None] & columns[None, :]
