"""Scoring a finished sketch: the paper's un-augmented loss of a sketch against a target image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import torch
from PIL import Image

from .errors import SketchFileError
from .image import CanvasFrame, to_canvas
from .loss import TERM_ORDER, ClipConvLoss, LossWeights
from .models import ClipEncoder
from .params import CANVAS_SIZE
from .raster import rasterize
from .svg import DocumentLayer, SketchDocument


ALWAYS_REPORTED = ("conv_layer2", "conv_layer3", "fc")
"""The paper's terms, reported even at weight 0; other terms are reported only when their weight is non-zero."""


@dataclass(frozen=True)
class Score:
    """Weighted eval loss terms of one sketch (by name, in the loss's order) and their sum."""

    terms: dict[str, float]
    total: float

    def as_dict(self) -> dict[str, float]:
        """The terms and ``total`` as one plain dict (the ``--json`` output)."""
        return {**self.terms, "total": self.total}


def score_canvas(encoder: ClipEncoder, target: Image.Image, sketch: torch.Tensor,
                 weights: LossWeights = LossWeights(), text_embedding: torch.Tensor | None = None) -> Score:
    """Score a sketch already on the canvas (``[3, 224, 224]`` in [0, 1]) against an RGB target image.

    ``text_embedding`` is the prompt's embedding when ``weights.text`` is non-zero.
    """
    device = next(encoder.visual.parameters()).device
    target_canvas, _ = to_canvas(target, CANVAS_SIZE)
    loss = ClipConvLoss(encoder, target_canvas.to(device), weights, text_embedding)
    values = dict(zip(loss.term_names, (float(value) for value in loss.eval_terms(sketch[None].to(device))[0])))
    terms = {name: values.get(name, 0.0) for name in TERM_ORDER if name in values or name in ALWAYS_REPORTED}
    return Score(terms, sum(values.values()))


def render_layer(document: SketchDocument, layer: DocumentLayer) -> torch.Tensor:
    """Render a sketch layer, given in its document's pixel coordinates, onto the canvas: ``[3, 224, 224]``."""
    level = layer.stroke_level()
    frame = CanvasFrame(round(document.width), round(document.height), CANVAS_SIZE)
    segments = [level.segments(index) for index in range(level.strokes)]
    points = frame.to_canvas(torch.from_numpy(np.concatenate(segments))).float()
    per_segment = torch.tensor([len(parts) for parts in segments])
    width = level.stroke_width if level.widths is None else torch.tensor(level.widths).repeat_interleave(per_segment)
    opacity = None if level.opacities is None else torch.tensor(level.opacities).repeat_interleave(per_segment)
    grey = rasterize(points, width / frame.scale, (CANVAS_SIZE, CANVAS_SIZE), opacity)
    return grey[None].expand(3, -1, -1)


def choose_layer(document: SketchDocument, strokes: int | None) -> DocumentLayer:
    """The layer with ``strokes`` strokes, or else any; of those the topmost visible one, else the topmost.

    After a refine the refined layer lies above its original, which is hidden: both have the same stroke count,
    and the refined one is chosen.
    """
    layers = document.layers
    if strokes is not None:
        layers = [layer for layer in layers if layer.strokes == strokes]
        if not layers:
            counts = ", ".join(str(layer.strokes) for layer in document.layers)
            raise SketchFileError(f"The sketch has no level with {strokes} strokes (it has: {counts}).")
    visible = [layer for layer in layers if layer.visible]
    return (visible or layers)[-1]
