"""Snapshots of a run: the current best strokes of every level at one eval step, and a bounded history of them.

A snapshot is a few KB (each level's best strokes as a :class:`~.level.StrokeLevel` in the source image's
pixels, with its best eval loss). :class:`SnapshotHistory` keeps at most ``capacity`` of them whatever the
run's length: when full it drops every other one and from then on keeps only every second offered snapshot
(the stride doubles each time), so early and late moments of the run stay evenly covered. The latest
snapshot is always kept, so a preview is never older than one eval step.

As JSON (what the server stores), a level's strokes are control points ``[S, 4, 2]`` (``"points"``), the
form every version wrote; a level whose paths are not all single cubics (a refine's) is written as path
data (``"paths"``) instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .level import StrokeLevel
from .svg import stroke_paths

DEFAULT_CAPACITY = 120
"""Snapshots a history keeps at most (≈ 0.4 MB of JSON for four levels up to 32 strokes)."""


@dataclass(frozen=True)
class SketchSnapshot:
    """The best sketch of every level after ``iteration`` steps, in the ``width`` × ``height`` source image.

    Every level has the run's pen width (``stroke_width``).
    """

    iteration: int
    width: int
    height: int
    levels: tuple[StrokeLevel, ...]

    @property
    def stroke_width(self) -> float:
        """The run's pen width in source pixels."""
        return self.levels[0].stroke_width

    def entry(self) -> dict[str, Any]:
        """This snapshot as JSON-ready data without the image size and pen width (kept once per history)."""
        return {"iteration": self.iteration, "levels": [_level_entry(level) for level in self.levels]}

    def to_dict(self) -> dict[str, Any]:
        """This snapshot as JSON-ready data, image size included (what a remote worker relays)."""
        return {"width": self.width, "height": self.height, "stroke_width": self.stroke_width, **self.entry()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SketchSnapshot":
        """The snapshot written by :meth:`to_dict`."""
        return cls.from_entry(data, int(data["width"]), int(data["height"]), float(data["stroke_width"]))

    @classmethod
    def from_entry(cls, entry: dict[str, Any], width: int, height: int, stroke_width: float) -> "SketchSnapshot":
        """The snapshot stored by :meth:`entry`, in an image of the given size and pen width."""
        levels = tuple(_level_from_entry(level, stroke_width) for level in entry["levels"])
        return cls(int(entry["iteration"]), width, height, levels)


def _level_entry(level: StrokeLevel) -> dict[str, Any]:
    strokes: dict[str, Any] = (
        {"points": [[[round(float(v), 3) for v in point] for point in level.segments(index)[0]]
                    for index in range(level.strokes)]}
        if level.single_cubics else {"paths": list(level.paths)})
    styles = {name: [round(float(v), 4) for v in values]
              for name, values in (("widths", level.widths), ("opacities", level.opacities)) if values is not None}
    return {"strokes": level.strokes, "loss": level.loss, **strokes, **styles}


def _level_from_entry(entry: dict[str, Any], stroke_width: float) -> StrokeLevel:
    paths = tuple(str(d) for d in entry["paths"]) if "paths" in entry else stroke_paths(np.asarray(entry["points"]))
    widths, opacities = (None if entry.get(name) is None else tuple(float(v) for v in entry[name])
                         for name in ("widths", "opacities"))
    return StrokeLevel(paths, stroke_width, widths, opacities, None if entry["loss"] is None else float(entry["loss"]))


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
