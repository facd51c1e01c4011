"""A PNG contact sheet: the source image and every level's strokes side by side."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from .raster import rasterize
from .sketch import SketchResult

PANEL_SIDE = 384
LABEL_HEIGHT = 24
GAP = 8


def preview_sheet(source: Image.Image, result: SketchResult, side: int = PANEL_SIDE) -> Image.Image:
    """One row of panels, each at most ``side`` pixels: the source, then each level labelled by its stroke count."""
    scale = side / max(result.width, result.height)
    width, height = max(1, round(result.width * scale)), max(1, round(result.height * scale))
    panels = [("source", source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS))]
    for level in result.levels:
        segments = torch.from_numpy(np.concatenate([level.segments(index) for index in range(level.strokes)]))
        grey = rasterize(segments.float() * scale, level.stroke_width * scale, (height, width))
        pixels = (grey.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        panels.append((f"{level.strokes} strokes", Image.fromarray(pixels, mode="L").convert("RGB")))
    sheet = Image.new("RGB", (len(panels) * (width + GAP) + GAP, height + LABEL_HEIGHT + 2 * GAP), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (label, panel) in enumerate(panels):
        left = GAP + index * (width + GAP)
        sheet.paste(panel, (left, GAP))
        draw.rectangle((left - 1, GAP - 1, left + width, GAP + height), outline=(200, 200, 200))
        draw.text((left, GAP + height + 6), label, fill="black")
    return sheet
