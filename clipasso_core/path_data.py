"""SVG path data (the ``d`` attribute) → subpaths of cubic Bézier segments, and back.

Every SVG path command is understood: M/L/H/V/C/S/Q/T/A/Z, absolute and relative, with implicit
repetitions (``M 0 0 10 10`` is a move then a line) and the compact number syntax (``M.5.5l-1e1,2``,
arc flags without separators). Lines and quadratics are written exactly as cubics; elliptical arcs as
cubics of at most 90° each (error below 3·10⁻⁴ of the radius). Coordinates are returned as given
(no unit, no transform); :func:`transform_subpaths` applies an affine map.

Numbers are SVG's, in ASCII only (``١٠`` is not a number). Every coordinate, given or reached through a
relative command, an arc or a transform, stays within ±:data:`MAX_COORDINATE`; anything beyond is refused in
one sentence. Arc radii are clamped to [:data:`MIN_ARC_RADIUS`, :data:`MAX_ARC_RADIUS`] (keeping their ratio
where they are too small, which SVG scales up to fit anyway), so an arc of radius 1e300 or 1e-300 draws
as SVG says instead of overflowing.

Used for masks (a filled region) and for designers' paths that become strokes; both read path data
through :func:`parse_path`, the one parser of the package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ClipassoError
from .svg_xml import NUMBER_RE

__all__ = ["PathDataError", "Subpath", "MAX_COORDINATE", "MIN_ARC_RADIUS", "MAX_ARC_RADIUS", "parse_path",
           "format_path", "transform_subpaths"]

MAX_COORDINATE = 1e6
"""Largest magnitude of any coordinate of a path, in its user units (image pixels for masks and strokes)."""
MAX_ARC_RADIUS = 1e9
"""Arc radii beyond this are clamped to it: over a chord within the coordinate bounds such an arc bends by at most
c²/(2·10⁹) (a thousandth of a pixel for a 1400-pixel chord), so it draws the same as the radius given."""
MIN_ARC_RADIUS = 1e-9
"""Arc radii below this are scaled up to it (both by the same factor): SVG scales radii too small for their
chord up to fit it, so their size never shows, only their ratio."""


class PathDataError(ClipassoError):
    """SVG path data that cannot be read."""

    code = "invalid_path"


@dataclass(frozen=True)
class Subpath:
    """One subpath: ``segments`` ``[N, 4, 2]`` (float64) are cubic control points, each segment starting
    where the previous one ends; ``closed`` when it ended with Z (then its last segment ends at its start)."""

    segments: np.ndarray
    closed: bool

    @property
    def start(self) -> np.ndarray:
        """The first point ``[2]``."""
        return self.segments[0, 0]


_SEPARATORS = " \t\n\r\f,"
_ARGUMENTS = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "A": 7, "Z": 0}


class _Scanner:
    """Reads numbers, arc flags and command letters from path data, skipping separators."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SEPARATORS:
            self.pos += 1

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def number(self) -> float:
        self.skip()
        match = NUMBER_RE.match(self.text, self.pos)
        if match is None:
            raise self.error("expected a number")
        value = float(match.group())
        if not math.isfinite(value):
            raise self.error("a number is too large")
        self.pos = match.end()
        return value

    def flag(self) -> float:
        self.skip()
        if self.pos < len(self.text) and self.text[self.pos] in "01":
            self.pos += 1
            return float(self.text[self.pos - 1])
        raise self.error("expected an arc flag (0 or 1)")

    def error(self, what: str) -> PathDataError:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "…"
        return PathDataError(f"Path data {shown!r} cannot be read: {what} at character {self.pos + 1}.")


def parse_path(d: str) -> list[Subpath]:
    """The subpaths of SVG path data ``d``, as cubic segments in absolute coordinates.

    Subpaths that draw nothing (a lone ``M``) are left out; empty path data gives an empty list.
    Raises :class:`PathDataError` (one sentence saying where) on anything SVG would not draw.
    """
    scanner = _Scanner(d)
    builder = _Builder()
    command = ""
    while not scanner.at_end():
        letter = scanner.peek()
        if letter.upper() in _ARGUMENTS:
            scanner.pos += 1
            command = letter
        elif not command:
            raise scanner.error("path data must start with a move (M or m)")
        elif command in "Zz":
            raise scanner.error("a number after Z")
        # else: an implicit repetition of the previous command
        if not builder.started and command not in "Mm":
            raise scanner.error("path data must start with a move (M or m)")
        upper = command.upper()
        if upper == "A":
            values = [scanner.number(), scanner.number(), scanner.number(), scanner.flag(), scanner.flag(),
                      scanner.number(), scanner.number()]
        else:
            values = [scanner.number() for _ in range(_ARGUMENTS[upper])]
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below, in words
                builder.apply(upper, command.islower(), values)
        except _OutOfBounds:
            raise scanner.error(f"a coordinate beyond ±{MAX_COORDINATE:,.0f}") from None
        if command == "M":
            command = "L"
        elif command == "m":
            command = "l"
    return builder.finish()


class _OutOfBounds(Exception):
    """A point of the path beyond ±MAX_COORDINATE (or not a number at all)."""


def _bounded(points: np.ndarray) -> np.ndarray:
    """``points`` as they are when every coordinate is within ±MAX_COORDINATE; raises :class:`_OutOfBounds`."""
    if not np.all(np.abs(points) <= MAX_COORDINATE):  # NaN fails the comparison too
        raise _OutOfBounds
    return points


class _Builder:
    """Turns commands into cubic segments, tracking the current point and the reflection points of S and T."""

    def __init__(self) -> None:
        self.subpaths: list[Subpath] = []
        self.segments: list[np.ndarray] = []
        self.current = np.zeros(2)
        self.start = np.zeros(2)
        self.started = False
        self.last_cubic: np.ndarray | None = None  # second control point of the previous C/S
        self.last_quad: np.ndarray | None = None  # control point of the previous Q/T

    def apply(self, command: str, relative: bool, values: list[float]) -> None:
        base = self.current if relative else np.zeros(2)
        cubic, quad = None, None
        if command == "M":
            self._end_subpath(closed=False)
            self.current = _bounded(base + values)
            self.start = self.current.copy()
            self.started = True
        elif command == "Z":
            if self.segments and not np.array_equal(self.current, self.start):
                self._line(self.start)
            self._end_subpath(closed=True)
            self.current = self.start.copy()
        elif command == "L":
            self._line(base + values)
        elif command == "H":
            self._line(np.array([base[0] + values[0], self.current[1]]))
        elif command == "V":
            self._line(np.array([self.current[0], base[1] + values[0]]))
        elif command == "C":
            c1, c2, end = base + values[0:2], base + values[2:4], base + values[4:6]
            self._cubic(c1, c2, end)
            cubic = c2
        elif command == "S":
            c1 = 2.0 * self.current - self.last_cubic if self.last_cubic is not None else self.current.copy()
            c2, end = base + values[0:2], base + values[2:4]
            self._cubic(c1, c2, end)
            cubic = c2
        elif command == "Q":
            quad = base + values[0:2]
            self._quadratic(quad, base + values[2:4])
        elif command == "T":
            quad = 2.0 * self.current - self.last_quad if self.last_quad is not None else self.current.copy()
            self._quadratic(quad, base + values[0:2])
        elif command == "A":
            self._arc(values[0], values[1], values[2], bool(values[3]), bool(values[4]), base + values[5:7])
        self.last_cubic, self.last_quad = cubic, quad

    def _cubic(self, c1: np.ndarray, c2: np.ndarray, end: np.ndarray) -> None:
        self.segments.append(_bounded(np.stack([self.current, c1, c2, end]).astype(np.float64)))
        self.current = np.asarray(end, dtype=np.float64).copy()

    def _line(self, end: np.ndarray) -> None:
        start, end = self.current, _bounded(np.asarray(end, dtype=np.float64))
        self._cubic(start + (end - start) / 3.0, end + (start - end) / 3.0, end)

    def _quadratic(self, control: np.ndarray, end: np.ndarray) -> None:
        start, control, end = self.current, _bounded(control), _bounded(end)
        self._cubic(start + 2.0 / 3.0 * (control - start), end + 2.0 / 3.0 * (control - end), end)

    def _arc(self, rx: float, ry: float, angle: float, large: bool, sweep: bool, end: np.ndarray) -> None:
        """An elliptical arc (SVG implementation notes F.6.5/F.6.6) as cubics of at most 90° each."""
        start, end = self.current, _bounded(end)
        if np.array_equal(start, end):
            return
        rx, ry = abs(rx), abs(ry)
        if rx == 0.0 or ry == 0.0:
            self._line(end)
            return
        smaller = min(rx, ry)
        if smaller < MIN_ARC_RADIUS:  # keeps the ratio (an infinite one is clamped below)
            rx, ry = rx / smaller * MIN_ARC_RADIUS, ry / smaller * MIN_ARC_RADIUS
        rx, ry = min(rx, MAX_ARC_RADIUS), min(ry, MAX_ARC_RADIUS)
        phi = math.radians(angle % 360.0)
        cos_phi, sin_phi = math.cos(phi), math.sin(phi)
        half = (start - end) / 2.0
        x1 = cos_phi * half[0] + sin_phi * half[1]
        y1 = -sin_phi * half[0] + cos_phi * half[1]
        excess = math.hypot(x1 / rx, y1 / ry)
        if excess > 1.0:
            rx, ry = rx * excess, ry * excess
        numerator = rx * rx * ry * ry - rx * rx * y1 * y1 - ry * ry * x1 * x1
        denominator = rx * rx * y1 * y1 + ry * ry * x1 * x1
        if not denominator > 0.0:  # a chord too short for its square to be a float: nothing to bend
            self._line(end)
            return
        factor = math.sqrt(max(numerator, 0.0) / denominator) * (-1.0 if large == sweep else 1.0)
        cx1, cy1 = factor * rx * y1 / ry, -factor * ry * x1 / rx
        middle = (start + end) / 2.0
        centre = np.array([cos_phi * cx1 - sin_phi * cy1, sin_phi * cx1 + cos_phi * cy1]) + middle
        theta1 = math.atan2((y1 - cy1) / ry, (x1 - cx1) / rx)
        theta2 = math.atan2((-y1 - cy1) / ry, (-x1 - cx1) / rx)
        delta = theta2 - theta1
        if sweep and delta < 0.0:
            delta += 2.0 * math.pi
        elif not sweep and delta > 0.0:
            delta -= 2.0 * math.pi
        pieces = max(1, math.ceil(abs(delta) / (math.pi / 2.0) - 1e-9))
        step = delta / pieces
        k = 4.0 / 3.0 * math.tan(step / 4.0)
        axes = np.array([[cos_phi * rx, -sin_phi * ry], [sin_phi * rx, cos_phi * ry]])

        def point(theta: float) -> np.ndarray:
            return centre + axes @ np.array([math.cos(theta), math.sin(theta)])

        def tangent(theta: float) -> np.ndarray:
            return axes @ np.array([-math.sin(theta), math.cos(theta)])

        theta = theta1
        for index in range(pieces):
            following = theta + step
            finish = end if index == pieces - 1 else point(following)
            self._cubic(self.current + k * tangent(theta), finish - k * tangent(following), finish)
            theta = following

    def _end_subpath(self, closed: bool) -> None:
        if self.segments:
            self.subpaths.append(Subpath(np.stack(self.segments), closed))
        self.segments = []

    def finish(self) -> list[Subpath]:
        self._end_subpath(closed=False)
        return self.subpaths


def _fmt(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_path(subpaths: Sequence[Subpath]) -> str:
    """Absolute path data ``M x y C … [Z]`` of subpaths (the inverse of :func:`parse_path`, to 10⁻⁴)."""
    parts = []
    for subpath in subpaths:
        x, y = subpath.start
        parts.append(f"M {_fmt(x)} {_fmt(y)}")
        for segment in subpath.segments:
            parts.append("C " + " ".join(_fmt(v) for v in segment[1:].reshape(-1)))
        if subpath.closed:
            parts.append("Z")
    return " ".join(parts)


def transform_subpaths(subpaths: Sequence[Subpath], matrix: Sequence[float]) -> list[Subpath]:
    """Apply the SVG affine ``matrix(a, b, c, d, e, f)`` (``x' = a x + c y + e``, ``y' = b x + d y + f``).

    Raises :class:`PathDataError` when a point lands beyond ±MAX_COORDINATE (or the matrix is not finite).
    """
    a, b, c, d, e, f = (float(v) for v in matrix)
    linear = np.array([[a, b], [c, d]])
    with np.errstate(all="ignore"):
        moved = [Subpath(s.segments @ linear + np.array([e, f]), s.closed) for s in subpaths]
    try:
        for subpath in moved:
            _bounded(subpath.segments)
    except _OutOfBounds:
        raise PathDataError(f"A path lands beyond ±{MAX_COORDINATE:,.0f} through its transform "
                            f"matrix({', '.join(f'{v:.6g}' for v in (a, b, c, d, e, f))}).") from None
    return moved
