"""Differentiable anti-aliased rasterization of black cubic Bézier strokes, in pure PyTorch.

Each stroke is one open cubic Bézier segment drawn with round caps and a constant width, in black over white paper,
opaque unless given an opacity (which multiplies its coverage, as SVG's ``stroke-opacity`` does). A pixel of a
stroke gets the exact area coverage of the unit pixel box by the stroke, modelled as a straight band of half-width
``r`` around the closest point of the curve (closest-point distance ``d``, orientation from the band normal; round
caps use a slightly smaller radius that corrects the band's excess ink on a convex circular edge); strokes are
composited as ``I = prod_s (1 - cov_s)``.

The work is sparse and vectorized over all strokes of all sketches (no Python loop over strokes):

1. every stroke is flattened into a polyline of 8 to 32 chords; every chord enumerates the pixels of its
   bounding box dilated by the reach of a pixel (``r + sqrt(2)/2`` plus the flattening error);
2. each (stroke, pixel) pair keeps its nearest chord (``scatter_reduce`` over a key space of the size of the
   strokes' clipped bounding boxes), whose projection starts a few safeguarded Newton steps to the exact closest
   point ``t*`` of the cubic;
3. only the last step is seen by autograd: ``d = (p - c(t*)) . n`` with ``t*`` and the normal ``n`` detached.
   By the envelope theorem ``dd/dP_i = -B_i(t*) n`` is the exact gradient of the distance, so the gradients are
   those of the coverage, confined (like the coverage itself) to about one pixel around the stroke boundary.

Memory and time scale with the number of inked pixels, not with the canvas: a stroke outside the canvas
costs nothing. :func:`rasterize` sizes its buffers exactly, so a call synchronises with the device twice (the
sizes of the candidate and pair sets). :func:`rasterize_within` uses buffers of a fixed :class:`PairCapacity`
instead: no synchronisation and fixed shapes (a CUDA graph can capture it), and it reports the sizes it needed,
so that a caller can redo a call that overflowed. Where nothing overflows, both give the same image. On CPU the
results are deterministic, and bit-identical whether sketches are rendered in one batch or apart; on CUDA the
per-pixel sums use atomics, so repeated calls may differ in the last bits.

Conventions: points are in pixels, ``x`` = column to the right, ``y`` = row down; pixel ``(i, j)`` covers
``x in [j, j + 1]``, ``y in [i, i + 1]``. ``stroke_width`` is the full SVG width (diffvg's ``stroke_width`` is the
half-width: CLIPasso's ``1.5`` is ``3.0`` here).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

__all__ = ["PairCapacity", "pair_capacity", "rasterize", "rasterize_within"]

_REACH = 0.5 * math.sqrt(2.0) + 1e-3  # a pixel's farthest point from its centre, plus a safety margin
_CHORD_PX = 4.0  # target length of a chord of the flattening polyline (px)
_FLAT_PX = 0.1  # target deviation between polyline and curve (px)
_MIN_CHORDS, _MAX_CHORDS = 8, 32
_NEWTON_STEPS = 3
_MAX_COVERAGE = 1.0 - 1e-6  # keeps log(1 - cov) finite
_DIST_QUANTUM = 256.0  # squared distances are compared in steps of 1/256 px^2 when picking the nearest chord


class PairCapacity(NamedTuple):
    """Buffer sizes of one :func:`rasterize_within` call: candidate (chord, pixel) pairs, pair keys, kept pairs."""

    candidates: int
    keys: int
    pairs: int

    def holds(self, needed: PairCapacity) -> bool:
        """Whether every buffer is at least as large as ``needed``."""
        return all(have >= want for have, want in zip(self, needed))

    def scaled(self, factor: float) -> PairCapacity:
        """Every size times ``factor``, rounded up to a multiple of 1024 (so that small changes keep the shapes)."""
        return PairCapacity(*(1024 * math.ceil(size * factor / 1024) for size in self))


def rasterize(
    points: Tensor, stroke_width: float | Tensor = 3.0, size: tuple[int, int] = (224, 224),
    opacity: Tensor | None = None,
) -> Tensor:
    """Render black cubic Bézier strokes on white paper, differentiably w.r.t. points (and width, opacity).

    Args:
        points: control points :math:`(*, S, 4, 2)` in pixels, ``(x, y)`` = (column, row); ``*`` are independent
            sketches, ``S`` (may be 0) strokes per sketch.
        stroke_width: full stroke width in pixels, a float or a tensor broadcastable to :math:`(*, S)`.
        size: canvas ``(H, W)``.
        opacity: per-stroke opacity in [0, 1] broadcastable to :math:`(*, S)`, multiplying each stroke's
            coverage; ``None`` draws every stroke opaque (and skips the multiplication).

    Returns:
        gray image :math:`(*, H, W)`, 1 = paper white, 0 = full ink; same dtype and device as ``points``.
    """
    return _render(points, stroke_width, size, opacity, None)[0]


def rasterize_within(
    points: Tensor, capacity: PairCapacity | None, stroke_width: float | Tensor = 3.0,
    size: tuple[int, int] = (224, 224), opacity: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`rasterize` with work buffers of a fixed ``capacity``: no host synchronisation, shapes fixed by it.

    ``capacity`` None sizes the buffers exactly, as :func:`rasterize` does.

    Returns:
        the gray image :math:`(*, H, W)` and the sizes the call needed :math:`(3)` (int64, in
        :class:`PairCapacity` order, on the device). Where ``capacity`` holds them, the image equals
        :func:`rasterize`'s; where it does not, ink is missing and the call must be redone with more room
        (the pairs counted are then only those found in the room there was).
    """
    return _render(points, stroke_width, size, opacity, capacity)


def pair_capacity(points: Tensor, stroke_width: float | Tensor = 3.0, size: tuple[int, int] = (224, 224)) -> PairCapacity:
    """The exact buffer sizes :func:`rasterize_within` needs for ``points`` (synchronises with the device)."""
    with torch.no_grad():
        needed = _render(points.detach(), stroke_width, size, None, None)[1]
    return PairCapacity(*needed.tolist())


def _render(
    points: Tensor, stroke_width: float | Tensor, size: tuple[int, int], opacity: Tensor | None,
    capacity: PairCapacity | None,
) -> tuple[Tensor, Tensor]:
    """:func:`rasterize` (``capacity`` None: exact buffers) or :func:`rasterize_within`; image and needed sizes."""
    if points.dim() < 3 or points.shape[-2:] != (4, 2):
        raise ValueError(f"points must have shape (*, S, 4, 2), got {tuple(points.shape)}")
    height, width = int(size[0]), int(size[1])
    lead, num_strokes = points.shape[:-3], points.shape[-3]
    num_sketches = math.prod(lead)
    ctrl = points.reshape(num_sketches * num_strokes, 4, 2)
    if isinstance(stroke_width, Tensor):
        half = (0.5 * stroke_width.to(points)).broadcast_to((*lead, num_strokes)).reshape(-1)
    else:
        half = points.new_full((ctrl.shape[0],), 0.5 * float(stroke_width))

    with torch.no_grad():
        pairs = _pairs(ctrl.detach(), half.detach(), num_strokes, height, width, capacity)

    # Signed distance to the tangent line at the closest point; exact envelope-theorem gradient.
    dist = pairs.centre_normal - _sum_rows(pairs.bern_normal * ctrl.reshape(-1, 8).t().index_select(1, pairs.stroke))
    r = half.index_select(0, pairs.stroke) if isinstance(stroke_width, Tensor) else half[:1]
    r = torch.where(pairs.cap, _cap_radius(r), r)
    # Box coverage of the band |dist + u| <= r, u = projection of the unit pixel box on n (trapezoid CDF).
    edges = torch.clamp(torch.stack([r - dist, -r - dist]), min=-pairs.reach, max=pairs.reach)  # (2, P)
    cdf = _sum_rows(torch.relu(edges[:, None, :] + pairs.offsets).square().mul(pairs.weights).transpose(0, 1))
    coverage = (cdf[0] - cdf[1]).clamp(0.0, _MAX_COVERAGE)
    if opacity is not None:
        alpha = opacity.to(points).broadcast_to((*lead, num_strokes)).reshape(-1)
        coverage = coverage * alpha.index_select(0, pairs.stroke)

    # one pixel past the image takes the padding pairs of a fixed capacity
    log_image = points.new_zeros(num_sketches * height * width + 1).index_add(0, pairs.pixel, torch.log1p(-coverage))
    return torch.exp(log_image[:-1]).reshape(*lead, height, width), pairs.needed


def _sum_rows(x: Tensor) -> Tensor:
    """Sum :math:`(2^k, *)` over the first dim in a fixed pairwise order (bit-identical for any batch)."""
    while x.shape[0] > 1:
        x = x[: x.shape[0] // 2] + x[x.shape[0] // 2 :]
    return x[0]


def _cap_radius(r: Tensor) -> Tensor:
    """Shrunk radius for round caps: the band model adds ``pi / 12`` px^2 of ink to a disc, this removes it.

    The box projection has variance 1/12 in every direction; on a convex circular edge of radius ``r`` that moves
    the mean edge by ``1 / (24 r)`` (= ``r - r_cap`` for large ``r``). Accurate for widths >= 1.5 px.
    """
    return r * r * torch.rsqrt(r * r + 1.0 / 12.0)


class _Pairs(NamedTuple):
    """Constant (detached) data of the P (stroke, pixel) pairs that may get ink."""

    stroke: Tensor  # (P) index into the N * S strokes
    pixel: Tensor  # (P) index into the N * H * W image pixels
    bern_normal: Tensor  # (8, P) Bernstein weights at t* times the band normal, per control coordinate
    centre_normal: Tensor  # (P) pixel centre . normal
    cap: Tensor  # (P) the closest point is a cap: an end point, or a point where the curve stops
    reach: Tensor  # (P) half extent of the pixel box projected on the normal
    offsets: Tensor  # (4, P) knots of the trapezoid CDF
    weights: Tensor  # (4, P) coefficients of the trapezoid CDF
    needed: Tensor  # (3) int64: the candidates, keys and pairs this call needed (see PairCapacity)


def _pairs(ctrl: Tensor, half: Tensor, per_sketch: int, height: int, width: int,
           capacity: PairCapacity | None = None) -> _Pairs:
    """Find every (stroke, pixel) pair a stroke may cover, with the closest curve point to the pixel centre.

    Args:
        ctrl: control points :math:`(M, 4, 2)` of all ``M = N * S`` strokes.
        half: half-widths :math:`(M)`.
        per_sketch: strokes per sketch S.
        height: canvas height H.
        width: canvas width W.
        capacity: fixed buffer sizes (P = ``capacity.pairs``; the padding pairs draw on pixel ``N * H * W``),
            or ``None`` for exact ones (two host synchronisations).

    Returns:
        the pairs' constants, see :class:`_Pairs`.
    """
    num = ctrl.shape[0]
    buffers: _Buffers = _ExactBuffers() if capacity is None else _FixedBuffers(
        capacity if num and capacity.candidates else PairCapacity(0, 0, 0))  # nothing to pad from
    curves = _flatten(ctrl, half)
    boxes = _stroke_boxes(ctrl, curves.margin, height, width)
    curves = curves._replace(chords=torch.where(boxes.area > 0, curves.chords, torch.zeros_like(curves.chords)))
    chords = _chord_boxes(curves, boxes)
    needed_candidates, needed_keys = chords.count.sum(), boxes.area.sum()
    total, key_space = buffers.sizes(needed_candidates, needed_keys)
    index = torch.arange(total, device=ctrl.device)
    candidates = _candidates(chords, index, buffers.chord_of(index, chords))
    kept = _nearest_chord(candidates, index < needed_candidates, key_space)
    needed = torch.stack([needed_candidates, needed_keys, kept.sum()])
    pairs = _kept_pairs(candidates, chords, *buffers.compact(kept, index, needed[2]), max(per_sketch, 1), height, width)
    # Closest point: safeguarded Newton from the nearest chord's projection.
    centre = pairs.centre.to(ctrl.dtype) + 0.5  # (2, P)
    along = (pairs.chord - pairs.stroke * _MAX_CHORDS).to(ctrl.dtype) + pairs.u  # chords before, plus the projection
    start = along / curves.chords.index_select(0, pairs.stroke)
    table = _curve_table(curves.a, curves.b, curves.c, curves.p0, curves.chords).index_select(1, pairs.stroke)
    return _band(pairs.stroke, pairs.pixel, centre, *_newton(table, centre, start), needed)


class _Curves(NamedTuple):
    """Per-stroke constants of the M strokes: power basis ``q(t) = A t^3 + B t^2 + C t + P0`` and flattening."""

    a: Tensor  # (M, 2)
    b: Tensor  # (M, 2)
    c: Tensor  # (M, 2)
    p0: Tensor  # (M, 2)
    chords: Tensor  # (M) chords of the flattening polyline (float; 0 for a stroke with no pixel box)
    margin: Tensor  # (M) pixels farther than this from the polyline are blank


def _flatten(ctrl: Tensor, half: Tensor) -> _Curves:
    """Each stroke's power basis and flattening: K chords, with a bound on their deviation from the curve.

    Elementwise (float reductions are written out), so results do not depend on the batch layout.
    """
    p0, p1, p2, p3 = ctrl.unbind(1)
    a, b, c = p3 - p0 + 3.0 * (p1 - p2), 3.0 * (p0 - 2.0 * p1 + p2), 3.0 * (p1 - p0)
    diff2 = (ctrl[:, :2] - 2.0 * ctrl[:, 1:3] + ctrl[:, 2:]).square()  # (M, 2, 2)
    second = torch.maximum(diff2[:, 0, 0] + diff2[:, 0, 1], diff2[:, 1, 0] + diff2[:, 1, 1]).sqrt()  # (M)
    side = (ctrl[:, 1:] - ctrl[:, :-1]).square()  # (M, 3, 2)
    side = (side[..., 0] + side[..., 1]).sqrt()
    length = side[:, 0] + side[:, 1] + side[:, 2]
    chords = torch.maximum(length / _CHORD_PX, (0.75 * second / _FLAT_PX).sqrt())
    chords = chords.nan_to_num(nan=_MAX_CHORDS).ceil().clamp(_MIN_CHORDS, _MAX_CHORDS)
    return _Curves(a, b, c, p0, chords, half + _REACH + 0.75 * second / chords.square())


class _Boxes(NamedTuple):
    """Each stroke's pixel box (control-point hull, dilated, clipped): the key space of its (stroke, pixel) pairs."""

    lo: Tensor  # (M, 2) first column, row (float)
    hi: Tensor  # (M, 2) last column, row (float)
    size: Tensor  # (M, 2) columns, rows (long; 0 where empty)
    area: Tensor  # (M) pixels (long)
    key_base: Tensor  # (M) key of pixel (0, 0) in the stroke's part of the key space (long)


def _stroke_boxes(ctrl: Tensor, margin: Tensor, height: int, width: int) -> _Boxes:
    """Each stroke's pixel box: its control points' hull dilated by ``margin`` :math:`(M)`, clipped to the canvas."""
    limit = torch.stack([ctrl.new_full((), float(width)), ctrl.new_full((), float(height))])  # no host copy
    lo = (ctrl.amin(1) - margin[:, None] - 0.5).ceil().clamp(min=torch.zeros_like(limit), max=limit)
    hi = (ctrl.amax(1) + margin[:, None] - 0.5).floor().clamp(min=-torch.ones_like(limit), max=limit - 1)
    size = (hi - lo + 1.0).clamp_min(0.0).long()
    area = size[:, 0] * size[:, 1]
    return _Boxes(lo, hi, size, area, torch.cumsum(area, 0) - area - (lo[:, 1] * size[:, 0] + lo[:, 0]).long())


class _Chords(NamedTuple):
    """The ``C = M * K`` chord slots (the first ``chords`` of each stroke active) and the pixel boxes they enumerate."""

    lo: Tensor  # (C, 2) first column, row of the chord's box (long)
    count: Tensor  # (C) pixels in the box (0 for an inactive slot)
    ends: Tensor  # (C) where the chord's candidates end in the enumeration of all boxes
    fdata: Tensor  # (C, 6) box corner from the chord start (2), chord vector (2), 1 / length^2, margin^2
    idata: Tensor  # (C, 4) first candidate, box width, key of the box's first pixel, key stride (long)


def _chord_boxes(curves: _Curves, boxes: _Boxes) -> _Chords:
    """Each chord's pixel box (dilated by its stroke's margin, within the stroke's box) and what enumerates it."""
    a, b, c, p0, chords, margin = curves
    num = a.shape[0]
    slot = torch.arange(_MAX_CHORDS + 1, dtype=a.dtype, device=a.device)
    knots = (slot / chords.clamp_min(1.0)[:, None]).clamp(max=1.0)[:, :, None]  # (M, K+1, 1)
    nodes = ((a[:, None] * knots + b[:, None]) * knots + c[:, None]) * knots + p0[:, None]  # (M, K+1, 2)
    start, end = nodes[:, :-1], nodes[:, 1:]
    c_lo = torch.maximum((torch.minimum(start, end) - margin[:, None, None] - 0.5).ceil(), boxes.lo[:, None])
    c_hi = torch.minimum((torch.maximum(start, end) + margin[:, None, None] - 0.5).floor(), boxes.hi[:, None])
    c_size = (c_hi - c_lo + 1.0).clamp_min(0.0).long().reshape(-1, 2)
    count = c_size[:, 0] * c_size[:, 1] * (slot[:-1] < chords[:, None]).reshape(-1)  # (C = M * K)

    stroke_of = torch.arange(num, device=a.device).repeat_interleave(_MAX_CHORDS)
    vec = (end - start).reshape(-1, 2)
    c_lo = c_lo.reshape(-1, 2)
    corner_offset = c_lo + 0.5 - start.reshape(-1, 2)  # centre of the box's first pixel, from the chord start
    inv_len2 = 1.0 / (vec[:, :1].square() + vec[:, 1:].square() + 1e-12)
    fdata = torch.cat([corner_offset, vec, inv_len2, margin.square()[stroke_of, None]], 1)  # (C, 6)
    lo = c_lo.long()
    stride = boxes.size[stroke_of, 0]
    key0 = boxes.key_base[stroke_of] + lo[:, 1] * stride + lo[:, 0]
    ends = torch.cumsum(count, 0)
    return _Chords(lo, count, ends, fdata, torch.stack([ends - count, c_size[:, 0], key0, stride], 1))


class _Buffers(Protocol):
    """How big the work buffers of one call are, and how they are filled past what the strokes need."""

    def sizes(self, candidates: Tensor, keys: Tensor) -> tuple[int, int]:
        """The candidate buffer's size and the key space, given the ``candidates`` and ``keys`` needed."""
        ...

    def chord_of(self, index: Tensor, chords: _Chords) -> Tensor:
        """The chord of each candidate ``index`` :math:`(T)`."""
        ...

    def compact(self, kept: Tensor, index: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor | None]:
        """The ``kept`` candidates in order :math:`(P)`, and which of those slots are padding (or ``None``)."""
        ...


class _ExactBuffers:
    """Buffers of the sizes a call needs (two host synchronisations)."""

    def sizes(self, candidates: Tensor, keys: Tensor) -> tuple[int, int]:
        """The candidates and keys needed."""
        total, key_space = torch.stack([candidates, keys]).tolist()
        return total, key_space

    def chord_of(self, index: Tensor, chords: _Chords) -> Tensor:
        """Each chord repeated for the pixels of its box."""
        return torch.repeat_interleave(torch.arange(chords.count.shape[0], device=index.device), chords.count,
                                       output_size=index.shape[0])

    def compact(self, kept: Tensor, index: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor | None]:
        """The kept candidates; no padding."""
        return torch.nonzero(kept).squeeze(1), None


class _FixedBuffers:
    """Buffers of a fixed :class:`PairCapacity` (no host synchronisation); what they hold past the need draws
    nowhere."""

    def __init__(self, capacity: PairCapacity) -> None:
        """Buffers of ``capacity``, which has room for candidates unless it is all zeros."""
        self.capacity = capacity

    def sizes(self, candidates: Tensor, keys: Tensor) -> tuple[int, int]:
        """The capacity's, whatever is needed."""
        return self.capacity.candidates, self.capacity.keys

    def chord_of(self, index: Tensor, chords: _Chords) -> Tensor:
        """Each chord for the pixels of its box; past the needed count, the padding candidates repeat the last chord."""
        return torch.searchsorted(chords.ends, index, right=True).clamp_(max=max(chords.count.shape[0] - 1, 0))

    def compact(self, kept: Tensor, index: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor | None]:
        """The kept candidates in order in the fixed pair buffer; its unused slots repeat candidate 0 (padding)."""
        slot = torch.cumsum(kept, 0) - 1
        slot = torch.where(kept & (slot < self.capacity.pairs), slot, self.capacity.pairs)
        keep = index.new_zeros(self.capacity.pairs + 1).scatter_(0, slot, index)[:-1]
        return keep, torch.arange(self.capacity.pairs, device=index.device) >= pairs


class _Candidates(NamedTuple):
    """The candidate (chord, pixel) pairs: every pixel of every chord's box, and its distance to the chord."""

    chord: Tensor  # (T) the chord slot
    row: Tensor  # (T) the pixel's row in the chord's box
    col: Tensor  # (T) its column
    key: Tensor  # (T) the (stroke, pixel) pair's key
    u: Tensor  # (T) the pixel centre's projection on the chord, in [0, 1]
    dist2: Tensor  # (T) the squared distance to the chord
    margin2: Tensor  # (T) the stroke's squared margin


def _candidates(chords: _Chords, index: Tensor, chord: Tensor) -> _Candidates:
    """The candidates ``index`` :math:`(T)` of the ragged enumeration of all chord boxes, of the chords ``chord``."""
    first, box_w, key0, stride = chords.idata.index_select(0, chord).unbind(1)
    local = index - first
    row = torch.div(local, box_w.clamp_min(1), rounding_mode="floor")
    col = local - row * box_w
    ox, oy, vx, vy, inv_len2, margin2 = chords.fdata.index_select(0, chord).unbind(1)
    dx, dy = col + ox, row + oy
    u = ((dx * vx + dy * vy) * inv_len2).clamp(0.0, 1.0)
    dist2 = (dx - u * vx).square() + (dy - u * vy).square()
    return _Candidates(chord, row, col, key0 + row * stride + col, u, dist2, margin2)


def _nearest_chord(candidates: _Candidates, valid: Tensor, key_space: int) -> Tensor:
    """Which ``valid`` candidates :math:`(T)` are their (stroke, pixel) pair's nearest chord, within the margin.

    The nearest is the minimum of (quantized distance, chord slot), unique per pair. Candidates past the needed
    count (padding of a fixed capacity) or past the key space go to one spare key.
    """
    key = torch.where(valid & (candidates.key < key_space), candidates.key, key_space)
    rank = ((candidates.dist2 * _DIST_QUANTUM).clamp(max=2.0**26 - 1.0).int() * _MAX_CHORDS
            + (candidates.chord % _MAX_CHORDS).int())
    best = torch.full((key_space + 1,), torch.iinfo(torch.int32).max, dtype=torch.int32, device=key.device)
    best.scatter_reduce_(0, key, rank, "amin")
    return valid & (best.index_select(0, key) == rank) & (candidates.dist2 < candidates.margin2)


class _Kept(NamedTuple):
    """The P kept (stroke, pixel) pairs: their nearest chord, its stroke, and the pixel."""

    chord: Tensor  # (P) the nearest chord slot
    stroke: Tensor  # (P) its stroke
    centre: Tensor  # (2, P) the pixel's column, row (long)
    pixel: Tensor  # (P) index into the N * H * W image pixels (padding: the spare pixel N * H * W)
    u: Tensor  # (P) the pixel centre's projection on the chord, in [0, 1]


def _kept_pairs(candidates: _Candidates, chords: _Chords, keep: Tensor, padding: Tensor | None, per_sketch: int,
                height: int, width: int) -> _Kept:
    """The candidates ``keep`` :math:`(P)` as pairs on the canvas; ``padding`` :math:`(P)` marks slots that draw
    nowhere."""
    chord = candidates.chord.index_select(0, keep)
    stroke = torch.div(chord, _MAX_CHORDS, rounding_mode="floor")
    corner = chords.lo.index_select(0, chord)
    col = corner[:, 0] + candidates.col.index_select(0, keep)
    row = corner[:, 1] + candidates.row.index_select(0, keep)
    sketch = torch.div(stroke, per_sketch, rounding_mode="floor")
    pixel = (sketch * height + row) * width + col
    if padding is not None:  # the spare pixel, past the N * H * W pixels of the N = M / S sketches
        sketches = chords.lo.shape[0] // _MAX_CHORDS // per_sketch
        pixel = torch.where(padding, sketches * height * width, pixel)
    return _Kept(chord, stroke, torch.stack([col, row]), pixel, candidates.u.index_select(0, keep))


def _band(stroke: Tensor, pixel: Tensor, centre: Tensor, t: Tensor, offset: Tensor, tangent: Tensor,
          needed: Tensor) -> _Pairs:
    """The pairs' constants from their closest points ``t`` :math:`(P)`, offsets and tangents there :math:`(2, P)`.

    Band normal: radial (p - c)/|p - c|; on the curve itself, perpendicular to the tangent; else the x axis.
    """
    square = torch.stack([offset, tangent]).square()  # (2, 2, P)
    dist, speed = (square[:, 0] + square[:, 1]).sqrt()
    moving = speed > 1e-9
    fallback = torch.stack([torch.where(moving, -tangent[1], 1.0), torch.where(moving, tangent[0], 0.0)])
    normal = torch.where(dist > 1e-3, -offset / dist, fallback / torch.where(moving, speed, 1.0))  # (2, P)

    s = 1.0 - t
    bern = torch.stack([s * s * s, 3.0 * s * s * t, 3.0 * s * t * t, t * t * t])  # (4, P)
    big, small = normal.abs().amax(0), normal.abs().amin(0).clamp_min(0.01)
    reach, inner = 0.5 * (big + small), 0.5 * (big - small)
    scale = 0.5 / (big * small)
    centre_normal = centre * normal
    return _Pairs(
        stroke=stroke,
        pixel=pixel,
        bern_normal=(bern[:, None] * normal[None]).reshape(8, -1),
        centre_normal=centre_normal[0] + centre_normal[1],
        cap=(t <= 0.0) | (t >= 1.0) | ~moving,
        reach=reach,
        offsets=torch.stack([reach, inner, -inner, -reach]),
        weights=torch.stack([scale, -scale, -scale, scale]),
        needed=needed,
    )


def _curve_table(a: Tensor, b: Tensor, c: Tensor, p0: Tensor, chords: Tensor) -> Tensor:
    """Per-stroke constants of the closest-point iteration, :math:`(17, M)`.

    Args:
        a: power-basis coefficients :math:`(M, 2)` of ``q(t) = A t^3 + B t^2 + C t + P0``.
        b: same, B.
        c: same, C.
        p0: first control points :math:`(M, 2)`.
        chords: chords per stroke :math:`(M)`.

    Returns:
        rows ``A, B, C, P0`` (x and y each); the pixel-independent coefficients of ``g(t) = (q(t) - p) . q'(t)``:
        ``g5, g4, g3`` and the parts ``3 B.C`` of ``g2`` and ``C.C`` of ``g1``; ``g'``'s ``5 g5, 4 g4, 3 g3``; and
        the largest Newton step ``1 / K``.
    """

    def dot(u: Tensor, v: Tensor) -> Tensor:
        return u[:, 0] * v[:, 0] + u[:, 1] * v[:, 1]

    g5, g4, g3 = 3.0 * dot(a, a), 5.0 * dot(a, b), 4.0 * dot(a, c) + 2.0 * dot(b, b)
    poly = torch.stack([g5, g4, g3, 3.0 * dot(b, c), dot(c, c), 5.0 * g5, 4.0 * g4, 3.0 * g3], 1)
    return torch.cat([a, b, c, p0, poly, 1.0 / chords.clamp_min(1.0)[:, None]], 1).t().contiguous()


def _newton(table: Tensor, centre: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Refine closest-point parameters by safeguarded Newton steps on ``g(t) = (q(t) - p) . q'(t) = 0``.

    Args:
        table: :func:`_curve_table` of each pair's stroke :math:`(17, P)`.
        centre: pixel centres ``p`` :math:`(2, P)`.
        t: starting parameters :math:`(P)`.

    Returns:
        refined parameters :math:`(P)` (the better of start and end), the offset ``q(t) - p`` :math:`(2, P)` and
        the tangent ``q'(t)`` :math:`(2, P)` there.
    """
    a, b, c = table[0:2], table[2:4], table[4:6]
    e = table[6:8] - centre  # P0 - p
    prod = table[0:6].view(3, 2, -1) * e
    a_e, b_e, c_e = prod[:, 0] + prod[:, 1]
    g5, g4, g3, bc3, cc, dg4, dg3, dg2, max_step = table[8:17]
    g2, g1 = torch.add(bc3, a_e, alpha=3.0), torch.add(cc, b_e, alpha=2.0)
    # joint Horner scheme of g (degree 5) and g' (degree 4): rows (g_k, g'_k), starting from (g5, 0)
    lead = torch.stack([g5, torch.zeros_like(g5)])
    steps = torch.stack([g4, dg4, g3, dg3, g2, dg2, g1, 2.0 * g2, c_e, g1]).view(5, 2, -1)

    t_start = t
    for _ in range(_NEWTON_STEPS):
        value = lead
        for k in range(5):
            value = torch.addcmul(steps[k], value, t)
        step = torch.clamp(value[0] / value[1].abs().clamp_min(1e-20), min=-max_step, max=max_step)
        t = (t - step).clamp(0.0, 1.0)

    both = torch.stack([t, t_start])[:, None]  # (2, 1, P)
    offset = torch.addcmul(e, torch.addcmul(c, torch.addcmul(b, a, both), both), both)  # (2, 2, P)
    square = offset.square()
    dist2 = square[:, 0] + square[:, 1]
    better = dist2[0] <= dist2[1]
    t = torch.where(better, t, t_start)
    tangent = torch.addcmul(c, torch.addcmul(2.0 * b, a, t, value=3.0), t)
    return t, torch.where(better, offset[0], offset[1]), tangent
