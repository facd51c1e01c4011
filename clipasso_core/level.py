"""One level of a sketch as a value: its strokes as SVG path data in the source image's pixels, and their style.

This is what leaves the engine (whose strokes are canvas tensors, see :mod:`.sketch`) and what every
edge takes: the SVG writer, the snapshots and their animation, the PNG preview, the ``clipasso``
command and the server's result body, each edge keeping its own wire form. A stroke is one path
``M x y C x y x y x y`` (a refined path may have several ``C`` segments and end in ``Z``); a refine's
locked paths are kept exactly as the designer gave them, and the strokes it added come last.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .path_data import Subpath, parse_path

__all__ = ["StrokeLevel"]


@dataclass(frozen=True)
class StrokeLevel:
    """The strokes of one level: ``paths`` (one path data string each) drawn with a pen of ``stroke_width``.

    ``stroke_width`` and ``widths`` are in the source image's pixels; ``widths`` / ``opacities``, when
    given, are each path's own stroke width and opacity (the job optimized them), in path order.
    ``loss`` is the chosen sketch's eval loss (``None`` when unknown or not finite), ``seed`` the
    attempt that won it (``None`` when unknown). ``added`` counts the strokes a refine added to the designer's:
    the last ``added`` paths. ``left_out`` counts the strokes a tidy left out (``None``: not tidied).
    """

    paths: tuple[str, ...]
    stroke_width: float
    widths: tuple[float, ...] | None = None
    opacities: tuple[float, ...] | None = None
    loss: float | None = None
    seed: int | None = None
    added: int = 0
    left_out: int | None = None

    def __post_init__(self) -> None:
        for name, values in (("widths", self.widths), ("opacities", self.opacities)):
            if values is not None and len(values) != len(self.paths):
                raise ValueError(f"{len(values)} {name} for {len(self.paths)} paths")
        if not 0 <= self.added <= len(self.paths):
            raise ValueError(f"{self.added} added strokes among {len(self.paths)} paths")

    def is_added(self, index: int) -> bool:
        """Whether path ``index`` is one a refine added (not one of the designer's)."""
        return index >= len(self.paths) - self.added

    @property
    def strokes(self) -> int:
        """How many strokes (paths) the level has."""
        return len(self.paths)

    def width_of(self, index: int) -> float:
        """Path ``index``'s stroke width: its own, or the pen's."""
        return self.stroke_width if self.widths is None else self.widths[index]

    def opacity_of(self, index: int) -> float:
        """Path ``index``'s opacity: its own, or 1."""
        return 1.0 if self.opacities is None else self.opacities[index]

    @cached_property
    def subpaths(self) -> tuple[tuple[Subpath, ...], ...]:
        """Each path parsed into its subpaths of cubic segments (one for every path this package writes)."""
        return tuple(tuple(parse_path(d)) for d in self.paths)

    def segments(self, index: int) -> np.ndarray:
        """The cubic segments ``[n, 4, 2]`` (float64) of path ``index``, all its subpaths in order."""
        parts = [subpath.segments for subpath in self.subpaths[index]]
        return np.concatenate(parts) if parts else np.zeros((0, 4, 2))

    @property
    def single_cubics(self) -> bool:
        """Whether every path is one open cubic ``M … C …``, as a sketch (not a refine) draws its strokes."""
        return all(len(parts) == 1 and len(parts[0].segments) == 1 and not parts[0].closed for parts in self.subpaths)
