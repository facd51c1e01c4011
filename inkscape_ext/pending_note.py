"""The note on an <image> of a sketch job that was still running when the extension stopped waiting."""

import json
from typing import Callable, List, Optional, TypeVar

import inkex

from sketch_layers import NAMESPACE, SketchJob, SketchStyle, clipasso_attribute

Number = TypeVar("Number", int, float)
NOTE_ATTRIBUTES = ("job", "server", "params", "stroke", "stroke-opacity", "visible")


def write_note(image: inkex.BaseElement, job: SketchJob) -> None:
    """Record the pending job on the image as clipasso:* attributes."""
    values = {
        "job": job.job_id,
        "server": job.server,
        "params": json.dumps(job.params, sort_keys=True),
        "stroke": job.style.color,
        "stroke-opacity": f"{job.style.opacity:.4g}",
        "visible": str(job.style.visible),
    }
    for name in NOTE_ATTRIBUTES:
        image.set(clipasso_attribute(name), values[name])


def read_note(image: inkex.BaseElement) -> Optional[SketchJob]:
    """The pending job noted on the image, or None when it has no note; damaged extras get defaults."""
    job_id = image.get(clipasso_attribute("job"))
    if not job_id:
        return None
    try:
        params = json.loads(image.get(clipasso_attribute("params")) or "{}")
    except ValueError:
        params = {}
    style = SketchStyle(
        image.get(clipasso_attribute("stroke")) or "#000000",
        _number(image, "stroke-opacity", float, 1.0),
        _number(image, "visible", int, 0),
    )
    return SketchJob(job_id, image.get(clipasso_attribute("server")) or "", params, style)


def clear_note(image: inkex.BaseElement) -> None:
    """Remove the pending-job note from the image."""
    for name in NOTE_ATTRIBUTES:
        image.attrib.pop(clipasso_attribute(name), None)


def noted_images(svg: inkex.SvgDocumentElement) -> List[inkex.BaseElement]:
    """Every <image> in the document that carries a pending-job note."""
    namespaces = {"svg": inkex.NSS["svg"], "clipasso": NAMESPACE}
    return list(svg.xpath("//svg:image[@clipasso:job]", namespaces=namespaces))


def _number(image: inkex.BaseElement, name: str, kind: Callable[[str], Number], default: Number) -> Number:
    try:
        return kind(image.get(clipasso_attribute(name)))
    except (TypeError, ValueError):
        return default
