"""Turning a sketch result into layers of pen strokes placed exactly over their <image>.

Each stroke gets its own width and ink when the result has them (``widths``, ``opacities``: the job
optimized them), else the level's ``stroke_width`` and full ink of the dialog's colour.

The parent layer records what Refine needs to find its way back: the image's id (clipasso:source),
the bitmap's size in pixels (clipasso:pixels, "W H") and the pixel → document placement the strokes
were inserted with (clipasso:placement).
"""

import json
import math
from dataclasses import dataclass
from typing import Set

import inkex
from lxml import etree

from image_source import image_name
from placement import pixel_to_document

NAMESPACE = "https://clipasso.org/ns/inkscape-extension"
"""CLIPasso's one namespace (prefix clipasso): the core records a sketch's precision under it too (a test holds
the two spellings equal)."""
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
    transform = pixel_to_document(image, (result["width"], result["height"]))
    scale = math.sqrt(abs(transform.a * transform.d - transform.b * transform.c))
    taken = set(svg.xpath("//@id"))
    base_id = _unique_id(f"clipasso-{image.get_id()}", taken)
    parent = inkex.Layer.new(f"CLIPasso: {image_name(image)}")
    parent.set("id", base_id)
    provenance = {
        "source": image.get_id(),
        "job": job.job_id,
        "server": job.server,
        "server-version": server_version,
        "params": json.dumps(job.params, sort_keys=True),
        "pixels": f"{result['width']} {result['height']}",
        "placement": str(transform),
    }
    for key, value in provenance.items():
        parent.set(clipasso_attribute(key), value)

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

    top = _top_level_ancestor(image)
    # insert() rather than addnext(): with older lxml, addnext() takes over top's trailing whitespace.
    svg.insert(svg.index(top) + 1, parent)
    return parent


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
