"""A mask drawn as an SVG file: its filled shapes, as path data in the document's user units (image pixels).

``clipasso sketch --mask FILE.svg`` reads the SVG a designer drew over the picture in the picture's pixel
coordinates (user units = image pixels). Every filled ``path``, ``rect``, ``circle``, ``ellipse``,
``polygon`` and ``polyline`` counts, with the transforms of it and its groups composed; shapes with
``fill: none``, hidden ones and those inside ``defs``, ``clipPath``, ``mask``, ``symbol``, ``marker`` or
``pattern`` do not. Each shape is one path data string; the mask is their union.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np

from .mask import MaskError
from .path_data import PathDataError, format_path, parse_path, transform_subpaths
from .svg_transform import IDENTITY, parse_transform, svg_matrix
from .svg_xml import numbers, read_svg, shown, style_of, user_length

__all__ = ["read_mask_svg"]

_SKIPPED = {"defs", "clipPath", "mask", "symbol", "marker", "pattern", "metadata", "title", "desc", "style"}
_KAPPA = 4 * (math.sqrt(2) - 1) / 3  # control-point distance of a quarter circle as a cubic


def read_mask_svg(text: str) -> list[str]:
    """Path data of each filled shape in SVG ``text`` (in user units, transforms applied); raises :class:`MaskError`."""
    root = read_svg(text, "mask file", MaskError)
    shapes: list[str] = []
    _collect(root, IDENTITY, "black", shapes, is_root=True)
    if not shapes:
        raise MaskError("The mask file has no filled shape; draw a closed, filled shape over the part to sketch.")
    return shapes


def _collect(element: ET.Element, matrix: np.ndarray, fill: str, shapes: list[str], is_root: bool = False) -> None:
    name = _tag(element)
    style = style_of(element)
    if name in _SKIPPED or style.get("display") == "none" or element.get("display") == "none":
        return
    fill = style.get("fill") or element.get("fill") or fill
    if not is_root:
        try:
            with np.errstate(all="ignore"):  # a product beyond what floats hold is refused with the shape
                matrix = matrix @ parse_transform(element.get("transform"))
        except Exception:
            raise MaskError(f"The mask file has a transform that cannot be read: {shown(element.get('transform'))}.") from None
    data = _shape_path(name, element)
    if data is not None and fill.strip() != "none":
        try:
            subpaths = parse_path(data)
        except PathDataError as error:
            raise MaskError(f"A <{name}> of the mask file cannot be read: {error}") from None
        if subpaths:
            try:
                shapes.append(format_path(transform_subpaths(subpaths, svg_matrix(matrix))))
            except PathDataError as error:
                raise MaskError(f"A <{name}> of the mask file cannot be used: {error}") from None
    for child in element:
        _collect(child, matrix, fill, shapes)


def _shape_path(name: str, element: ET.Element) -> str | None:
    """Path data of a basic shape in its own coordinates, or ``None`` for anything that is not a shape."""
    if name == "path":
        return element.get("d") or ""
    if name in ("polygon", "polyline"):
        values = numbers(element.get("points") or "")
        if len(values) < 4:
            return ""
        pairs = [f"{values[i]} {values[i + 1]}" for i in range(0, len(values) - 1, 2)]
        return "M " + " L ".join(pairs) + " Z"
    if name == "rect":
        x, y, w, h = (_length(element, key) for key in ("x", "y", "width", "height"))
        return f"M {x} {y} H {x + w} V {y + h} H {x} Z" if w > 0 and h > 0 else ""
    if name in ("circle", "ellipse"):
        cx, cy = _length(element, "cx"), _length(element, "cy")
        rx = _length(element, "r") if name == "circle" else _length(element, "rx")
        ry = _length(element, "r") if name == "circle" else _length(element, "ry")
        if rx <= 0 or ry <= 0:
            return ""
        kx, ky = _KAPPA * rx, _KAPPA * ry
        return (f"M {cx + rx} {cy} C {cx + rx} {cy + ky} {cx + kx} {cy + ry} {cx} {cy + ry} "
                f"C {cx - kx} {cy + ry} {cx - rx} {cy + ky} {cx - rx} {cy} "
                f"C {cx - rx} {cy - ky} {cx - kx} {cy - ry} {cx} {cy - ry} "
                f"C {cx + kx} {cy - ry} {cx + rx} {cy - ky} {cx + rx} {cy} Z")
    return None


def _length(element: ET.Element, key: str) -> float:
    text = (element.get(key) or "0").strip()
    value = user_length(text)
    if value is None:
        raise MaskError(f"The mask file's <{_tag(element)}> has {key}={shown(text)}; give plain numbers (image pixels).")
    if not math.isfinite(value):
        raise MaskError(f"The mask file's <{_tag(element)}> has a {key} that is not a finite number.")
    return value


def _tag(element: ET.Element) -> str:
    tag = element.tag if isinstance(element.tag, str) else ""
    return tag.rsplit("}", 1)[-1]
