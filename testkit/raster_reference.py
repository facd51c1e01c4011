"""Brute-force supersampled reference renderer for cubic Bézier strokes (tests and benchmarks only).

Every pixel is split into ``spp x spp`` sample points; a sample is ink when its distance to some stroke's centre
line is at most the half-width (round caps included), i.e. samples are composited as products of binary
coverages; a pixel is the mean of its samples. The centre line is a fine polyline whose deviation from the cubic
is below ``tol`` px, so the binary test is exact up to ``tol``. Slow, float64, CPU.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def reference_render(
    points: Tensor,
    stroke_width: float = 3.0,
    size: tuple[int, int] = (224, 224),
    spp: int = 16,
    tol: float = 2e-3,
) -> Tensor:
    """Render :math:`(*, S, 4, 2)` control points to a :math:`(*, H, W)` float64 image (white 1, ink 0)."""
    height, width = size
    pts = points.detach().to("cpu", torch.float64)
    lead = pts.shape[:-3]
    flat = pts.reshape(-1, *pts.shape[-3:])
    images = [_render_sketch(sketch, 0.5 * stroke_width, height, width, spp, tol) for sketch in flat]
    if not images:
        return torch.ones(*lead, height, width, dtype=torch.float64)
    return torch.stack(images).reshape(*lead, height, width)


def _render_sketch(ctrl: Tensor, r: float, height: int, width: int, spp: int, tol: float) -> Tensor:
    """Supersampled render of one sketch :math:`(S, 4, 2)` to :math:`(H, W)`."""
    ink = torch.zeros(height * spp * width * spp, dtype=torch.bool)
    for stroke in ctrl:
        _stamp_stroke(ink, stroke, r, height * spp, width * spp, spp, tol)
    covered = ink.view(height, spp, width, spp).sum((1, 3), dtype=torch.int64)
    return 1.0 - covered.to(torch.float64) / (spp * spp)


def _stamp_stroke(ink: Tensor, p: Tensor, r: float, rows: int, cols: int, spp: int, tol: float) -> None:
    """Mark the samples within ``r`` of the polyline of one cubic :math:`(4, 2)`."""
    second = float((p[:2] - 2 * p[1:3] + p[2:]).norm(dim=-1).max())
    length = float((p[1:] - p[:-1]).norm(dim=-1).sum())
    n = int(min(max(math.ceil(length / max(2 * r, 0.25)), math.ceil(math.sqrt(0.75 * second / tol)), 1), 20000))
    t = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)[:, None]
    s = 1.0 - t
    nodes = s**3 * p[0] + 3 * s * s * t * p[1] + 3 * s * t * t * p[2] + t**3 * p[3]  # (n+1, 2)
    a, b = nodes[:-1], nodes[1:]
    # sample (row, col) sits at ((col + 0.5) / spp, (row + 0.5) / spp)
    lo = ((torch.minimum(a, b) - r) * spp - 0.5).ceil().long()
    hi = ((torch.maximum(a, b) + r) * spp - 0.5).floor().long()
    lo = torch.maximum(lo, torch.zeros(2, dtype=torch.long))
    hi = torch.minimum(hi, torch.tensor([cols - 1, rows - 1]))
    live = (hi >= lo).all(-1)
    if not live.any():
        return
    # sample offsets from a chord start are small: float32 is exact to ~1e-5 px there
    a, b, lo, hi = a[live], b[live], lo[live], hi[live]
    v = (b - a).float()
    vv = (v * v).sum(-1).clamp_min(1e-30)
    bw, bh = [int(v) + 1 for v in (hi - lo).amax(0)]
    chunk = max(1, 4_000_000 // (bw * bh))
    gx = torch.arange(bw)[None, None, :]
    gy = torch.arange(bh)[None, :, None]
    for i in range(0, a.shape[0], chunk):
        part = slice(i, i + chunk)
        col = lo[part, 0, None, None] + gx
        row = lo[part, 1, None, None] + gy
        inside = (col <= hi[part, 0, None, None]) & (row <= hi[part, 1, None, None])
        corner = ((lo[part] + 0.5) / spp - a[part]).float()  # first sample relative to the chord start
        x = corner[:, 0, None, None] + gx.float() / spp
        y = corner[:, 1, None, None] + gy.float() / spp
        vx, vy, inv = v[part, 0, None, None], v[part, 1, None, None], 1.0 / vv[part, None, None]
        u = ((x * vx + y * vy) * inv).clamp(0.0, 1.0)
        hit = inside & ((x - u * vx).square() + (y - u * vy).square() <= r * r)
        ink[(row * cols + col)[hit]] = True


SCENE_KINDS = ("init", "long", "loop", "line", "outside")


def make_strokes(
    kind: str, num: int, size: tuple[int, int] = (224, 224), seed: int = 0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Seeded random strokes :math:`(num, 4, 2)` of one of :data:`SCENE_KINDS`.

    ``init``: CLIPasso initialisation (a point anywhere, then 3 steps uniform in +-5.6 px per coordinate);
    ``long``: 30-120 px arcs; ``loop``: self-intersecting cubics 15-60 px; ``line``: straight strokes with evenly
    spaced collinear control points; ``outside``: long arcs centred near or beyond the canvas border.
    """
    g = torch.Generator().manual_seed(seed)
    height, width = size
    extent = torch.tensor([width, height], dtype=torch.float64)

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    def rotate(shape: Tensor, centre: Tensor) -> Tensor:
        angle = 2 * math.pi * rand(num)
        rot = torch.stack([angle.cos(), -angle.sin(), angle.sin(), angle.cos()], -1).view(num, 1, 2, 2)
        return (rot @ shape[..., None])[..., 0] + centre[:, None]

    if kind == "init":
        steps = 11.2 * (rand(num, 3, 2) - 0.5)
        pts = torch.cat([rand(num, 1, 2) * extent, steps], 1).cumsum(1)
    elif kind in ("long", "outside"):
        length = 30 + 90 * rand(num)
        bend = 0.8 * (rand(num, 2) - 0.5) * length[:, None]
        u = torch.tensor([-0.5, -1 / 6, 1 / 6, 0.5], dtype=torch.float64)
        shape = torch.stack([u * length[:, None], torch.zeros(num, 4, dtype=torch.float64)], -1)
        shape[:, 1:3, 1] = bend
        if kind == "long":
            centre = rand(num, 2) * extent
        else:  # centre within 40 px of a border, inside or outside
            centre = rand(num, 2) * extent
            side = (rand(num) * 4).long()
            offset = 80 * rand(num) - 40
            centre[side == 0, 0] = offset[side == 0]
            centre[side == 1, 0] = width + offset[side == 1]
            centre[side == 2, 1] = offset[side == 2]
            centre[side == 3, 1] = height + offset[side == 3]
        pts = rotate(shape, centre)
    elif kind == "loop":
        scale = 15 + 45 * rand(num)
        base = torch.tensor([[-0.5, 0.0], [1.0, 1.0], [-1.0, 1.0], [0.5, 0.0]], dtype=torch.float64)
        shape = base * scale[:, None, None] * (0.8 + 0.4 * rand(num, 4, 2))
        pts = rotate(shape, rand(num, 2) * extent)
    elif kind == "line":
        length = 10 + 140 * rand(num)
        u = torch.tensor([-0.5, -1 / 6, 1 / 6, 0.5], dtype=torch.float64)
        shape = torch.stack([u * length[:, None], torch.zeros(num, 4, dtype=torch.float64)], -1)
        pts = rotate(shape, rand(num, 2) * extent)
    else:
        raise ValueError(f"unknown scene kind {kind!r}")
    return pts.to(dtype)
