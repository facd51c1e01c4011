"""The bits of SVG and XML syntax every SVG reader and writer of the package shares, one of each.

SVG's number grammar (ASCII digits only: ``1``, ``-.5``, ``1.``, ``2e-3``; ``١٠`` is no number) and white space
(ASCII blanks only), lengths in user units
(a number, optionally ``px``), style declarations, the namespaces (with their usual prefixes) and
reading a document: its text parsed, comments and processing instructions kept, the root checked to be
``<svg>``, its nesting at most :data:`MAX_DEPTH` deep, and any failure one sentence as the caller's error type.

CLIPasso records what it knows about a sketch under one namespace, :data:`CLIPASSO_NS` (prefix
``clipasso``), the one the Inkscape extension writes (the extension cannot import this package, so it
spells the same URI itself). ``clipasso sketch`` once wrote ``clipasso:precision`` under
:data:`OLD_CLIPASSO_NS`; readers still accept it there.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from .errors import ClipassoError

__all__ = ["SVG_NS", "XLINK_NS", "INKSCAPE_NS", "SODIPODI_NS", "CLIPASSO_NS", "OLD_CLIPASSO_NS", "NUMBER",
           "NUMBER_RE", "PATH_DATA", "WSP", "MAX_DEPTH", "shown", "numbers", "user_length", "style_of", "read_svg", "clipasso_value"]

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
INKSCAPE_NS = "http://www.inkscape.org/namespaces/inkscape"
SODIPODI_NS = "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
CLIPASSO_NS = "https://clipasso.org/ns/inkscape-extension"
"""Namespace of what CLIPasso records in a document: the job behind a sketch, its precision, its provenance."""
OLD_CLIPASSO_NS = "https://github.com/clipasso-inkscape/ns"
"""Where ``clipasso sketch`` recorded ``clipasso:precision`` before it used :data:`CLIPASSO_NS` (read, never written)."""

for _prefix, _uri in (("", SVG_NS), ("xlink", XLINK_NS), ("inkscape", INKSCAPE_NS), ("sodipodi", SODIPODI_NS),
                      ("clipasso", CLIPASSO_NS), ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
                      ("cc", "http://creativecommons.org/ns#"), ("dc", "http://purl.org/dc/elements/1.1/")):
    ET.register_namespace(_prefix, _uri)

NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
"""SVG's number (a regular expression without groups): sign, digits with an optional point, optional exponent.

Each string matches it one way only (digits, then a point with its digits if any), so a pattern built of several
numbers fails in linear time; with the point merely optional between two runs of digits, a run could be split
anywhere, and a viewBox of four 80-digit numbers took 90 s to refuse."""
NUMBER_RE = re.compile(NUMBER)
PATH_DATA = re.compile(r"[ \t\n\r\f,]*[Mm][MmZzLlHhVvCcSsQqTtAa0-9.eE+\- \t\n\r\f,]*")
"""What SVG path data may hold (fullmatch; a screen, not a parse): a moveto first, then only command letters,
numbers and separators. Every path :func:`~.path_data.parse_path` reads passes it."""
WSP = "[ \t\n\r\f]"
"""SVG's white space (a character class): ASCII blanks only, as its grammar says."""
MAX_DEPTH = 200
"""How deep a document read here may nest its elements (Inkscape's own drawings rarely pass 20): every reader
walks the tree by recursion, and Python's stack holds about a thousand calls."""
_LENGTH = re.compile(rf"{WSP}*({NUMBER}){WSP}*(?:px{WSP}*)?")


def shown(text: str | None, limit: int = 60) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (with "…"): what a user wrote, never at length."""
    return repr(shortened(text or "", limit))


def shortened(text: str, limit: int) -> str:
    """``text``, or its first ``limit - 1`` characters and "…" when it is longer than ``limit``."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def numbers(text: str) -> list[float]:
    """Every number in ``text`` in order (a list such as ``points="0,0 10,5"``), as floats."""
    return [float(number) for number in NUMBER_RE.findall(text)]


def user_length(text: str | None) -> float | None:
    """A length in user units (``"2.5"`` or ``"2.5px"``, blanks around allowed), or ``None`` when it is not one."""
    match = _LENGTH.fullmatch(text or "")
    return None if match is None else float(match.group(1))


def style_of(element: ET.Element) -> dict[str, str]:
    """The declarations of ``element``'s ``style`` attribute, name → value, both stripped."""
    declarations = (item.split(":", 1) for item in (element.get("style") or "").split(";") if ":" in item)
    return {name.strip(): value.strip() for name, value in declarations}


def read_svg(text: str, what: str, error: type[ClipassoError]) -> ET.Element:
    """The root ``<svg>`` of ``text`` (comments and processing instructions kept); ``error`` naming ``what`` if not.

    The root is recognised by its name alone (in whichever namespace); readers look for elements in :data:`SVG_NS`.

    ``what`` names the document for the message, e.g. ``"sketch"`` → "The sketch is not valid SVG (…)."
    """
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True))
    try:
        root = ET.fromstring(text, parser=parser)
    except ET.ParseError as problem:
        raise error(f"The {what} is not valid SVG ({problem}).") from None
    if not isinstance(root.tag, str) or root.tag.rsplit("}", 1)[-1] != "svg":
        raise error(f"The {what} is not an SVG document (its root is not <svg>).")
    if _depth_beyond(root, MAX_DEPTH):
        raise error(f"The {what} nests its elements more than {MAX_DEPTH} deep; ungroup (Ctrl+Shift+G in Inkscape) "
                    "the groups inside groups.")
    return root


def _depth_beyond(root: ET.Element, limit: int) -> bool:
    """Whether any element lies more than ``limit`` levels below ``root`` (counted without recursion)."""
    level = [root]
    for _ in range(limit):
        level = [child for element in level for child in element]
        if not level:
            return False
    return True


def clipasso_value(element: ET.Element, name: str) -> str | None:
    """The ``clipasso:<name>`` attribute of ``element``, also where an earlier version recorded it."""
    value = element.get(f"{{{CLIPASSO_NS}}}{name}")
    return value if value is not None else element.get(f"{{{OLD_CLIPASSO_NS}}}{name}")
