"""Tidy a level of strokes: leave out specks and near-duplicates.

A speck is a stroke whose drawn length is under :data:`SPECK_FRACTION` of the picture's diagonal. A
near-duplicate lies within :data:`DUPLICATE_FRACTION` of the diagonal of a stroke kept before it, measured
both ways as the mean distance from each stroke's points to the other stroke (so a stroke drawn backwards
over another counts too, a short one lying along a long one does not). The first ``keep`` paths (a refine's
own paths) are always kept; the others are looked at in order, and a level keeps at least one stroke.
Coordinates are the image's pixels.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .level import StrokeLevel

SPECK_FRACTION = 0.02
"""A stroke shorter than this fraction of the picture's diagonal is a speck."""

DUPLICATE_FRACTION = 0.01
"""A stroke whose mean distance to a kept one (both ways) is under this fraction of the diagonal duplicates it."""

SAMPLES_PER_SEGMENT = 16


def sample_path(segments: np.ndarray, samples: int = SAMPLES_PER_SEGMENT) -> np.ndarray:
    """Points ``[n·samples + 1, 2]`` along the cubic segments ``[n, 4, 2]`` at evenly spaced parameters."""
    t = np.linspace(0.0, 1.0, samples + 1)[:, None]
    basis = np.concatenate([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3], axis=1)  # [samples+1, 4]
    points = np.einsum("sk,nkd->nsd", basis, segments)  # [n, samples+1, 2]
    return np.concatenate([points[:, :-1].reshape(-1, 2), points[-1:, -1]]) if len(segments) else np.zeros((0, 2))


def drawn_length(points: np.ndarray) -> float:
    """Length of the polyline through ``points`` ``[K, 2]``."""
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def mutual_distance(first: np.ndarray, second: np.ndarray) -> float:
    """The larger of the two mean distances from one point set ``[K, 2]`` to the nearest point of the other."""
    gaps = np.linalg.norm(first[:, None] - second[None], axis=-1)
    return float(max(gaps.min(axis=1).mean(), gaps.min(axis=0).mean()))


def left_out_strokes(level: StrokeLevel, width: int, height: int, keep: int = 0) -> list[int]:
    """Indices of the paths past the first ``keep`` that are specks or near-duplicates in a ``width`` × ``height``
    picture."""
    diagonal = float(np.hypot(width, height))
    samples = [sample_path(level.segments(index)) for index in range(level.strokes)]
    kept = list(range(min(keep, level.strokes)))
    left_out = []
    for index in range(len(kept), level.strokes):
        speck = drawn_length(samples[index]) < SPECK_FRACTION * diagonal
        if speck or any(mutual_distance(samples[index], samples[other]) < DUPLICATE_FRACTION * diagonal
                        for other in kept):
            left_out.append(index)
        else:
            kept.append(index)
    if not kept and left_out:  # a level keeps at least its longest stroke
        left_out.remove(max(left_out, key=lambda index: drawn_length(samples[index])))
    return left_out


def tidy_level(level: StrokeLevel, width: int, height: int, keep: int = 0) -> StrokeLevel:
    """``level`` without its specks and near-duplicates (never its first ``keep`` paths); ``left_out`` says how many."""
    dropped = set(left_out_strokes(level, width, height, keep))
    kept = [index for index in range(level.strokes) if index not in dropped]

    def pick(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return None if values is None else tuple(values[index] for index in kept)

    return replace(level, paths=tuple(level.paths[index] for index in kept), widths=pick(level.widths),
                   opacities=pick(level.opacities), added=sum(level.is_added(index) for index in kept),
                   left_out=len(dropped))
