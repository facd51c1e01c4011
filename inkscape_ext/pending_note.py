"""Sketch jobs still running when the extension stopped waiting: a placeholder where their strokes will go.

For such a job Sketch inserts the image's sketch layer (see sketch_layers.py) holding one visible, empty
sublayer, the placeholder, named "<image>: sketching… (Extensions → CLIPasso → Update waiting sketches)".
The placeholder carries the note: the job's id and server, its params and the style to insert it with
(clipasso:* attributes). Update waiting sketches fills the sketch layer and removes the placeholder.
Documents from earlier versions carry the note on the <image> itself; it is read the same way.
"""

import json
from typing import Callable, List, Optional, TypeVar

import inkex

from image_source import image_name
from sketch_layers import NAMESPACE, SketchJob, SketchStyle, _unique_id, clipasso_attribute, new_sketch_layer

Number = TypeVar("Number", int, float)
NOTE_ATTRIBUTES = ("job", "server", "params", "stroke", "stroke-opacity", "visible")
PLACEHOLDER = clipasso_attribute("placeholder")
UPDATE_MENU = "Extensions → CLIPasso → Update waiting sketches"


def add_placeholder(svg: inkex.SvgDocumentElement, image: inkex.BaseElement, job: SketchJob,
                    server_version: str) -> inkex.Layer:
    """Insert the image's sketch layer with a placeholder sublayer noting the job; return the placeholder."""
    parent = new_sketch_layer(svg, image, job, server_version)
    placeholder = inkex.Layer.new(f"{image_name(image)}: sketching… ({UPDATE_MENU})")
    placeholder.set("id", _unique_id(f"{parent.get_id()}-sketching", set(svg.xpath("//@id"))))
    placeholder.set(PLACEHOLDER, "true")
    write_note(placeholder, job)
    parent.append(placeholder)
    return placeholder


def write_note(element: inkex.BaseElement, job: SketchJob) -> None:
    """Record the pending job on the element as clipasso:* attributes."""
    values = {
        "job": job.job_id,
        "server": job.server,
        "params": json.dumps(job.params, sort_keys=True),
        "stroke": job.style.color,
        "stroke-opacity": f"{job.style.opacity:.4g}",
        "visible": str(job.style.visible),
    }
    for name in NOTE_ATTRIBUTES:
        element.set(clipasso_attribute(name), values[name])


def read_note(element: inkex.BaseElement) -> Optional[SketchJob]:
    """The pending job noted on a placeholder or an image, or None when it has none; damaged extras get defaults."""
    job_id = element.get(clipasso_attribute("job"))
    if not job_id or (element.TAG != "image" and element.get(PLACEHOLDER) != "true"):
        return None
    try:
        params = json.loads(element.get(clipasso_attribute("params")) or "{}")
    except ValueError:
        params = {}
    style = SketchStyle(
        element.get(clipasso_attribute("stroke")) or "#000000",
        _number(element, "stroke-opacity", float, 1.0),
        _number(element, "visible", int, 0),
    )
    return SketchJob(job_id, element.get(clipasso_attribute("server")) or "", params if isinstance(params, dict) else {},
                     style)


def clear_note(element: inkex.BaseElement) -> None:
    """Remove a pending-job note: a placeholder goes (with its sketch layer when that holds nothing else); an
    image's note attributes go."""
    if element.get(PLACEHOLDER) != "true":
        for name in NOTE_ATTRIBUTES:
            element.attrib.pop(clipasso_attribute(name), None)
        return
    parent = element.getparent()
    parent.remove(element)
    if parent.get(clipasso_attribute("source")) and not any(isinstance(child, inkex.ShapeElement) for child in parent):
        parent.getparent().remove(parent)


def noted_elements(svg: inkex.SvgDocumentElement) -> List[inkex.BaseElement]:
    """Every placeholder in the document, and every <image> noted by an earlier version, in document order."""
    namespaces = {"svg": inkex.NSS["svg"], "clipasso": NAMESPACE}
    return list(svg.xpath("//svg:image[@clipasso:job] | //svg:g[@clipasso:placeholder='true'][@clipasso:job]",
                          namespaces=namespaces))


def noted_image(svg: inkex.SvgDocumentElement, element: inkex.BaseElement) -> Optional[inkex.BaseElement]:
    """The image a note is for: the noted image itself, or the source image of a placeholder's sketch layer."""
    if element.TAG == "image":
        return element
    source = sketch_layer_of(element).get(clipasso_attribute("source"))
    found = svg.getElementById(source) if source else None
    return found if found is not None and found.TAG == "image" else None


def sketch_layer_of(element: inkex.BaseElement) -> Optional[inkex.BaseElement]:
    """The sketch layer a placeholder waits in, or None for a note on an image."""
    return element.getparent() if element.get(PLACEHOLDER) == "true" else None


def _number(element: inkex.BaseElement, name: str, kind: Callable[[str], Number], default: Number) -> Number:
    try:
        return kind(element.get(clipasso_attribute(name)))
    except (TypeError, ValueError):
        return default
