"""Geometry of an <image>: the affine from its bitmap's pixels to document user units."""

import math
from typing import Tuple

import inkex

ALIGN_FRACTIONS = {"Min": 0.0, "Mid": 0.5, "Max": 1.0}


def parse_preserve_aspect_ratio(value: str) -> Tuple[str, str]:
    """Split a preserveAspectRatio value into (align, "meet"|"slice"); SVG default on junk."""
    words = (value or "").split()
    if words and words[0] == "defer":
        words = words[1:]
    align = words[0] if words else "xMidYMid"
    mode = words[1] if len(words) > 1 else "meet"
    valid_align = align == "none" or (
        len(align) == 8
        and align[0] == "x"
        and align[4] == "Y"
        and align[1:4] in ALIGN_FRACTIONS
        and align[5:8] in ALIGN_FRACTIONS
    )
    if not valid_align or mode not in ("meet", "slice") or len(words) > 2:
        return "xMidYMid", "meet"
    return align, mode


def viewport_transform(
    viewport: Tuple[float, float, float, float], pixels: Tuple[float, float], preserve_aspect_ratio: str
) -> inkex.Transform:
    """Map pixel coordinates of a W×H bitmap into the viewport (x, y, w, h) as SVG draws it."""
    x, y, width, height = viewport
    bitmap_w, bitmap_h = pixels
    align, mode = parse_preserve_aspect_ratio(preserve_aspect_ratio)
    scale_x, scale_y = width / bitmap_w, height / bitmap_h
    if align == "none":
        return inkex.Transform(translate=(x, y)) @ inkex.Transform(scale=(scale_x, scale_y))
    scale = min(scale_x, scale_y) if mode == "meet" else max(scale_x, scale_y)
    shift_x = ALIGN_FRACTIONS[align[1:4]] * (width - bitmap_w * scale)
    shift_y = ALIGN_FRACTIONS[align[5:8]] * (height - bitmap_h * scale)
    return inkex.Transform(translate=(x + shift_x, y + shift_y)) @ inkex.Transform(scale=scale)


def pixel_to_document(image: inkex.BaseElement, pixels: Tuple[float, float]) -> inkex.Transform:
    """The affine from the image's bitmap pixels to the root's user units (all transforms composed).

    Raises inkex.AbortExtension in one sentence when there is none: a bitmap or an image box without
    area, or transforms that scale it to nothing or beyond what numbers hold (NaN, infinity).
    """
    name = image.get("inkscape:label") or image.get_id()
    bitmap_w, bitmap_h = pixels
    if not (_finite(bitmap_w, bitmap_h) and bitmap_w > 0 and bitmap_h > 0):
        raise inkex.AbortExtension(f"The picture of “{name}” has no pixels ({bitmap_w} × {bitmap_h}); sketch the "
                                   "image again.")
    viewport = (
        image.to_dimensionless(image.get("x", "0")),
        image.to_dimensionless(image.get("y", "0")),
        _length(image, "width", bitmap_w),
        _length(image, "height", bitmap_h),
    )
    if not (_finite(*viewport) and viewport[2] > 0 and viewport[3] > 0):
        raise inkex.AbortExtension(f"The image “{name}” has no area in the drawing (width {viewport[2]:g}, height "
                                   f"{viewport[3]:g}); give it a width and a height, then try again.")
    local = viewport_transform(viewport, pixels, image.get("preserveAspectRatio", ""))
    placement = composed_transform(image) @ local
    determinant = placement.a * placement.d - placement.b * placement.c
    if not (_finite(*placement.to_hexad(), determinant) and determinant != 0 and math.isfinite(1 / determinant)):
        raise inkex.AbortExtension(f"The image “{name}” is transformed to nothing or beyond what numbers hold "
                                   f"({placement}); reset its transform and its groups' (Object → Transform), "
                                   "then try again.")
    return placement


def _finite(*values: float) -> bool:
    return all(math.isfinite(value) for value in values)


def composed_transform(element: inkex.BaseElement) -> inkex.Transform:
    """The element's and its ancestors' transforms below the root, multiplied.

    Reading through inkex (composed_transform(), .get("transform")) rewrites each attribute as a
    matrix; the raw attributes are read so the designer's markup stays as it is.
    """
    transform = inkex.Transform()
    node = element
    while node.getparent() is not None:
        transform = read_transform(node) @ transform
        node = node.getparent()
    return transform


def read_transform(element: inkex.BaseElement) -> inkex.Transform:
    """The element's own raw ``transform`` attribute; inkex.AbortExtension in one sentence when inkex cannot read it."""
    text = element.attrib.get("transform")
    try:
        return inkex.Transform(text)
    except (TypeError, ValueError, ArithmeticError):  # inkex reads "scale(nan)" as a call without arguments
        shown = text if len(text) <= 60 else text[:59] + "…"
        raise inkex.AbortExtension(f"The transform “{shown}” of “{element.get_id()}” cannot be read; reset it "
                                   "(Object → Transform), then try again.") from None


def _length(image: inkex.BaseElement, attribute: str, intrinsic: float) -> float:
    """A width/height attribute in user units; missing or "auto" means the bitmap's own size."""
    value = (image.get(attribute) or "auto").strip()
    return intrinsic if value == "auto" else image.to_dimensionless(value)
