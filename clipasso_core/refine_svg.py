"""Read a sketch layer of a layered SVG for a refine, and add the refined layer above it.

The SVG is one written by ``clipasso sketch`` or saved by Inkscape after a designer edited it. Its user
space maps to the image's pixels through the root ``viewBox`` (as ``clipasso sketch`` writes it:
``0 0 W H`` for a W×H image); transforms on layers, groups and paths are composed into that map. A
path is locked when it, or a group it sits in, has Inkscape's lock (``sodipodi:insensitive="true"``).
The refined layer is inserted right above the old one, which is hidden; nothing else changes. Strokes a
refine added (``--add``) are marked ``clipasso:added="true"`` and name the layer "<N> strokes (completed)".
"""

from __future__ import annotations

import math
import re
import statistics
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from .errors import SketchFileError
from .level import StrokeLevel
from .path_data import PathDataError, format_path, parse_path, transform_subpaths
from .svg import stroke_style
from .svg_transform import IDENTITY, parse_transform, svg_matrix
from .svg_xml import (CLIPASSO_NS, INKSCAPE_NS, NUMBER, SODIPODI_NS, SVG_NS, WSP, numbers, read_svg, shown,
                      style_of, user_length)

__all__ = ["LayerStrokes", "LayeredDrawing", "NAME_A_LAYER"]

_GROUP = f"{{{SVG_NS}}}g"
_PATH = f"{{{SVG_NS}}}path"
_LABEL = f"{{{INKSCAPE_NS}}}label"
_GROUPMODE = f"{{{INKSCAPE_NS}}}groupmode"
_LOCK = f"{{{SODIPODI_NS}}}insensitive"
_ADDED = f"{{{CLIPASSO_NS}}}added"
_LEFT_OUT = f"{{{CLIPASSO_NS}}}left-out"
_NOT_DRAWN = {f"{{{SVG_NS}}}{name}" for name in ("title", "desc", "metadata", "defs")}
_VIEW_BOX = re.compile(rf"{WSP}*{NUMBER}(?:(?:{WSP}+(?:,{WSP}*)?|,{WSP}*){NUMBER}){{3}}{WSP}*")  # one way to match
NAME_A_LAYER = "find_layer(label)"
"""How an error tells the caller to name the layer to refine (a command line says it with its layer option)."""


@dataclass(frozen=True)
class LayerStrokes:
    """The strokes of one layer in image pixels: path data, which are locked, pen width and colours."""

    label: str
    paths: list[str]
    locked: list[int]
    stroke_width: float
    colors: list[str]


def _invertible(matrix: np.ndarray) -> bool:
    """Whether an affine matrix is finite and maps the plane onto itself with a determinant a float can invert."""
    if not np.all(np.isfinite(matrix)):
        return False
    determinant = float(np.linalg.det(matrix[:2, :2]))
    return determinant != 0.0 and np.isfinite(1.0 / determinant) and np.all(np.isfinite(np.linalg.inv(matrix)))


def _set_display_none(element: ET.Element) -> None:
    style = style_of(element)
    style["display"] = "none"
    element.set("style", ";".join(f"{key}:{value}" for key, value in style.items()))


def _describe(element: ET.Element) -> str:
    name = element.tag.rsplit("}", 1)[-1][:40]
    ident = element.get("id")
    return f"the <{name}> {shown(ident, 40)}" if ident else f"a <{name}>"


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


class LayeredDrawing:
    """A layered SVG document whose user space maps to the pixels of a ``width`` × ``height`` image."""

    def __init__(self, text: str, width: int, height: int) -> None:
        self.root = read_svg(text, "sketch", SketchFileError)
        self.parents = {child: parent for parent in self.root.iter() for child in parent}
        self.to_pixels = self._user_to_pixels(width, height)

    def _user_to_pixels(self, width: int, height: int) -> np.ndarray:
        """Root user units → image pixels: the viewBox spans the image (else the document's px size does).

        A viewBox that is not four numbers with a positive width and height is ignored, as SVG says; one
        that maps no finite, non-zero scale onto the image is refused in words.
        """
        text = self.root.get("viewBox") or ""
        view_box = numbers(text) if _VIEW_BOX.fullmatch(text) else []
        if len(view_box) == 4 and view_box[2] > 0 and view_box[3] > 0:
            x, y, w, h = view_box
        else:
            sizes = [user_length(self.root.get(name)) for name in ("width", "height")]
            if sizes[0] is None or sizes[1] is None or not (sizes[0] > 0 and sizes[1] > 0):
                return IDENTITY.copy()
            x, y, w, h = 0.0, 0.0, sizes[0], sizes[1]
        with np.errstate(all="ignore"):
            matrix = np.array([[width / w, 0.0, -x * width / w], [0.0, height / h, -y * height / h], [0.0, 0.0, 1.0]])
        if not _invertible(matrix):
            raise SketchFileError(f"The sketch's viewBox {shown(text)} (or its size) maps to no usable scale on the "
                                  f"{width}×{height} image; give it the image's size, e.g. '0 0 {width} {height}'.")
        return matrix

    def _composed(self, element: ET.Element | None) -> np.ndarray:
        """The transform from ``element``'s coordinates (its own transform included) to root user units."""
        matrix = IDENTITY.copy()
        while element is not None and element is not self.root:
            matrix = parse_transform(element.get("transform")) @ matrix
            element = self.parents.get(element)
        return matrix

    def _inherited(self, element: ET.Element, name: str, default: str) -> str:
        while element is not None:
            value = style_of(element).get(name) or element.get(name)
            if value and value != "inherit":
                return value
            element = self.parents.get(element)
        return default

    def layers(self) -> list[ET.Element]:
        """Every Inkscape layer (and sublayer), in document order."""
        return [group for group in self.root.iter(_GROUP) if group.get(_GROUPMODE) == "layer"]

    def find_layer(self, label: str | None = None, level: int | None = None) -> ET.Element:
        """The layer labelled ``label``; or of ``level`` (``"<level> strokes"`` or a refine of it, ``"<level> strokes
        (refined)"``) the topmost visible one, else the topmost; or else the topmost visible one with paths."""
        layers = self.layers()
        with_paths = [layer for layer in layers if self._paths(layer)]
        if label is None and level is not None:
            name = f"{level} strokes"
            of_level = [layer for layer in layers if (layer.get(_LABEL) or "") == name
                        or (layer.get(_LABEL) or "").startswith(f"{name} (")]
            visible = [layer for layer in of_level if self._inherited(layer, "display", "inline") != "none"]
            if visible or of_level:
                return (visible or of_level)[-1]
            label = name
        if label is not None:
            for layer in reversed(layers):
                if layer.get(_LABEL) == label:
                    return layer
            names = ", ".join(shown(layer.get(_LABEL) or layer.get("id"), 40) for layer in with_paths[:10]) or "none"
            raise SketchFileError(f"The sketch has no layer named {shown(label)} (layers with paths: {names}).")
        visible = [layer for layer in with_paths if self._inherited(layer, "display", "inline") != "none"]
        if not visible:
            raise SketchFileError(f"The sketch has no visible layer with paths; name one with {NAME_A_LAYER}.",
                                  [NAME_A_LAYER])
        return visible[-1]

    def _paths(self, group: ET.Element) -> list[ET.Element]:
        """Drawn elements of a layer, descending into groups but not into sublayers; hidden ones left out."""
        found = []
        for child in group:
            if not isinstance(child.tag, str) or child.tag in _NOT_DRAWN:
                continue
            if "display:none" in (child.get("style") or "").replace(" ", "") or child.get("display") == "none":
                continue
            if child.tag == _GROUP:
                if child.get(_GROUPMODE) != "layer":
                    found.extend(self._paths(child))
            else:
                found.append(child)
        return found

    def strokes(self, layer: ET.Element) -> LayerStrokes:
        """The layer's paths in image pixels; raises :class:`SketchFileError` on anything that is not a stroke."""
        label = layer.get(_LABEL) or layer.get("id") or "the layer"
        paths, locked, widths, colors = [], [], [], []
        for element in self._paths(layer):
            if element.tag != _PATH:
                raise SketchFileError(f"The layer {shown(label)} holds {_describe(element)}, which is not a stroke; "
                                      "convert it with Path → Object to Path, or move it to another layer.")
            fill = self._inherited(element, "fill", "black")
            if fill.lower() not in ("none", "transparent"):
                raise SketchFileError(f"The layer {shown(label)} holds {_describe(element)}, a filled shape; "
                                      "refine works on strokes only (set its fill to none or move it away).")
            try:
                subpaths = parse_path(element.get("d") or "")
            except PathDataError as error:
                raise SketchFileError(f"{_capitalized(_describe(element))} in {shown(label)}: {error}") from None
            if not subpaths:
                continue
            if len(subpaths) > 1:
                raise SketchFileError(f"{_capitalized(_describe(element))} in {shown(label)} holds {len(subpaths)} separate "
                                      "strokes; split it with Path → Break Apart.")
            with np.errstate(all="ignore"):
                matrix = self.to_pixels @ self._composed(element)
            try:
                paths.append(format_path(transform_subpaths(subpaths, svg_matrix(matrix))))
            except PathDataError as error:
                raise SketchFileError(f"{_capitalized(_describe(element))} in {shown(label)}: {error}") from None
            if self._locked(element, layer):
                locked.append(len(paths) - 1)
            widths.append(self._width_in_pixels(element, abs(np.linalg.det(matrix[:2, :2])) ** 0.5))
            colors.append(self._inherited(element, "stroke", "#000000"))
        if not paths:
            raise SketchFileError(f"The layer {shown(label)} holds no paths to refine.")
        return LayerStrokes(label, paths, locked, statistics.median(widths), colors)

    def _locked(self, element: ET.Element, layer: ET.Element) -> bool:
        while element is not None:
            if element.get(_LOCK) == "true":
                return True
            if element is layer:
                return False
            element = self.parents.get(element)
        return False

    def _width_in_pixels(self, element: ET.Element, scale: float) -> float:
        """The element's stroke width in image pixels (its user units × ``scale``); SketchFileError in words if it is
        not a length or not a finite number of pixels."""
        value = self._inherited(element, "stroke-width", "1")
        length = user_length(value)
        if length is None:
            raise SketchFileError(f"The stroke width {shown(value)} of {_describe(element)} is not a length in user units.")
        with np.errstate(all="ignore"):
            width = float(length * scale)
        if not math.isfinite(width):
            raise SketchFileError(f"The stroke width {shown(value)} of {_describe(element)} is beyond what a drawing can "
                                  "hold (with its transforms); give it a usual width.")
        return width

    def add_refined(self, layer: ET.Element, strokes: LayerStrokes, level: StrokeLevel) -> str:
        """Insert ``level`` (image pixels) as a new layer right above ``layer``, hide ``layer``; returns the label.

        Each path keeps the colour, and each locked path the lock, of its stroke in ``strokes``; added paths
        take the first stroke's colour and are marked as added.
        """
        parent = self.parents[layer]
        ids = {element.get("id") for element in self.root.iter() if element.get("id")}

        def fresh(base: str) -> str:
            candidate, number = base, 2
            while candidate in ids:
                candidate, number = f"{base}-{number}", number + 1
            ids.add(candidate)
            return candidate

        label = f"{level.strokes} strokes ({'completed' if level.added else 'refined'})"
        attributes = {"id": fresh(f"{layer.get('id') or 'layer'}-refined"), _GROUPMODE: "layer", _LABEL: label}
        if level.left_out is not None:
            attributes[_LEFT_OUT] = str(level.left_out)
        with np.errstate(all="ignore"):
            to_pixels = self.to_pixels @ self._composed(parent)
        if not _invertible(to_pixels):
            raise SketchFileError(f"The layer holding {shown(strokes.label)} is transformed to nothing (scaled by 0, or "
                                  "beyond what numbers hold); reset its transform.")
        to_parent = np.linalg.inv(to_pixels)
        if not np.allclose(to_parent, IDENTITY, rtol=0.0, atol=1e-12):
            attributes["transform"] = "matrix({})".format(",".join(f"{v:.12g}" for v in svg_matrix(to_parent)))
        refined = ET.Element(_GROUP, attributes)
        for index, d in enumerate(level.paths):
            color = strokes.colors[0] if level.is_added(index) else strokes.colors[index]
            path = ET.SubElement(refined, _PATH, {"id": fresh(f"{attributes['id']}-stroke-{index + 1}"), "d": d,
                                                  "style": stroke_style(level.width_of(index), color,
                                                                        level.opacity_of(index))})
            if level.is_added(index):
                path.set(_ADDED, "true")
            elif index in strokes.locked:
                path.set(_LOCK, "true")
        depth = self._depth(layer)
        ET.indent(refined, level=depth)
        refined.tail, layer.tail = layer.tail, "\n" + "  " * depth
        parent.insert(list(parent).index(layer) + 1, refined)
        self.parents.update({child: refined for child in refined})
        self.parents[refined] = parent
        _set_display_none(layer)
        return label

    def _depth(self, element: ET.Element) -> int:
        depth = 0
        while element in self.parents:
            element, depth = self.parents[element], depth + 1
        return depth

    def to_string(self) -> str:
        """The document as SVG text with an XML declaration."""
        return ET.tostring(self.root, encoding="unicode", xml_declaration=True) + "\n"
