"""Refine's geometry: a sketch layer's strokes → its image's pixels, and the refined strokes → a new sublayer.

A sketch layer is a sublayer ("16 strokes") of the layer Sketch inserted for an image, which records the
image's id and bitmap size (see sketch_layers.py). The strokes go to the image's pixels through the
inverse of the image's placement as it is now, so an image moved, rotated or scaled together with its
strokes still fits; the refined strokes come back through the same placement. Nothing is deleted: the
new sublayer goes right above the old one, which is hidden.
"""

import math
import statistics
from dataclasses import dataclass
from typing import List, Optional, Set, Tuple

import inkex

from placement import composed_transform, pixel_to_document
from sketch_layers import _unique_id, clipasso_attribute

SODIPODI_INSENSITIVE = "{http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd}insensitive"
NOT_DRAWN = {"title", "desc", "metadata", "defs"}


class RefineError(inkex.AbortExtension):
    """Something in the document that Refine cannot work with, in one sentence."""


@dataclass
class SketchStrokes:
    """A sketch layer's strokes in its image's pixels, which of them are locked, and where they go back."""

    layer: inkex.BaseElement
    image: inkex.BaseElement
    pixels: Tuple[int, int]
    placement: inkex.Transform
    elements: List[inkex.BaseElement]
    paths: List[str]
    locked: List[int]
    stroke_width: float  # median pen width, in image pixels


def is_layer(element: Optional[inkex.BaseElement]) -> bool:
    """Whether the element is an Inkscape layer (or sublayer)."""
    return element is not None and element.get("inkscape:groupmode") == "layer"


def sketch_layer_of(selection: List[inkex.BaseElement], current: Optional[inkex.BaseElement]) -> inkex.BaseElement:
    """The one layer holding the selected strokes (or the selected/current layer when no stroke is selected)."""
    layers = []
    for element in selection:
        layer = element if is_layer(element) else _nearest_layer(element)
        if layer is not None and layer not in layers:
            layers.append(layer)
    if not selection:
        if not is_layer(current) or _sketch_ancestor(current) is None:
            raise RefineError("Nothing is selected: select strokes of a sketch layer made by CLIPasso → New sketch, "
                              "then run Refine again.")
        layers = [current]
    if len(layers) != 1:
        raise RefineError("The selection spans several layers: select strokes of one sketch layer only.")
    return layers[0]


def _nearest_layer(element: inkex.BaseElement) -> Optional[inkex.BaseElement]:
    node = element.getparent()
    while node is not None and not is_layer(node):
        node = node.getparent()
    return node


def sketch_parent(layer: inkex.BaseElement) -> inkex.BaseElement:
    """The layer Sketch inserted for an image (it records clipasso:source), holding ``layer``."""
    node = _sketch_ancestor(layer)
    if node is None:
        label = layer.get("inkscape:label") or layer.get_id()
        hint = " (choose one of its stroke sublayers)" if layer.get(clipasso_attribute("source")) else ""
        raise RefineError(f"The layer “{label}” is not a level of a sketch made by CLIPasso → New sketch{hint}, so the "
                          "image its strokes belong to is unknown.")
    return node


def _sketch_ancestor(layer: inkex.BaseElement) -> Optional[inkex.BaseElement]:
    node = layer.getparent()
    while node is not None and node.get(clipasso_attribute("source")) is None:
        node = node.getparent()
    return node


def read_strokes(svg: inkex.SvgDocumentElement, layer: inkex.BaseElement,
                 locked_too: Set[inkex.BaseElement]) -> SketchStrokes:
    """A sketch layer's strokes in its image's pixels; locked: Inkscape's lock, or in (a group in) ``locked_too``."""
    parent = sketch_parent(layer)
    source = parent.get(clipasso_attribute("source"))
    image = svg.getElementById(source)
    if image is None:
        raise RefineError(f"The image this sketch was made for (“{source}”) is no longer in the document; "
                          "put it back or sketch again.")
    try:
        width, height = (int(v) for v in (parent.get(clipasso_attribute("pixels")) or "").split())
    except ValueError:
        raise RefineError("The sketch layer does not record its image's size (it was made by an older version of "
                          "the extension); sketch the image again, then refine.") from None
    placement = pixel_to_document(image, (width, height))
    to_pixels = -placement
    label = layer.get("inkscape:label") or layer.get_id()
    elements, paths, locked, widths = [], [], [], []
    for element in _drawn(layer):
        _check_stroke(element, label)
        to_image = to_pixels @ composed_transform(element)
        path = _in_pixels(element, to_image, label)
        if len(path.to_superpath()) != 1:
            raise RefineError(f"“{element.get_id()}” in “{label}” holds several separate strokes; split it with "
                              "Path → Break Apart, then refine.")
        if _is_locked(element, layer, locked_too):
            locked.append(len(paths))
        elements.append(element)
        paths.append(path_data(path))
        scale = abs(to_image.a * to_image.d - to_image.b * to_image.c) ** 0.5
        widths.append(element.to_dimensionless(str(element.specified_style().get("stroke-width") or "1")) * scale)
    if not paths:
        raise RefineError(f"The layer “{label}” holds no strokes to refine.")
    if len(locked) == len(paths):
        raise RefineError(f"Every stroke of “{label}” is locked, so nothing would change; "
                          "unlock some and refine again.")
    return SketchStrokes(layer, image, (width, height), placement, elements, paths, locked,
                         statistics.median(widths))


def _in_pixels(element: inkex.BaseElement, to_image: inkex.Transform, label: str) -> inkex.Path:
    """The stroke's path mapped into the image's pixels, every number finite; RefineError in words if not."""
    try:
        path = element.path.to_absolute().transform(to_image)
        finite = all(math.isfinite(value) for segment in path for value in segment.args)
        path.to_superpath()  # arcs become curves here: a radius of 1e300 overflows
    except (TypeError, ValueError, ArithmeticError):
        finite = False
    if not finite:
        raise RefineError(f"“{element.get_id()}” in “{label}” has numbers beyond what a drawing can hold (an arc's "
                          "radius or a transform); redraw it or reset its transform, then refine.")
    return path


def _drawn(group: inkex.BaseElement) -> List[inkex.BaseElement]:
    """The visible elements of a layer, descending into groups but not into sublayers."""
    found = []
    for child in group:
        if not isinstance(child.tag, str) or child.tag.rsplit("}", 1)[-1] in NOT_DRAWN:
            continue
        if child.style.get("display") == "none" or child.get("display") == "none":
            continue
        if isinstance(child, inkex.Group) and not is_layer(child):
            found.extend(_drawn(child))
        elif not is_layer(child):
            found.append(child)
    return found


def _check_stroke(element: inkex.BaseElement, label: str) -> None:
    name = element.get("inkscape:label") or element.get_id()
    if isinstance(element, (inkex.TextElement, inkex.FlowRoot)):
        raise RefineError(f"“{name}” in “{label}” is text, not a stroke; move it to another layer, then refine.")
    if not isinstance(element, inkex.PathElement):
        raise RefineError(f"“{name}” in “{label}” is not a path; convert it with Path → Object to Path, then refine.")
    fill = str(element.specified_style().get("fill", "black") or "black").strip().lower()
    if fill not in ("none", "transparent"):
        raise RefineError(f"“{name}” in “{label}” is a filled shape, not a stroke; remove its fill or move it to "
                          "another layer, then refine.")


def _is_locked(element: inkex.BaseElement, layer: inkex.BaseElement, locked_too: Set[inkex.BaseElement]) -> bool:
    """Locked in Inkscape, or in ``locked_too``: the element itself or a group it sits in within the layer."""
    node = element
    while node is not None:
        if node.get(SODIPODI_INSENSITIVE) == "true" or node in locked_too:
            return True
        if node is layer:
            return False
        node = node.getparent()
    return False


def _number(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def path_data(path: inkex.Path) -> str:
    """Absolute path data with three decimals (enough for pixels, and stable for the server's cache)."""
    return " ".join(" ".join([segment.letter, *(_number(v) for v in segment.args)]) for segment in path)


def add_refined_layer(strokes: SketchStrokes, level: dict, job_id: str, preset: str) -> inkex.Layer:
    """Insert the server's refined level right above the old sketch layer, and hide the old one; the new
    layer records the job and its quality preset (or "custom")."""
    layer = strokes.layer
    parent = layer.getparent()
    to_parent = -composed_transform(parent) @ strokes.placement
    scale = abs(to_parent.a * to_parent.d - to_parent.b * to_parent.c) ** 0.5
    taken = set(layer.root.xpath("//@id"))
    refined = inkex.Layer.new(f"{len(level['paths'])} strokes (refined)")
    refined.set("id", _unique_id(f"{layer.get_id()}-refined", taken))
    refined.set(clipasso_attribute("strokes"), str(len(level["paths"])))
    refined.set(clipasso_attribute("job"), job_id)
    refined.set(clipasso_attribute("preset"), preset)
    refined.set(clipasso_attribute("refined-from"), layer.get_id())
    if isinstance(level.get("loss"), (int, float)):
        refined.set(clipasso_attribute("loss"), f"{level['loss']:.6g}")
    for number, (d, original) in enumerate(zip(level["paths"], strokes.elements)):
        style = inkex.Style(original.get("style") or "")
        style["fill"] = "none"
        style["stroke-width"] = f"{level['stroke_width'] * scale:.6g}"
        path = inkex.PathElement.new(str(inkex.Path(d).transform(to_parent)), style=style)
        path.set("id", _unique_id(f"{refined.get('id')}-{number + 1}", taken))
        if number in strokes.locked:
            path.set(SODIPODI_INSENSITIVE, "true")
        refined.append(path)
    parent.insert(parent.index(layer) + 1, refined)
    hidden = inkex.Style(layer.get("style") or "")
    hidden["display"] = "none"
    layer.set("style", str(hidden))
    return refined
