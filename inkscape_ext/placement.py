"""Geometry of an <image>: the affine from its bitmap's pixels to document user units."""

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
    """The affine from the image's bitmap pixels to the root's user units (all transforms composed)."""
    bitmap_w, bitmap_h = pixels
    viewport = (
        image.to_dimensionless(image.get("x", "0")),
        image.to_dimensionless(image.get("y", "0")),
        _length(image, "width", bitmap_w),
        _length(image, "height", bitmap_h),
    )
    local = viewport_transform(viewport, pixels, image.get("preserveAspectRatio", ""))
    return composed_transform(image) @ local


def composed_transform(element: inkex.BaseElement) -> inkex.Transform:
    """The element's and its ancestors' transforms below the root, multiplied.

    Reading through inkex (composed_transform(), .get("transform")) rewrites each attribute as a
    matrix; the raw attributes are read so the designer's markup stays as it is.
    """
    transform = inkex.Transform()
    node = element
    while node.getparent() is not None:
        transform = inkex.Transform(node.attrib.get("transform")) @ transform
        node = node.getparent()
    return transform


def _length(image: inkex.BaseElement, attribute: str, intrinsic: float) -> float:
    """A width/height attribute in user units; missing or "auto" means the bitmap's own size."""
    value = (image.get(attribute) or "auto").strip()
    return intrinsic if value == "auto" else image.to_dimensionless(value)
