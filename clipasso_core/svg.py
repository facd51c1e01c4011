"""Strokes ↔ SVG: path data for single cubic strokes and a document with one Inkscape layer per level.

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

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
INKSCAPE_NS = "http://www.inkscape.org/namespaces/inkscape"
SODIPODI_NS = "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
CLIPASSO_NS = "https://github.com/clipasso-inkscape/ns"
"""Namespace of what a sketch records about the job that made it (``clipasso:precision`` on the root)."""

for _prefix, _uri in (("", SVG_NS), ("xlink", XLINK_NS), ("inkscape", INKSCAPE_NS), ("sodipodi", SODIPODI_NS),
                      ("clipasso", CLIPASSO_NS)):
    ET.register_namespace(_prefix, _uri)

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATH_RE = re.compile(
    rf"^\s*M\s*({_NUMBER})[\s,]*({_NUMBER})\s*C"
    + rf"[\s,]*({_NUMBER})" * 6
    + r"\s*$"
)


@dataclass(frozen=True)
class SketchLayer:
    """One abstraction level: its strokes ``[S, 4, 2]`` and stroke width, in source pixels.

    ``paths``, when given, is the level's path data verbatim (one string per stroke, any number of
    segments) and is written instead of ``points``. ``widths`` and ``opacities``, when given, are each
    stroke's own ``stroke-width`` (source pixels) and ``stroke-opacity``, in stroke order.
    """

    label: str
    points: np.ndarray
    stroke_width: float
    visible: bool = True
    paths: tuple[str, ...] | None = None
    widths: tuple[float, ...] | None = None
    opacities: tuple[float, ...] | None = None

    def style(self, index: int, color: str = "#000000") -> str:
        """The style of stroke ``index``: its own width and opacity where the layer has them."""
        width = self.stroke_width if self.widths is None else self.widths[index]
        return stroke_style(width, color, 1.0 if self.opacities is None else self.opacities[index])

    @property
    def strokes(self) -> int:
        """Number of strokes in this level."""
        return len(self.paths) if self.paths is not None else int(self.points.shape[0])

    def path_data(self) -> list[str]:
        """One SVG path data string per stroke."""
        return list(self.paths) if self.paths is not None else [path_data(stroke) for stroke in self.points]


def _fmt(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def path_data(stroke: Sequence[Sequence[float]] | np.ndarray) -> str:
    """SVG path data ``M x0 y0 C x1 y1 x2 y2 x3 y3`` of one cubic stroke given as 4 points ``[4, 2]``."""
    p = np.asarray(stroke, dtype=np.float64).reshape(4, 2)
    coords = [_fmt(v) for v in p.reshape(-1)]
    return f"M {coords[0]} {coords[1]} C {' '.join(coords[2:])}"


def parse_path_data(d: str) -> np.ndarray:
    """Control points ``[4, 2]`` of a single absolute cubic ``M … C …`` path (as :func:`path_data` writes)."""
    match = _PATH_RE.match(d)
    if match is None:
        raise SketchFileError(f"Path data {d[:60]!r} is not a single absolute cubic stroke ('M x y C x y x y x y').")
    return np.array([float(v) for v in match.groups()], dtype=np.float64).reshape(4, 2)


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
    layers: list[SketchLayer]
    precision: str | None = None


def sketch_document(width: int, height: int, layers: Sequence[SketchLayer], image: bytes | None = None,
                    image_type: str = "image/png", color: str = "#000000", precision: str | None = None) -> str:
    """An SVG document of the source image's size with one Inkscape layer per level.

    With ``image`` (file bytes of MIME type ``image_type``) the source image is embedded as a locked
    bottom layer under the strokes. ``precision`` (the networks' precision of the job) is recorded on the root.
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
    for layer in layers:
        group = _layer(root, layer.label, f"level-{layer.strokes}", visible=layer.visible)
        for index, d in enumerate(layer.path_data()):
            ET.SubElement(group, f"{{{SVG_NS}}}path", {
                "id": f"level-{layer.strokes}-stroke-{index + 1}", "d": d, "style": layer.style(index, color),
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
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise SketchFileError(f"The sketch is not valid SVG ({error}).") from None
    layers: list[SketchLayer] = []
    for group in root.iter(f"{{{SVG_NS}}}g"):
        paths = group.findall(f"{{{SVG_NS}}}path")
        if paths:
            label = group.get(f"{{{INKSCAPE_NS}}}label") or group.get("id") or f"{len(paths)} strokes"
            layers.append(_read_layer(label, paths, "display:none" not in (group.get("style") or "")))
    loose = root.findall(f"{{{SVG_NS}}}path")
    if loose:
        layers.append(_read_layer(f"{len(loose)} strokes", loose, True))
    if not layers:
        raise SketchFileError("The sketch SVG holds no stroke paths.")
    return SketchDocument(_length(root, "width"), _length(root, "height"), layers, root.get(f"{{{CLIPASSO_NS}}}precision"))


def _length(root: ET.Element, name: str) -> float:
    value = root.get(name, "").strip().removesuffix("px")
    try:
        length = float(value)
    except ValueError:
        raise SketchFileError(f"The sketch SVG needs a {name} in pixels (it has {value or 'none'!r}).") from None
    if length <= 0:
        raise SketchFileError(f"The sketch SVG's {name} must be positive.")
    return length


def _read_layer(label: str, paths: list[ET.Element], visible: bool) -> SketchLayer:
    """A layer of paths; per-stroke widths / opacities only where its strokes differ from the first / from 1."""
    points = np.stack([parse_path_data(path.get("d", "")) for path in paths])
    widths = tuple(_style_number(path, "stroke-width", "1", "stroke width") for path in paths)
    opacities = tuple(_style_number(path, "stroke-opacity", "1", "stroke opacity") for path in paths)
    return SketchLayer(label, points, widths[0], visible,
                       widths=None if len(set(widths)) == 1 else widths,
                       opacities=None if set(opacities) == {1.0} else opacities)


def _style_number(path: ET.Element, name: str, default: str, what: str) -> float:
    """A number of the path's style (or presentation attribute) ``name``, e.g. its ``stroke-width``."""
    style = {
        key.strip(): value for key, value in
        (item.split(":", 1) for item in (path.get("style") or "").split(";") if ":" in item)
    }
    value = style.get(name) or path.get(name) or default
    try:
        return float(value.strip().removesuffix("px"))
    except ValueError:
        raise SketchFileError(f"Unreadable {what} {value!r} in the sketch SVG.") from None
