"""Turning a sketch result into layers of pen strokes placed exactly over their <image>.

Each stroke gets its own width and ink when the result has them (``widths``, ``opacities``: the job
optimized them), else the level's ``stroke_width`` and full ink of the dialog's colour.

The parent layer is named after the image ("CLIPasso: mug", then "CLIPasso: mug (2)", … for later
sketches of it) and records the job: its id, server, params and preset (clipasso:*), and the settings
in words in its description (Object → Object Properties). It also records what Refine needs to find its
way back: the image's id (clipasso:source), the bitmap's size in pixels (clipasso:pixels, "W H") and the
pixel → document placement the strokes were inserted with (clipasso:placement). A layer may be made
before its strokes exist (a placeholder for a job still running, see pending_note.py) and filled later.
"""

import json
import math
from dataclasses import dataclass
from typing import Set

import inkex
from lxml import etree

from dialog_params import PRESET_NAMES
from image_source import image_name
from placement import pixel_to_document

NAMESPACE = "https://clipasso.org/ns/inkscape-extension"
etree.register_namespace("clipasso", NAMESPACE)


def clipasso_attribute(name: str) -> str:
    """The qualified name of a clipasso:<name> attribute."""
    return f"{{{NAMESPACE}}}{name}"


@dataclass(frozen=True)
class SketchStyle:
    """How inserted strokes look: colour, opacity, and which level stays visible (0 = most detailed)."""

    color: str
    opacity: float
    visible: int

    @classmethod
    def from_color(cls, color: inkex.Color, visible: int) -> "SketchStyle":
        """Build the style from the dialog's colour value."""
        return cls(str(color.to_rgb()), float(color.alpha), visible)

    def path_style(self, stroke_width: float, ink: float = 1.0) -> inkex.Style:
        """The style attribute of one stroke; ``ink`` (the stroke's own optimized opacity) scales the colour's."""
        return inkex.Style(
            [
                ("fill", "none"),
                ("stroke", self.color),
                ("stroke-opacity", f"{self.opacity * ink:.4g}"),
                ("stroke-width", f"{stroke_width:.6g}"),
                ("stroke-linecap", "round"),
                ("stroke-linejoin", "round"),
            ]
        )


@dataclass(frozen=True)
class SketchJob:
    """A job submitted for an image: its id, server, params, and the style to insert it with."""

    job_id: str
    server: str
    params: dict
    style: SketchStyle


def add_sketch_layers(
    svg: inkex.SvgDocumentElement, image: inkex.BaseElement, result: dict, job: SketchJob, server_version: str
) -> inkex.Layer:
    """Insert one layer for the image, one sublayer per level, directly above the image's layer."""
    parent = new_sketch_layer(svg, image, job, server_version)
    fill_sketch_layer(parent, image, result, job)
    return parent


def new_sketch_layer(svg: inkex.SvgDocumentElement, image: inkex.BaseElement, job: SketchJob,
                     server_version: str) -> inkex.Layer:
    """An empty layer for a sketch of the image, named after it and recording the job, directly above the image's layer."""
    parent = inkex.Layer.new(distinct_label(svg, f"CLIPasso: {image_name(image)}"))
    parent.set("id", _unique_id(f"clipasso-{image.get_id()}", set(svg.xpath("//@id"))))
    provenance = {
        "source": image.get_id(),
        "job": job.job_id,
        "server": job.server,
        "server-version": server_version,
        "params": json.dumps(job.params, sort_keys=True),
        "preset": job.params.get("preset", "custom"),
    }
    for key, value in provenance.items():
        parent.set(clipasso_attribute(key), value)
    description = etree.SubElement(parent, inkex.addNS("desc", "svg"))
    description.text = settings_text(job.params)
    top = _top_level_ancestor(image)
    # insert() rather than addnext(): with older lxml, addnext() takes over top's trailing whitespace.
    svg.insert(svg.index(top) + 1, parent)
    return parent


def fill_sketch_layer(parent: inkex.Layer, image: inkex.BaseElement, result: dict, job: SketchJob) -> None:
    """Add one sublayer per level of the result to a sketch layer, placed exactly over the image."""
    svg = parent.root
    transform = pixel_to_document(image, (result["width"], result["height"]))
    scale = math.sqrt(abs(transform.a * transform.d - transform.b * transform.c))
    taken = set(svg.xpath("//@id"))
    base_id = parent.get_id()
    parent.set(clipasso_attribute("pixels"), f"{result['width']} {result['height']}")
    parent.set(clipasso_attribute("placement"), str(transform))

    levels = sorted(result["levels"], key=lambda level: level["strokes"])
    counts = [level["strokes"] for level in levels]
    visible = job.style.visible if job.style.visible in counts else counts[-1]
    for level in levels:
        count = level["strokes"]
        sublayer = inkex.Layer.new(f"{count} strokes")
        sublayer.set("id", _unique_id(f"{base_id}-{count}", taken))
        sublayer.set(clipasso_attribute("strokes"), str(count))
        if isinstance(level.get("loss"), (int, float)):
            sublayer.set(clipasso_attribute("loss"), f"{level['loss']:.6g}")
        if count != visible:
            sublayer.set("style", "display:none")
        widths = level.get("widths") or [level["stroke_width"]] * len(level["paths"])
        inks = level.get("opacities") or [1.0] * len(level["paths"])
        for number, (d, width, ink) in enumerate(zip(level["paths"], widths, inks), start=1):
            path_style = job.style.path_style(width * scale, ink)
            path = inkex.PathElement.new(str(inkex.Path(d).transform(transform)), style=path_style)
            path.set("id", _unique_id(f"{base_id}-{count}-{number}", taken))
            sublayer.append(path)
        parent.append(sublayer)


def distinct_label(svg: inkex.SvgDocumentElement, wanted: str) -> str:
    """wanted, or "wanted (2)", "wanted (3)", … whichever no layer of the document is called."""
    taken = {str(label) for label in svg.xpath("//svg:g/@inkscape:label")}
    candidate, number = wanted, 1
    while candidate in taken:
        number += 1
        candidate = f"{wanted} ({number})"
    return candidate


FIDELITY_WORDS = {"precise": "closer to the picture", "loose": "freer"}


def settings_text(params: dict) -> str:
    """The job's settings in a designer's words, e.g. "Quality: Quick look. Levels: 4, 8, 16, 32 strokes. …"."""
    preset = params.get("preset")
    if preset in PRESET_NAMES:
        parts = [f"Quality: {PRESET_NAMES[preset]}"]
    else:
        attempts = params.get("seeds", 3)
        parts = [f"Quality: custom, {params.get('iterations', 2000)} steps, {attempts} "
                 f"attempt{'' if attempts == 1 else 's'} per level"]
    if params.get("strokes"):
        parts.append(f"Levels: {', '.join(str(count) for count in params['strokes'])} strokes")
    parts.append(f"Pen: {params.get('stroke_width', 3.0):g} px on the optimizer's canvas")
    parts.append(f"Seed: {params.get('seed', 0)}")
    if params.get("text"):
        parts.append(f"Prompt: “{params['text']}” (weight {params.get('text_weight', 0.1):g})")
    if params.get("fidelity") in FIDELITY_WORDS:
        parts.append(f"Fidelity: {FIDELITY_WORDS[params['fidelity']]}")
    if params.get("mask"):
        parts.append("Masked by the selected shapes or the image's clip")
    return ". ".join(parts) + "."


def _unique_id(wanted: str, taken: Set[str]) -> str:
    """wanted, or wanted-2, wanted-3, … whichever is free; the result is marked as taken."""
    candidate, suffix = wanted, 1
    while candidate in taken:
        suffix += 1
        candidate = f"{wanted}-{suffix}"
    taken.add(candidate)
    return candidate


def _top_level_ancestor(element: inkex.BaseElement) -> inkex.BaseElement:
    """The element's ancestor (or itself) that is a direct child of the root <svg>."""
    node = element
    while node.getparent() is not None and node.getparent().getparent() is not None:
        node = node.getparent()
    return node
