"""The quality guard of fast presets: how much of a sketch's ink lies on the object, from random strokes.

A picture with a known object (a dark mug on white, drawn on the canvas) is sketched from strokes whose first
points are uniform over the canvas (no saliency init, so the optimizer alone must bring the ink to the object).
The measure is the share of the rendered ink that falls on the object (its pixels, widened by a pen's width):
uniform random strokes give about the object's share of the canvas, a sketch that draws the object gives more.
A preset that computes less (fewer steps, fewer augmented pairs) may replace another only if, on the same
seeds, it reaches at least the other's share. Used by the tests (tiny models) and ``bench/presets.py``
(full-size models).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from clipasso_core.image import to_canvas
from clipasso_core.loss import ClipConvLoss
from clipasso_core.models import ClipEncoder
from clipasso_core.optimize import optimize_sketches
from clipasso_core.params import CANVAS_SIZE, SketchParams
from clipasso_core.raster import rasterize
from clipasso_core.saliency import initial_strokes

DRAFT = {"seeds": 1, "iterations": 300, "augmentations": 4}
"""The draft preset as it was measured at 6 min 47 s (README, Performance), before ``quick`` was tuned: what a
cheaper ``quick`` is held against (``pytest -m guard`` and ``bench/presets.py``)."""
OBJECT_MARGIN = 3
"""Pixels around the object that still count as on it (a pen's width: a stroke along its outline is on it)."""


def object_picture() -> tuple[torch.Tensor, torch.Tensor]:
    """A dark mug (body and handle) on white, on the canvas ``[3, 224, 224]``, and its mask ``[224, 224]`` (bool).

    The mask is the object's pixels widened by :data:`OBJECT_MARGIN`.
    """
    image = Image.new("RGB", (CANVAS_SIZE, CANVAS_SIZE), "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((62, 60, 142, 170), radius=12, fill=(40, 40, 60))
    draw.ellipse((126, 85, 176, 145), outline=(40, 40, 60), width=10)
    canvas = to_canvas(image, CANVAS_SIZE)[0]
    dark = canvas.mean(dim=0) < 0.5
    widened = F.max_pool2d(dark[None, None].float(), 2 * OBJECT_MARGIN + 1, stride=1, padding=OBJECT_MARGIN)
    return canvas, widened[0, 0] > 0


def ink_on_object(points: torch.Tensor, mask: torch.Tensor, stroke_width: float) -> float:
    """The share of the ink of strokes ``[S, 4, 2]`` (canvas pixels) that lies inside ``mask`` ``[H, W]``: 0 … 1."""
    with torch.no_grad():
        ink = 1.0 - rasterize(points[None].float(), stroke_width, tuple(mask.shape))[0]
    total = float(ink.sum())
    return float((ink * mask).sum()) / total if total > 0 else 0.0


def random_strokes(params: SketchParams) -> dict[int, torch.Tensor]:
    """Strokes with uniform first points for every level and seed of ``params``: count → ``[seeds, S, 4, 2]``."""
    return {count: torch.stack([initial_strokes(None, count, seed, CANVAS_SIZE) for seed in params.sketch_seeds()])
            for count in params.strokes}


def guard_shares(encoder: ClipEncoder, params: SketchParams) -> dict[int, float]:
    """Sketch :func:`object_picture` from :func:`random_strokes` with ``params``; each level's winner's ink share."""
    target, mask = object_picture()
    loss = ClipConvLoss(encoder, target.to(encoder.device), size=params.loss_size)
    outcome = optimize_sketches(loss, random_strokes(params), params, graphs=False)
    return {level.strokes: ink_on_object(level.points, mask, params.stroke_width) for level in outcome.levels}


def start_shares(params: SketchParams) -> dict[int, float]:
    """Each level's ink share of :func:`random_strokes` before any step (first seed): what the guard starts from."""
    _, mask = object_picture()
    return {count: ink_on_object(points[0], mask, params.stroke_width)
            for count, points in random_strokes(params).items()}


def mean_share(shares: dict[int, float]) -> float:
    """The mean share over levels."""
    return sum(shares.values()) / len(shares)
