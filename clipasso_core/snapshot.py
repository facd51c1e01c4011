"""Snapshots of a run: the current best strokes of every level at one eval step, and a bounded history of them.

A snapshot is a few KB (control points ``[S, 4, 2]`` per level in the source image's pixels, plus each
level's best eval loss). :class:`SnapshotHistory` keeps at most ``capacity`` of them whatever the run's
length: when full it drops every other one and from then on keeps only every second offered snapshot
(the stride doubles each time), so early and late moments of the run stay evenly covered. The latest
snapshot is always kept, so a preview is never older than one eval step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .svg import SketchLayer

DEFAULT_CAPACITY = 120
"""Snapshots a history keeps at most (≈ 0.4 MB of JSON for four levels up to 32 strokes)."""


@dataclass(frozen=True)
class SnapshotLevel:
    """One level at one moment: its best strokes ``[S, 4, 2]`` in source pixels and its best eval loss.

    ``widths`` (source pixels) and ``opacities`` ``[S]`` are each stroke's own, when the run optimizes them.
    """

    strokes: int
    points: np.ndarray
    loss: float | None
    widths: np.ndarray | None = None
    opacities: np.ndarray | None = None

    def width_of(self, stroke: int, default: float) -> float:
        """Stroke ``stroke``'s width: its own, or ``default`` (the run's pen)."""
        return default if self.widths is None else float(self.widths[stroke])

    def opacity_of(self, stroke: int) -> float:
        """Stroke ``stroke``'s opacity: its own, or 1."""
        return 1.0 if self.opacities is None else float(self.opacities[stroke])


@dataclass(frozen=True)
class SketchSnapshot:
    """The best sketch of every level after ``iteration`` steps, in the ``width`` × ``height`` source image."""

    iteration: int
    width: int
    height: int
    stroke_width: float
    levels: tuple[SnapshotLevel, ...]

    def layers(self) -> list[SketchLayer]:
        """One SVG layer per level (``"<S> strokes"``), only the most detailed one visible, as ``clipasso sketch`` writes."""
        last = len(self.levels) - 1
        return [SketchLayer(f"{level.strokes} strokes", level.points, self.stroke_width, index == last,
                            widths=_floats(level.widths), opacities=_floats(level.opacities))
                for index, level in enumerate(self.levels)]

    def entry(self) -> dict[str, Any]:
        """This snapshot as JSON-ready data without the image size (kept once per history)."""
        return {
            "iteration": self.iteration,
            "levels": [{"strokes": level.strokes, "loss": level.loss,
                        "points": np.round(level.points.astype(np.float64), 3).tolist(),
                        **{name: np.round(values.astype(np.float64), 4).tolist()
                           for name, values in (("widths", level.widths), ("opacities", level.opacities))
                           if values is not None}} for level in self.levels],
        }

    def to_dict(self) -> dict[str, Any]:
        """This snapshot as JSON-ready data, image size included (what a remote worker relays)."""
        return {"width": self.width, "height": self.height, "stroke_width": self.stroke_width, **self.entry()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SketchSnapshot":
        """The snapshot written by :meth:`to_dict`."""
        return cls.from_entry(data, int(data["width"]), int(data["height"]), float(data["stroke_width"]))

    @classmethod
    def from_entry(cls, entry: dict[str, Any], width: int, height: int, stroke_width: float) -> "SketchSnapshot":
        """The snapshot stored by :meth:`entry`, in an image of the given size and stroke width."""
        levels = tuple(
            SnapshotLevel(int(level["strokes"]), np.asarray(level["points"], dtype=np.float64).reshape(-1, 4, 2),
                          None if level["loss"] is None else float(level["loss"]),
                          *(None if level.get(name) is None else np.asarray(level[name], dtype=np.float64)
                            for name in ("widths", "opacities")))
            for level in entry["levels"]
        )
        return cls(int(entry["iteration"]), width, height, stroke_width, levels)


def _floats(values: np.ndarray | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(value) for value in values)


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or ``None`` when it is NaN or infinite (JSON has no such numbers)."""
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class SnapshotHistory:
    """Snapshots of one run in iteration order, bounded by ``capacity`` (≥ 2), the latest always included."""

    capacity: int = DEFAULT_CAPACITY
    total: int | None = None
    kept: list[SketchSnapshot] = field(default_factory=list)
    stride: int = 1
    offered: int = 0
    latest: SketchSnapshot | None = None

    def add(self, snapshot: SketchSnapshot) -> None:
        """Record ``snapshot``; thin out the older ones when the history is full."""
        if self.offered % self.stride == 0:
            self.kept.append(snapshot)
            if len(self.kept) > self.capacity:
                self.kept = self.kept[::2]
                self.stride *= 2
        self.offered += 1
        self.latest = snapshot

    def snapshots(self) -> list[SketchSnapshot]:
        """The kept snapshots in order, ending with the latest one."""
        if self.latest is None:
            return []
        if self.kept and self.kept[-1] is self.latest:
            return list(self.kept)
        return [*self.kept, self.latest]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the image size and stroke width once, then every snapshot."""
        latest = self.latest
        return {
            "width": None if latest is None else latest.width,
            "height": None if latest is None else latest.height,
            "stroke_width": None if latest is None else latest.stroke_width,
            "total": self.total, "capacity": self.capacity, "stride": self.stride, "offered": self.offered,
            "snapshots": [snapshot.entry() for snapshot in self.snapshots()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SnapshotHistory":
        """The history written by :meth:`to_dict`."""
        history = cls(capacity=int(data["capacity"]), total=data.get("total"), stride=int(data["stride"]),
                      offered=int(data["offered"]))
        entries = data["snapshots"]
        if entries:
            size = (int(data["width"]), int(data["height"]), float(data["stroke_width"]))
            snapshots = [SketchSnapshot.from_entry(entry, *size) for entry in entries]
            history.kept, history.latest = snapshots, snapshots[-1]
        return history
