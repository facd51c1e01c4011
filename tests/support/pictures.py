"""Small drawings and path data that several test modules sketch or refine."""

from __future__ import annotations

from PIL import Image, ImageDraw

CURVE = "M 20 30 C 40 10 60 10 80 30 C 100 50 120 50 140 30"
EDITED = "m 30 150 l 40 -10 h 20 v -30 q 10 -20 30 0 c 5 5 10 5 15 0 s 10 -5 15 0"
LOCKED = "M 150.123456 20.5 L 170.75 90.25 L 120 110.0625"
CLOSED = "M 60 60 L 100 60 L 100 100 Z"
"""A designer's paths over :func:`picture`: two curves, an edited path of every command, one to lock, a closed one."""


def cup(width: int = 300, height: int = 200) -> Image.Image:
    """A cup seen from above: a black ring around a red square, on white."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.2, height * 0.2, width * 0.8, height * 0.9), outline="black", width=6)
    draw.rectangle((width * 0.4, height * 0.4, width * 0.6, height * 0.7), fill="red")
    return image


def picture() -> Image.Image:
    """A ring crossed by a diagonal line, 200 × 180: the picture the refine tests' paths lie over."""
    image = Image.new("RGB", (200, 180), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 40, 160, 150), outline="black", width=8)
    draw.line((20, 20, 180, 160), fill="black", width=6)
    return image
