"""The dialogs' words for a designer turned into the API's sketch params, and the server's time estimates into words.

Quality: *Automatic* takes the preset the server recommends for its device (``recommended_preset`` in
``GET /v1/health``; from a server that does not say, ``quick`` on a CPU and ``paper`` elsewhere); *Custom*
sends the Advanced tab's iterations and attempts instead of a preset. Levels: four ticks and other
counts. Pen width: a length in the document's display units at the image's placed size, converted to the
optimizer's canvas pixels (``canvas_size`` in health, 224 from a server that does not say); 0 is the
paper's pen. Prompt weight: gentle or strong. Standard library and inkex only.
"""

import math
from typing import List, Optional, Tuple

import inkex

from extension_settings import DEFAULT_URL
from placement import pixel_to_document

PRESETS = ("quick", "balanced", "paper")
PRESET_NAMES = {"quick": "Quick look", "balanced": "Balanced", "paper": "Best, as in the paper"}
QUALITIES = ("auto", *PRESETS, "custom")
LEVEL_TICKS = (4, 8, 16, 32)
CANVAS_SIZE = 224
"""The optimizer's square canvas in pixels, when the server's health does not give its ``canvas_size``."""
PAPER_PEN = 3.0
"""The paper's pen: 3 px wide on the 224-px canvas (diffvg's half-width 1.5)."""
MAX_PEN = 50.0
PROMPT_WEIGHTS = {"gentle": 0.1, "strong": 1.0}
"""Weights of the prompt's term: gentle is the weight of CLIPasso's own embedding term, strong ten times it."""


class DialogError(inkex.AbortExtension):
    """A dialog value that cannot be sent, in one sentence."""


def add_job_arguments(pars, iterations: int, attempts: int) -> None:
    """Declare the params New sketch and Refine share: Quality (with Custom's steps and attempts), the seed,
    the live view, how long to wait and the Server tab."""
    pars.add_argument("--quality", default="auto")
    pars.add_argument("--live_view", type=inkex.Boolean, default=True)
    pars.add_argument("--iterations", type=int, default=iterations)
    pars.add_argument("--seeds", type=int, default=attempts)
    pars.add_argument("--seed", type=int, default=0)
    pars.add_argument("--url", default=DEFAULT_URL)
    pars.add_argument("--token", default="")
    pars.add_argument("--wait", type=int, default=300)


def recommended_preset(health: dict) -> str:
    """The preset the server recommends for its device, or from its device when it does not say (CPU: quick)."""
    preset = health.get("recommended_preset")
    if preset in PRESETS:
        return str(preset)
    return "quick" if str(health.get("device", "")).lower().startswith("cpu") else "paper"


def quality_params(quality: str, health: dict, iterations: int, attempts: int) -> dict:
    """The params of a Quality choice: ``{"preset": …}``, or for Custom the iterations and attempts given."""
    if quality == "custom":
        return {"iterations": iterations, "seeds": attempts}
    return {"preset": recommended_preset(health) if quality == "auto" else _known(quality, PRESETS, "quality")}


def _known(value: str, allowed: Tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise DialogError(f"The {what} “{value}” is not one this extension knows ({', '.join(allowed)}); "
                          "choose one in the dialog again.")
    return value


def stroke_counts(ticked: List[int], others: str) -> List[int]:
    """The ticked levels and the other counts ("2, 64"), sorted and distinct; DialogError when none or not numbers."""
    try:
        extra = [int(part) for part in others.replace(",", " ").split()]
    except ValueError:
        extra = [-1]
    if any(count < 1 for count in extra):
        raise DialogError(f"The other stroke counts “{others.strip()}” are not whole numbers like 2, 64.")
    counts = sorted(set(ticked) | set(extra))
    if not counts:
        raise DialogError("No level is ticked: tick at least one of 4, 8, 16 or 32 strokes, or give other stroke "
                          "counts on the Advanced tab.")
    return counts


def canvas_size(health: dict) -> int:
    """The side of the optimizer's square canvas in pixels, as the server's health gives it (else 224)."""
    size = health.get("canvas_size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else CANVAS_SIZE


def pen_on_canvas(pen: float, image: inkex.BaseElement, pixels: Tuple[int, int], canvas: int) -> float:
    """A pen ``pen`` wide in the document's display units, drawn on the image as placed, in canvas pixels.

    The optimizer sees the picture with its longest side ``canvas`` pixels long; the pen is measured on
    the page, so it is divided by the picture's placed scale (document user units per picture pixel).
    """
    svg = image.root
    user_units = svg.viewport_to_unit(f"{pen}{svg.document_unit}")
    placement = pixel_to_document(image, pixels)
    scale = math.sqrt(abs(placement.a * placement.d - placement.b * placement.c))
    if scale <= 0:
        raise DialogError(f"The image “{image.get_id()}” has no size on the page, so no pen width can be measured on it.")
    return user_units / scale * canvas / max(pixels)


def pen_width_param(pen: float, image: inkex.BaseElement, pixels: Optional[Tuple[int, int]], canvas: int,
                    name: str) -> float:
    """The API's ``stroke_width`` for the dialog's pen width on an image (0: the paper's pen); DialogError out of range."""
    if pen <= 0:
        return PAPER_PEN
    if pixels is None:
        raise DialogError(f"The size of the picture of “{name}” cannot be read, so the pen width cannot be measured "
                          "on it; set the pen width to 0 for the paper's pen.")
    width = pen_on_canvas(pen, image, pixels, canvas)
    if not 0 < width <= MAX_PEN:
        largest = pen * MAX_PEN / width
        raise DialogError(f"A pen {pen:g} {image.root.document_unit} wide is too wide for “{name}” at its size on the "
                          f"page (at most {largest:.3g}); choose a thinner pen, or 0 for the paper's pen.")
    return round(width, 4)


def prompt_weight(strength: str) -> float:
    """The weight of the prompt's term for a strength the dialog offers (gentle, strong)."""
    return PROMPT_WEIGHTS[_known(strength, tuple(PROMPT_WEIGHTS), "prompt strength")]


def duration_text(seconds: float) -> str:
    """A duration as a designer reads it: "40 s", "3 min", "1 h 20 min"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def expected_time(health: dict, preset: Optional[str]) -> Optional[str]:
    """A sentence on how long a sketch of this preset takes on the server (its ``preset_seconds`` for a
    4-level job), or None when the server does not say."""
    times = health.get("preset_seconds")
    seconds = times.get(preset) if isinstance(times, dict) and preset else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return None
    return f"a four-level sketch at {PRESET_NAMES[preset]} quality takes about {duration_text(seconds)} on this server"
