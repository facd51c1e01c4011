"""Refine's geometry: a sketch layer's (or a drawing's) strokes → its image's pixels, and the result → a new layer.

A sketch layer is a sublayer ("16 strokes") of the layer Sketch inserted for an image, which records the
image's id and bitmap size (see sketch_layers.py). A drawing is any set of paths selected together with
the picture they were drawn over (by hand, under any transform). The strokes go to the image's pixels
through the inverse of the image's placement as it is now, so an image moved, rotated or scaled together
with its strokes still fits; the refined strokes come back through the same placement. Nothing is deleted:
the new layer goes right above the old sketch layer (or the layer holding the drawn paths), and the old
strokes are hidden. Strokes the server added are marked clipasso:added and name the layer
"<N> strokes (completed)".
"""

import math
import statistics
from dataclasses import dataclass
from typing import List, Optional, Set, Tuple

import inkex

from drawing_mask import encloses
from placement import composed_transform, pixel_to_document
from sketch_layers import _unique_id, clipasso_attribute

SODIPODI_INSENSITIVE = "{http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd}insensitive"
NOT_DRAWN = {"title", "desc", "metadata", "defs"}
DRAWING_KINDS = {"closed": ("a closed shape", "closed shapes"), "filled": ("a filled shape", "filled shapes"),
                 "text": ("a text", "texts"), "other": ("an object that is not a path", "objects that are not paths")}
"""What a drawing's selection may hold besides strokes, as one and as several are named."""


class RefineError(inkex.AbortExtension):
    """Something in the document that Refine cannot work with, in one sentence."""


@dataclass
class SketchStrokes:
    """A sketch layer's (or drawing's) strokes in its image's pixels, which are locked, and where they go back.

    The result goes in a new layer right after ``layer`` (the sketch layer, or the layer holding the drawn
    paths); ``originals`` (the sketch layer, or the drawn paths) are then hidden.
    """

    layer: inkex.BaseElement
    image: inkex.BaseElement
    pixels: Tuple[int, int]
    placement: inkex.Transform
    elements: List[inkex.BaseElement]
    paths: List[str]
    locked: List[int]
    stroke_width: float  # median pen width, in image pixels
    originals: List[inkex.BaseElement]


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
                 locked_too: Set[inkex.BaseElement], adding: bool = False) -> SketchStrokes:
    """A sketch layer's strokes in its image's pixels; locked: Inkscape's lock, or in (a group in) ``locked_too``.

    Every stroke may be locked only when ``adding`` strokes (the new ones then move alone)."""
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
    label = layer.get("inkscape:label") or layer.get_id()
    elements = _drawn(layer)
    for element in elements:
        _check_stroke(element, label)
    strokes = _in_pixels(elements, image, (width, height), f"in “{label}”", layer, locked_too, layer, [layer])
    if not strokes.paths:
        raise RefineError(f"The layer “{label}” holds no strokes to refine.")
    if len(strokes.locked) == len(strokes.paths) and not adding:
        raise RefineError(f"Every stroke of “{label}” is locked, so nothing would change; "
                          "unlock some or add strokes, and refine again.")
    return strokes


def drawing_strokes(image: inkex.BaseElement, pixels: Tuple[int, int], selected: List[inkex.BaseElement],
                    locked_too: Set[inkex.BaseElement], adding: bool = False) -> SketchStrokes:
    """The paths selected with ``image`` (a designer's own drawing over it) in its ``pixels``; anything else in
    the selection (filled shapes, text, closed shapes) is refused in one sentence."""
    elements = [found for element in selected
                for found in (_drawn(element) if isinstance(element, inkex.Group) else [element])]
    _check_drawing(elements)
    if not elements:
        raise RefineError(f"Only the picture “{image.get_id()}” is selected: select the strokes drawn over it "
                          "together with it, then run Refine again.")
    order = {node: number for number, node in enumerate(image.root.iter())}
    topmost = max(elements, key=lambda element: order[element])
    anchor = _nearest_layer(topmost)
    if anchor is None:  # drawn at the top level: the new layer goes right above the topmost path
        anchor = topmost
        while anchor.getparent() is not None and anchor.getparent().getparent() is not None:
            anchor = anchor.getparent()
    strokes = _in_pixels(elements, image, pixels, "in the selection", anchor.root, locked_too, anchor, elements)
    if len(strokes.locked) == len(strokes.paths) and not adding:
        raise RefineError("Every selected stroke is locked, so nothing would change; unlock some or add strokes, "
                          "and refine again.")
    return strokes


def _in_pixels(elements: List[inkex.BaseElement], image: inkex.BaseElement, pixels: Tuple[int, int], where: str,
               scope: inkex.BaseElement, locked_too: Set[inkex.BaseElement], anchor: inkex.BaseElement,
               originals: List[inkex.BaseElement]) -> SketchStrokes:
    """Stroke elements in the image's pixels, the result to go right after ``anchor``; locked: Inkscape's lock on
    an element or a group within ``scope`` holding it, or in ``locked_too``."""
    placement = pixel_to_document(image, pixels)
    to_pixels = -placement
    paths, locked, widths = [], [], []
    for element in elements:
        to_image = to_pixels @ composed_transform(element)
        path = _path_in_pixels(element, to_image, where)
        if _is_locked(element, scope, locked_too):
            locked.append(len(paths))
        paths.append(path_data(path))
        scale = abs(to_image.a * to_image.d - to_image.b * to_image.c) ** 0.5
        widths.append(element.to_dimensionless(str(element.specified_style().get("stroke-width") or "1")) * scale)
    return SketchStrokes(anchor, image, pixels, placement, list(elements), paths, locked,
                         statistics.median(widths) if widths else 1.0, originals)


def _check_drawing(elements: List[inkex.BaseElement]) -> None:
    """Refuse, in one sentence, selected elements that are not open unfilled paths: text, filled or closed shapes."""
    kinds: dict = {kind: [] for kind in DRAWING_KINDS}
    for element in elements:
        if isinstance(element, (inkex.TextElement, inkex.FlowRoot)):
            kinds["text"].append(element)
        elif encloses(element):
            kinds["closed"].append(element)
        elif not isinstance(element, inkex.PathElement):
            kinds["other"].append(element)
        elif _is_filled(element):
            kinds["filled"].append(element)
    found = [(kind, members) for kind, members in kinds.items() if members]
    if not found:
        return
    listed = " and ".join(
        f"{DRAWING_KINDS[kind][0] if len(members) == 1 else f'{len(members)} ' + DRAWING_KINDS[kind][1]} "
        f"({', '.join('“' + (member.get('inkscape:label') or member.get_id()) + '”' for member in members[:3])})"
        for kind, members in found)
    masks = (" (a closed shape is a mask in New sketch: select it with the picture there to sketch only inside it)"
             if kinds["closed"] else "")
    raise RefineError(f"Refine works on open, unfilled strokes, but the selection also holds {listed}; leave "
                      f"{'it' if sum(len(members) for _, members in found) == 1 else 'them'} out of the selection "
                      f"and run Refine again{masks}.")


def _path_in_pixels(element: inkex.BaseElement, to_image: inkex.Transform, where: str) -> inkex.Path:
    """The stroke's path mapped into the image's pixels, one stroke with every number finite; RefineError in words
    if not."""
    try:
        path = element.path.to_absolute().transform(to_image)
        finite = all(math.isfinite(value) for segment in path for value in segment.args)
        subpaths = len(path.to_superpath())  # arcs become curves here: a radius of 1e300 overflows
    except (TypeError, ValueError, ArithmeticError):
        finite = False
    if not finite:
        raise RefineError(f"“{element.get_id()}” {where} has numbers beyond what a drawing can hold (an arc's "
                          "radius or a transform); redraw it or reset its transform, then refine.")
    if subpaths != 1:
        raise RefineError(f"“{element.get_id()}” {where} holds several separate strokes; split it with "
                          "Path → Break Apart, then refine.")
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
    if _is_filled(element):
        raise RefineError(f"“{name}” in “{label}” is a filled shape, not a stroke; remove its fill or move it to "
                          "another layer, then refine.")


def _is_filled(element: inkex.BaseElement) -> bool:
    """Whether the element is painted inside (its fill, black when unset, is neither none nor transparent)."""
    return str(element.specified_style().get("fill", "black") or "black").strip().lower() not in ("none", "transparent")


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
    """Insert the server's refined level right above the old sketch layer (or the drawn paths' layer), and hide
    the old strokes; the new layer records the job and its quality preset (or "custom"), and how many strokes
    tidy left out. Added strokes take the first stroke's style and are marked clipasso:added."""
    layer = strokes.layer
    parent = layer.getparent()
    to_parent = -composed_transform(parent) @ strokes.placement
    scale = abs(to_parent.a * to_parent.d - to_parent.b * to_parent.c) ** 0.5
    taken = set(layer.root.xpath("//@id"))
    added = level.get("added") or 0
    refined = inkex.Layer.new(f"{len(level['paths'])} strokes ({'completed' if added else 'refined'})")
    refined.set("id", _unique_id(f"{layer.get_id()}-refined", taken))
    refined.set(clipasso_attribute("strokes"), str(len(level["paths"])))
    refined.set(clipasso_attribute("job"), job_id)
    refined.set(clipasso_attribute("preset"), preset)
    refined.set(clipasso_attribute("refined-from"), layer.get_id())
    if isinstance(level.get("loss"), (int, float)):
        refined.set(clipasso_attribute("loss"), f"{level['loss']:.6g}")
    if isinstance(level.get("left_out"), int):
        refined.set(clipasso_attribute("left-out"), str(level["left_out"]))
    first_added = len(level["paths"]) - added
    for number, d in enumerate(level["paths"]):
        original = strokes.elements[0 if number >= first_added else number]
        style = inkex.Style(original.get("style") or "")
        style["fill"] = "none"
        style["stroke-width"] = f"{level['stroke_width'] * scale:.6g}"
        path = inkex.PathElement.new(str(inkex.Path(d).transform(to_parent)), style=style)
        path.set("id", _unique_id(f"{refined.get('id')}-{number + 1}", taken))
        if number >= first_added:
            path.set(clipasso_attribute("added"), "true")
        elif number in strokes.locked:
            path.set(SODIPODI_INSENSITIVE, "true")
        refined.append(path)
    parent.insert(parent.index(layer) + 1, refined)
    for original in strokes.originals:
        hidden = inkex.Style(original.get("style") or "")
        hidden["display"] = "none"
        original.set("style", str(hidden))
    return refined
