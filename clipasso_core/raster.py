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
from typing import NamedTuple

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
    device, dtype = ctrl.device, ctrl.dtype
    num = ctrl.shape[0]
    p0, p1, p2, p3 = ctrl.unbind(1)
    # power basis q(t) = A t^3 + B t^2 + C t + P0, elementwise (bit-identical whatever the batch size)
    a, b, c = p3 - p0 + 3.0 * (p1 - p2), 3.0 * (p0 - 2.0 * p1 + p2), 3.0 * (p1 - p0)

    # Flattening: K chords per stroke, with a bound on their deviation from the curve.
    # (float reductions are written out elementwise: results do not depend on the batch layout)
    diff2 = (ctrl[:, :2] - 2.0 * ctrl[:, 1:3] + ctrl[:, 2:]).square()  # (M, 2, 2)
    second = torch.maximum(diff2[:, 0, 0] + diff2[:, 0, 1], diff2[:, 1, 0] + diff2[:, 1, 1]).sqrt()  # (M)
    side = (ctrl[:, 1:] - ctrl[:, :-1]).square()  # (M, 3, 2)
    side = (side[..., 0] + side[..., 1]).sqrt()
    length = side[:, 0] + side[:, 1] + side[:, 2]
    chords = torch.maximum(length / _CHORD_PX, (0.75 * second / _FLAT_PX).sqrt())
    chords = chords.nan_to_num(nan=_MAX_CHORDS).ceil().clamp(_MIN_CHORDS, _MAX_CHORDS)
    margin = half + _REACH + 0.75 * second / chords.square()  # pixels farther from the polyline are blank

    # Per-stroke pixel box (control-point hull, dilated, clipped): the key space of (stroke, pixel) pairs.
    limit = torch.stack([ctrl.new_full((), float(width)), ctrl.new_full((), float(height))])  # no host copy
    box_lo = (ctrl.amin(1) - margin[:, None] - 0.5).ceil().clamp(min=torch.zeros_like(limit), max=limit)
    box_hi = (ctrl.amax(1) + margin[:, None] - 0.5).floor().clamp(min=-torch.ones_like(limit), max=limit - 1)
    box_size = (box_hi - box_lo + 1.0).clamp_min(0.0).long()  # (M, 2): columns, rows
    box_area = box_size[:, 0] * box_size[:, 1]
    chords = torch.where(box_area > 0, chords, torch.zeros_like(chords))
    key_base = torch.cumsum(box_area, 0) - box_area - (box_lo[:, 1] * box_size[:, 0] + box_lo[:, 0]).long()

    # Chords: (M, K) slots, the first `chords` of each stroke active; pixel box of each.
    slot = torch.arange(_MAX_CHORDS + 1, dtype=dtype, device=device)
    knots = (slot / chords.clamp_min(1.0)[:, None]).clamp(max=1.0)[:, :, None]  # (M, K+1, 1)
    nodes = ((a[:, None] * knots + b[:, None]) * knots + c[:, None]) * knots + p0[:, None]  # (M, K+1, 2)
    start, end = nodes[:, :-1], nodes[:, 1:]
    c_lo = torch.maximum((torch.minimum(start, end) - margin[:, None, None] - 0.5).ceil(), box_lo[:, None])
    c_hi = torch.minimum((torch.maximum(start, end) + margin[:, None, None] - 0.5).floor(), box_hi[:, None])
    c_size = (c_hi - c_lo + 1.0).clamp_min(0.0).long().reshape(-1, 2)
    count = c_size[:, 0] * c_size[:, 1] * (slot[:-1] < chords[:, None]).reshape(-1)  # (C = M * K)
    needed_candidates, needed_keys = count.sum(), box_area.sum()
    if capacity is None:
        total, key_space = torch.stack([needed_candidates, needed_keys]).tolist()
    else:
        capacity = capacity if num and capacity.candidates else PairCapacity(0, 0, 0)  # nothing to pad from
        total, key_space = capacity.candidates, capacity.keys

    stroke_of = torch.arange(num, device=device).repeat_interleave(_MAX_CHORDS)
    vec = (end - start).reshape(-1, 2)
    c_lo = c_lo.reshape(-1, 2)
    corner_offset = c_lo + 0.5 - start.reshape(-1, 2)  # centre of the box's first pixel, from the chord start
    inv_len2 = 1.0 / (vec[:, :1].square() + vec[:, 1:].square() + 1e-12)
    fdata = torch.cat([corner_offset, vec, inv_len2, margin.square()[stroke_of, None]], 1)  # (C, 6)
    c_lo = c_lo.long()
    stride = box_size[stroke_of, 0]
    key0 = key_base[stroke_of] + c_lo[:, 1] * stride + c_lo[:, 0]
    ends = torch.cumsum(count, 0)
    idata = torch.stack([ends - count, c_size[:, 0], key0, stride], 1)  # (C, 4)

    # Candidate (chord, pixel) pairs: ragged enumeration of all chord boxes, distance to the chord.
    index = torch.arange(total, device=device)
    if capacity is None:
        chord = torch.repeat_interleave(torch.arange(count.shape[0], device=device), count, output_size=total)
    else:  # past the needed count, the padding candidates repeat the last chord
        chord = torch.searchsorted(ends, index, right=True).clamp_(max=max(count.shape[0] - 1, 0))
    first, box_w, key0, stride = idata.index_select(0, chord).unbind(1)
    local = index - first
    row = torch.div(local, box_w.clamp_min(1), rounding_mode="floor")
    col = local - row * box_w
    ox, oy, vx, vy, inv_len2, margin2 = fdata.index_select(0, chord).unbind(1)
    dx, dy = col + ox, row + oy
    u = ((dx * vx + dy * vy) * inv_len2).clamp(0.0, 1.0)
    dist2 = (dx - u * vx).square() + (dy - u * vy).square()

    # Nearest chord per (stroke, pixel): minimum of (quantized distance, chord slot), unique per pair.
    # Candidates past the needed count (padding of a fixed capacity) or past the key space go to one spare key.
    valid = index < needed_candidates
    key = key0 + row * stride + col
    key = torch.where(valid & (key < key_space), key, key_space)
    rank = (dist2 * _DIST_QUANTUM).clamp(max=2.0**26 - 1.0).int() * _MAX_CHORDS + (chord % _MAX_CHORDS).int()
    best = torch.full((key_space + 1,), torch.iinfo(torch.int32).max, dtype=torch.int32, device=device)
    best.scatter_reduce_(0, key, rank, "amin")
    kept = valid & (best.index_select(0, key) == rank) & (dist2 < margin2)
    needed = torch.stack([needed_candidates, needed_keys, kept.sum()])
    if capacity is None:
        keep = torch.nonzero(kept).squeeze(1)
        padding = None
    else:  # compact in order into the fixed pair buffer; its unused slots repeat candidate 0 and draw nowhere
        slot = torch.cumsum(kept, 0) - 1
        slot = torch.where(kept & (slot < capacity.pairs), slot, capacity.pairs)
        keep = index.new_zeros(capacity.pairs + 1).scatter_(0, slot, index)[:-1]
        padding = torch.arange(capacity.pairs, device=device) >= needed[2]

    chord = chord.index_select(0, keep)
    stroke = torch.div(chord, _MAX_CHORDS, rounding_mode="floor")
    corner = c_lo.index_select(0, chord)
    col = corner[:, 0] + col.index_select(0, keep)
    row = corner[:, 1] + row.index_select(0, keep)
    sketch = torch.div(stroke, max(per_sketch, 1), rounding_mode="floor")
    pixel = (sketch * height + row) * width + col
    if padding is not None:
        pixel = torch.where(padding, num // max(per_sketch, 1) * height * width, pixel)

    # Closest point: safeguarded Newton from the nearest chord's projection.
    centre = torch.stack([col, row]).to(dtype) + 0.5  # (2, P)
    t = ((chord - stroke * _MAX_CHORDS).to(dtype) + u.index_select(0, keep)) / chords.index_select(0, stroke)
    t, offset, tangent = _newton(_curve_table(a, b, c, p0, chords).index_select(1, stroke), centre, t)

    # Band normal: radial (p - c)/|p - c|; on the curve itself, perpendicular to the tangent; else the x axis.
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
