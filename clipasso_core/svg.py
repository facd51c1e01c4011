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
from .path_data import MAX_COORDINATE, PathDataError, parse_path
from .svg_xml import (CLIPASSO_NS, INKSCAPE_NS, NUMBER, SODIPODI_NS, SVG_NS, WSP, XLINK_NS, clipasso_value, numbers,
                      read_svg, shown, style_of, user_length)

_SEP = rf"(?:{WSP}*,{WSP}*|{WSP}+|(?=[-+]))"  # between two numbers: a comma and/or blanks, or nothing before a sign
_SINGLE_CUBIC = re.compile(rf"{WSP}*M{WSP}*{NUMBER}{_SEP}{NUMBER}{WSP}*C{WSP}*{NUMBER}(?:{_SEP}{NUMBER}){{5}}{WSP}*")


@dataclass(frozen=True)
class DocumentLayer:
    """A layer of strokes read from an SVG: its label, whether it is shown, and its strokes (``level``).

    A layer whose paths cannot be read (``level`` is ``None``) says why in ``problem``: it fails only when
    it is the one chosen, so one edited or broken layer never spoils the others.
    """

    label: str
    visible: bool
    level: StrokeLevel | None
    problem: str | None = None
    strokes: int = 0

    def stroke_level(self) -> StrokeLevel:
        """The layer's strokes; raises :class:`SketchFileError` saying why when they cannot be read."""
        if self.level is None:
            raise SketchFileError(self.problem or f"The layer {shown(self.label)} cannot be read.")
        return self.level


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
        raise SketchFileError(f"Path data {shown(d)} is not a single absolute cubic stroke ('M x y C x y x y x y').")
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
    """The stroke layers of an SVG written by :func:`sketch_document` or ``clipasso refine``, as edited in Inkscape.

    Each path may be any path data (a refined or edited stroke has several segments); a layer whose paths cannot
    be read is kept with its ``problem`` (see :class:`DocumentLayer`).
    """
    root = read_svg(text, "sketch", SketchFileError)
    layers: list[DocumentLayer] = []
    for group in root.iter(f"{{{SVG_NS}}}g"):
        paths = group.findall(f"{{{SVG_NS}}}path")
        if paths:
            label = group.get(f"{{{INKSCAPE_NS}}}label") or group.get("id") or f"{len(paths)} strokes"
            layers.append(_read_layer(label, style_of(group).get("display") != "none", paths))
    loose = root.findall(f"{{{SVG_NS}}}path")
    if loose:
        layers.append(_read_layer(f"{len(loose)} strokes", True, loose))
    if not layers:
        raise SketchFileError("The sketch SVG holds no stroke paths.")
    return SketchDocument(_length(root, "width"), _length(root, "height"), layers, clipasso_value(root, "precision"))


def _read_layer(label: str, visible: bool, paths: list[ET.Element]) -> DocumentLayer:
    """A layer of ``paths``, or one that says in ``problem`` why they cannot be read."""
    try:
        return DocumentLayer(label, visible, _read_level(paths), strokes=len(paths))
    except (SketchFileError, PathDataError) as error:
        return DocumentLayer(label, visible, None, f"The layer {shown(label)} cannot be scored: {error}", len(paths))


def _length(root: ET.Element, name: str) -> float:
    value = root.get(name, "").strip()
    length = user_length(value)
    if length is None:
        raise SketchFileError(f"The sketch SVG needs a {name} in pixels (it has {shown(value) if value else 'none'}).")
    if not 1.0 <= length <= MAX_COORDINATE:  # the pixels of a picture: NaN and infinities fail the test too
        raise SketchFileError(f"The sketch SVG's {name} must be between 1 and {MAX_COORDINATE:,.0f} pixels, got "
                              f"{shown(value)}.")
    return length


def _read_level(paths: list[ET.Element]) -> StrokeLevel:
    """A level of single-cubic paths; per-stroke widths / opacities only where its strokes differ from the first / from 1."""
    data = tuple(path.get("d", "") for path in paths)
    for d in data:
        if not parse_path(d):
            raise SketchFileError(f"a path draws nothing (its path data is {shown(d, 40)}).")
    widths = tuple(_style_number(path, "stroke-width", "stroke width") for path in paths)
    opacities = tuple(_style_number(path, "stroke-opacity", "stroke opacity") for path in paths)
    return StrokeLevel(data, widths[0], widths=None if len(set(widths)) == 1 else widths,
                       opacities=None if set(opacities) == {1.0} else opacities)


def _style_number(path: ET.Element, name: str, what: str) -> float:
    """A number of the path's style (or presentation attribute) ``name``, e.g. its ``stroke-width`` (default 1)."""
    value = style_of(path).get(name) or path.get(name) or "1"
    number = user_length(value)
    if number is None:
        raise SketchFileError(f"Unreadable {what} {shown(value)} in the sketch SVG.")
    return number
