"""Strokes ↔ SVG: path data of single cubic strokes, and a document with one Inkscape layer per level.

Coordinates are the source image's pixels (x right, y down); a stroke is ``M x0 y0 C x1 y1 x2 y2 x3 y3``.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import SketchFileError
from .level import StrokeLevel
from .svg_xml import (CLIPASSO_NS, INKSCAPE_NS, NUMBER, SODIPODI_NS, SVG_NS, XLINK_NS, clipasso_value, numbers, read_svg,
                      style_of, user_length)

_SEP = r"(?:\s*,\s*|\s+|(?=[-+]))"  # between two numbers: a comma and/or blanks, or nothing before a sign
_SINGLE_CUBIC = re.compile(rf"\s*M\s*{NUMBER}{_SEP}{NUMBER}\s*C\s*{NUMBER}(?:{_SEP}{NUMBER}){{5}}\s*")


@dataclass(frozen=True)
class DocumentLayer:
    """A layer of strokes read from an SVG: its label, whether it is shown, and its strokes."""

    label: str
    visible: bool
    level: StrokeLevel


def _fmt(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def path_data(stroke: Sequence[Sequence[float]] | np.ndarray) -> str:
    """SVG path data ``M x0 y0 C x1 y1 x2 y2 x3 y3`` of one cubic stroke given as 4 points ``[4, 2]``."""
    p = np.asarray(stroke, dtype=np.float64).reshape(4, 2)
    coords = [_fmt(v) for v in p.reshape(-1)]
    return f"M {coords[0]} {coords[1]} C {' '.join(coords[2:])}"


def stroke_paths(points: np.ndarray) -> tuple[str, ...]:
    """The path data of each single cubic stroke of ``points`` ``[S, 4, 2]`` (see :func:`path_data`)."""
    return tuple(path_data(stroke) for stroke in np.asarray(points, dtype=np.float64).reshape(-1, 4, 2))


def parse_path_data(d: str) -> np.ndarray:
    """Control points ``[4, 2]`` of a single absolute cubic ``M … C …`` path (as :func:`path_data` writes)."""
    if _SINGLE_CUBIC.fullmatch(d) is None:
        raise SketchFileError(f"Path data {d[:60]!r} is not a single absolute cubic stroke ('M x y C x y x y x y').")
    return np.array(numbers(d), dtype=np.float64).reshape(4, 2)


def stroke_style(stroke_width: float, color: str = "#000000", opacity: float = 1.0) -> str:
    """The style of a sketch stroke: coloured pen, no fill, round caps and joins."""
    return (
        f"fill:none;stroke:{color};stroke-width:{_fmt(stroke_width)};"
        f"stroke-linecap:round;stroke-linejoin:round;stroke-opacity:{_fmt(opacity)}"
    )


@dataclass(frozen=True)
class SketchDocument:
    """A sketch read back from SVG: the image size its coordinates refer to, its layers, and the job's precision."""

    width: float
    height: float
    layers: list[DocumentLayer]
    precision: str | None = None


def sketch_document(width: int, height: int, levels: Sequence[StrokeLevel], image: bytes | None = None,
                    image_type: str = "image/png", color: str = "#000000", precision: str | None = None) -> str:
    """An SVG document of the source image's size with one Inkscape layer per level (``"<S> strokes"``).

    Only the last level's layer is shown. With ``image`` (file bytes of MIME type ``image_type``) the
    source image is embedded as a locked bottom layer under the strokes. ``precision`` (the networks'
    precision of the job) is recorded on the root. A tidied level records how many strokes it left out
    (``clipasso:left-out``); its label counts the strokes it holds.
    """
    root = ET.Element(f"{{{SVG_NS}}}svg", {
        "width": str(width), "height": str(height), "viewBox": f"0 0 {width} {height}", "version": "1.1",
    })
    if precision is not None:
        root.set(f"{{{CLIPASSO_NS}}}precision", precision)
    if image is not None:
        image_layer = _layer(root, "Source image", "source-image", visible=True)
        image_layer.set(f"{{{SODIPODI_NS}}}insensitive", "true")
        ET.SubElement(image_layer, f"{{{SVG_NS}}}image", {
            "id": "source-image-pixels", "x": "0", "y": "0", "width": str(width), "height": str(height),
            "preserveAspectRatio": "none",
            f"{{{XLINK_NS}}}href": f"data:{image_type};base64," + base64.b64encode(image).decode("ascii"),
        })
    for number, level in enumerate(levels, start=1):
        asked = level.strokes + (level.left_out or 0)
        group = _layer(root, f"{level.strokes} strokes", f"level-{asked}", visible=number == len(levels))
        if level.left_out is not None:
            group.set(f"{{{CLIPASSO_NS}}}left-out", str(level.left_out))
        for index, d in enumerate(level.paths):
            ET.SubElement(group, f"{{{SVG_NS}}}path", {
                "id": f"level-{asked}-stroke-{index + 1}", "d": d,
                "style": stroke_style(level.width_of(index), color, level.opacity_of(index)),
            })
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _layer(parent: ET.Element, label: str, layer_id: str, visible: bool) -> ET.Element:
    attributes = {"id": layer_id, f"{{{INKSCAPE_NS}}}groupmode": "layer", f"{{{INKSCAPE_NS}}}label": label}
    if not visible:
        attributes["style"] = "display:none"
    return ET.SubElement(parent, f"{{{SVG_NS}}}g", attributes)


def read_sketch_document(text: str) -> SketchDocument:
    """The stroke layers of an SVG written by :func:`sketch_document` (or any SVG of single-cubic paths)."""
    root = read_svg(text, "sketch", SketchFileError)
    layers: list[DocumentLayer] = []
    for group in root.iter(f"{{{SVG_NS}}}g"):
        paths = group.findall(f"{{{SVG_NS}}}path")
        if paths:
            label = group.get(f"{{{INKSCAPE_NS}}}label") or group.get("id") or f"{len(paths)} strokes"
            layers.append(DocumentLayer(label, style_of(group).get("display") != "none", _read_level(paths)))
    loose = root.findall(f"{{{SVG_NS}}}path")
    if loose:
        layers.append(DocumentLayer(f"{len(loose)} strokes", True, _read_level(loose)))
    if not layers:
        raise SketchFileError("The sketch SVG holds no stroke paths.")
    return SketchDocument(_length(root, "width"), _length(root, "height"), layers, clipasso_value(root, "precision"))


def _length(root: ET.Element, name: str) -> float:
    value = root.get(name, "").strip()
    length = user_length(value)
    if length is None:
        raise SketchFileError(f"The sketch SVG needs a {name} in pixels (it has {value or 'none'!r}).")
    if length <= 0:
        raise SketchFileError(f"The sketch SVG's {name} must be positive.")
    return length


def _read_level(paths: list[ET.Element]) -> StrokeLevel:
    """A level of single-cubic paths; per-stroke widths / opacities only where its strokes differ from the first / from 1."""
    data = tuple(path.get("d", "") for path in paths)
    for d in data:
        parse_path_data(d)
    widths = tuple(_style_number(path, "stroke-width", "stroke width") for path in paths)
    opacities = tuple(_style_number(path, "stroke-opacity", "stroke opacity") for path in paths)
    return StrokeLevel(data, widths[0], widths=None if len(set(widths)) == 1 else widths,
                       opacities=None if set(opacities) == {1.0} else opacities)


def _style_number(path: ET.Element, name: str, what: str) -> float:
    """A number of the path's style (or presentation attribute) ``name``, e.g. its ``stroke-width`` (default 1)."""
    value = style_of(path).get(name) or path.get(name) or "1"
    number = user_length(value)
    if number is None:
        raise SketchFileError(f"Unreadable {what} {value!r} in the sketch SVG.")
    return number
