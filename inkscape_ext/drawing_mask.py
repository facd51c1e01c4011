"""A mask from the drawing: closed shapes selected over an <image>, or the image's own clip-path, in its pixels.

The sketch server takes a mask as SVG path data in the picture's pixels (nonzero fill, a list is a union).
A shape drawn over the image is mapped there through its own composed transform followed by the inverse
of the exact pixel → document placement the strokes are inserted with (placement.pixel_to_document), so
any rotation, skew, flip or preserveAspectRatio of the image or the shape is honoured. Curves stay exact:
every shape is turned into cubic segments first, which an affine map carries over exactly.

Only closed shapes mask (rectangles, circles, ellipses, polygons, and paths whose every subpath is closed);
open paths in the selection are left alone, as before.
"""

import math
import re
from typing import List, Optional, Sequence, Tuple

import inkex

from placement import composed_transform, pixel_to_document, read_transform

SHAPES = (inkex.PathElement, inkex.Rectangle, inkex.Circle, inkex.Ellipse, inkex.Polygon)
_URL = re.compile(r"^\s*url\(\s*['\"]?#([^'\")]+)['\"]?\s*\)\s*$")


def closed_shapes(elements: Sequence[inkex.BaseElement]) -> List[inkex.ShapeElement]:
    """The elements that enclose an area: closed shapes, in the given order."""
    return [element for element in elements if encloses(element)]


def encloses(element: inkex.BaseElement) -> bool:
    """Whether the element is a shape that encloses an area: a closed path, rectangle, circle, ellipse or polygon."""
    return isinstance(element, SHAPES) and is_closed(element)


def is_closed(element: inkex.ShapeElement) -> bool:
    """Whether every subpath of the shape ends closed (rectangles, circles, ellipses, polygons always do)."""
    if not isinstance(element, inkex.PathElement):
        return True
    closed, drawing = True, False
    for command in element.path:
        if command.letter in "Mm":
            if drawing:
                closed = False
            drawing = False
        elif command.letter in "Zz":
            drawing = False
        else:
            drawing = True
    return closed and not drawing and any(command.letter in "Zz" for command in element.path)


def shape_in_pixels(shape: inkex.ShapeElement, to_document: inkex.Transform,
                    placement: inkex.Transform) -> inkex.CubicSuperPath:
    """The shape's outline as cubic subpaths in the picture's pixels: ``placement⁻¹ · to_document · shape``.

    Raises inkex.AbortExtension in one sentence when its numbers overflow (an arc of radius 1e300, say).
    """
    try:
        outline = inkex.Path(shape.path.to_superpath()).transform(-placement @ to_document).to_superpath()
        finite = all(math.isfinite(value) for subpath in outline for node in subpath for point in node for value in point)
    except (TypeError, ValueError, ArithmeticError):
        finite = False
    if not finite:
        raise inkex.AbortExtension(f"The shape “{shape.get_id()}” has numbers beyond what a drawing can hold (an arc's "
                                   "radius or a transform); redraw it or reset its transform, then try again.")
    return outline


def overlaps(outline: inkex.CubicSuperPath, pixels: Tuple[int, int]) -> bool:
    """Whether the outline's bounding box meets the picture (0..W × 0..H pixels) with some area."""
    box = inkex.Path(outline).bounding_box()
    return box is not None and box.left < pixels[0] and box.right > 0 and box.top < pixels[1] and box.bottom > 0


def selection_mask(shapes: Sequence[inkex.ShapeElement], image: inkex.Image,
                   pixels: Tuple[int, int]) -> List[Tuple[inkex.ShapeElement, str]]:
    """The selected shapes that lie over this image, each with its path data in the image's pixels."""
    placement = pixel_to_document(image, pixels)
    found = []
    for shape in shapes:
        outline = shape_in_pixels(shape, composed_transform(shape), placement)
        if overlaps(outline, pixels):
            found.append((shape, path_data(outline)))
    return found


def clip_mask(image: inkex.Image, pixels: Tuple[int, int]) -> Optional[List[str]]:
    """The closed shapes of the image's own clip-path in the image's pixels, or None when it has none."""
    match = _URL.match(image.get("clip-path") or "")
    clip = image.root.getElementById(match.group(1)) if match else None
    if clip is None:
        return None
    placement = pixel_to_document(image, pixels)
    user_space = composed_transform(image) @ read_transform(clip)
    if clip.get("clipPathUnits") == "objectBoundingBox":
        x, y, width, height = _image_box(image, pixels)
        user_space = user_space @ inkex.Transform(translate=(x, y)) @ inkex.Transform(scale=(width, height))
    paths = [path_data(shape_in_pixels(shape, user_space @ read_transform(shape), placement))
             for shape in closed_shapes(list(clip))]
    return paths or None


def _image_box(image: inkex.Image, pixels: Tuple[int, int]) -> Tuple[float, float, float, float]:
    """(x, y, width, height) of the image element's box in its own user space ("auto" = the bitmap's size)."""

    def length(name: str, default: float) -> float:
        value = (image.get(name) or "auto").strip()
        return default if value == "auto" else image.to_dimensionless(value)

    return length("x", 0.0), length("y", 0.0), length("width", pixels[0]), length("height", pixels[1])


def path_data(outline: inkex.CubicSuperPath) -> str:
    """Absolute path data ``M … C … Z`` of cubic subpaths, every one closed."""

    def point(xy: Sequence[float]) -> str:
        return f"{xy[0]:.10g} {xy[1]:.10g}"

    parts = []
    for subpath in outline:
        if not subpath:
            continue
        parts.append(f"M {point(subpath[0][1])}")
        parts.extend(f"C {point(a[2])} {point(b[0])} {point(b[1])}" for a, b in zip(subpath, subpath[1:]))
        parts.append("Z")
    return " ".join(parts)
