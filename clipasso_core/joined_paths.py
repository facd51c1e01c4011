"""Designers' paths as optimizer strokes: joined segments with shared end points, locked paths held fixed.

A path of n cubic segments is stored as its 3n+1 distinct control points (3n when it is closed: the last
segment ends on the first point), so the end of one segment and the start of the next are one parameter
and move together. The rasterizer draws segments, so :class:`JoinedPaths` keeps an index ``[N, 4]``
from the N segments of all paths into the points; the points of locked paths are constants that never
take part in the optimisation (they are drawn and count in the loss, but nothing changes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .path_data import PathDataError, Subpath, format_path, parse_path

__all__ = ["PathShape", "JoinedPaths", "read_paths", "join_paths", "split_segments"]


@dataclass(frozen=True)
class PathShape:
    """How consecutive segments group into paths: segments per path and whether each path is closed."""

    segments: tuple[int, ...]
    closed: tuple[bool, ...]

    def path_data(self, segments: np.ndarray) -> list[str]:
        """One absolute path data string per path, from the segments ``[N, 4, 2]`` of all paths in order."""
        return [format_path([subpath]) for subpath in split_segments(segments, self)]


def read_paths(paths: Sequence[str]) -> list[Subpath]:
    """Parse each path data string into exactly one subpath; raises ``ValueError`` naming the bad path."""
    subpaths = []
    for number, d in enumerate(paths):
        try:
            parsed = parse_path(d)
        except PathDataError as error:
            raise ValueError(f"path {number}: {error}") from None
        if not parsed:
            raise ValueError(f"path {number} draws nothing; give at least one segment after its M")
        if len(parsed) > 1:
            raise ValueError(f"path {number} has {len(parsed)} subpaths; give each stroke as its own path")
        subpaths.append(parsed[0])
    return subpaths


def split_segments(segments: np.ndarray, shape: PathShape) -> list[Subpath]:
    """The subpaths of ``shape`` cut from all paths' segments ``[N, 4, 2]``, in order."""
    bounds = np.cumsum((0, *shape.segments))
    return [Subpath(np.asarray(segments[start:end], dtype=np.float64), closed)
            for start, end, closed in zip(bounds[:-1], bounds[1:], shape.closed)]


def _distinct_points(subpath: Subpath) -> np.ndarray:
    """The path's distinct control points ``[3n+1, 2]`` (``[3n, 2]`` when closed onto its start)."""
    segments = subpath.segments
    points = np.concatenate([segments[:1, 0], segments[:, 1:].reshape(-1, 2)])
    if subpath.closed and np.array_equal(points[-1], points[0]):
        points = points[:-1]
    return points


@dataclass
class JoinedPaths:
    """Paths as shared points: ``free`` ``[P, 2]`` are optimized, ``fixed`` ``[Q, 2]`` are the locked paths'.

    ``index`` ``[N, 4]`` picks each segment's control points from ``cat(free, fixed)``; segments are in
    path order, grouped as ``shape`` says.
    """

    free: torch.Tensor
    fixed: torch.Tensor
    index: torch.Tensor
    shape: PathShape
    _segment_paths: dict[torch.device, torch.Tensor] = field(default_factory=dict, init=False, repr=False,
                                                             compare=False)

    def segments(self, free: torch.Tensor) -> torch.Tensor:
        """Segments ``[..., N, 4, 2]`` of free points ``[..., P, 2]`` (laid out as :attr:`free`) and the fixed ones."""
        fixed = self.fixed.to(free.dtype).expand(*free.shape[:-2], *self.fixed.shape)
        return torch.cat([free, fixed], dim=-2)[..., self.index, :]

    def per_segment(self, values: torch.Tensor) -> torch.Tensor:
        """Per-path values ``[..., paths]`` (e.g. widths) repeated for each path's segments: ``[..., N]``.

        Each segment's path number is copied to a device once (a captured CUDA graph copies nothing from the host).
        """
        paths = self._segment_paths.get(values.device)
        if paths is None:
            counts = torch.tensor(self.shape.segments)
            paths = torch.repeat_interleave(torch.arange(len(counts)), counts).to(values.device)
            self._segment_paths[values.device] = paths
        return values.index_select(-1, paths)

    def with_new_strokes(self, count: int) -> JoinedPaths:
        """These paths followed by ``count`` new open single-cubic strokes, whose 4 points each are appended to
        :attr:`free` (as zeros: the caller sets them) after the paths' own free points."""
        if count == 0:
            return self
        first = self.free.shape[0]
        index = torch.where(self.index >= first, self.index + 4 * count, self.index)
        new = torch.arange(first, first + 4 * count, dtype=index.dtype, device=index.device).reshape(count, 4)
        free = torch.cat([self.free, self.free.new_zeros((4 * count, 2))])
        shape = PathShape(self.shape.segments + (1,) * count, self.shape.closed + (False,) * count)
        return JoinedPaths(free, self.fixed, torch.cat([index, new]), shape)

    def to(self, device: torch.device) -> JoinedPaths:
        """The same paths with every tensor on ``device``."""
        return JoinedPaths(self.free.to(device), self.fixed.to(device), self.index.to(device), self.shape)


def join_paths(subpaths: Sequence[Subpath], locked: Sequence[int] = ()) -> JoinedPaths:
    """Join each subpath's segments through shared points; the points of paths in ``locked`` become fixed.

    Points stay float64 as given; ``joined.segments(joined.free)`` reproduces every input segment exactly.
    """
    locked_set = set(locked)
    free: list[np.ndarray] = []
    fixed: list[np.ndarray] = []
    placed: list[tuple[bool, int, int]] = []  # (locked, first point, point count) per path
    counts = {False: 0, True: 0}
    for number, subpath in enumerate(subpaths):
        is_locked = number in locked_set
        points = _distinct_points(subpath)
        (fixed if is_locked else free).append(points)
        placed.append((is_locked, counts[is_locked], len(points)))
        counts[is_locked] += len(points)
    rows = []
    for (is_locked, first, count), subpath in zip(placed, subpaths):
        base = first + (counts[False] if is_locked else 0)
        for k in range(len(subpath.segments)):
            rows.append([base + (3 * k + j) % count if j == 3 else base + 3 * k + j for j in range(4)])

    def stack(parts: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros((0, 2), dtype=torch.float64)

    shape = PathShape(tuple(len(s.segments) for s in subpaths), tuple(s.closed for s in subpaths))
    return JoinedPaths(stack(free), stack(fixed), torch.tensor(rows, dtype=torch.long).reshape(-1, 4), shape)
