"""The run as an animation: snapshots replayed, every level side by side, ending on the result.

Three forms: an SVG whose strokes move by SMIL ``<animate>`` (any browser, no script), an animated GIF
(Pillow) and an MP4 (through the optional ``imageio-ffmpeg``; install the ``mp4`` extra). Strokes are
drawn as the cubic Béziers they are, each with its own width and opacity when the run optimizes them;
panels are the source image's aspect, labelled by stroke count.
The replay lasts :data:`SECONDS_PER_SNAPSHOT` per snapshot (between :data:`MIN_PLAY_S` and
:data:`MAX_PLAY_S`), then holds the result for :data:`HOLD_S` before it starts again.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .errors import AnimationError
from .snapshot import SketchSnapshot
from .svg import SVG_NS, path_data, stroke_style

SECONDS_PER_SNAPSHOT = 0.1
MIN_PLAY_S = 2.0
MAX_PLAY_S = 12.0
HOLD_S = 2.0
GAP = 16
LABEL_HEIGHT = 28
RASTER_SIDE = 256
"""Longest side of one panel in the GIF and MP4, in pixels."""
CURVE_SAMPLES = 24
MP4_FPS = 20
FORMATS = (".svg", ".gif", ".mp4")
MP4_EXTRA_MESSAGE = ("Writing an MP4 animation needs the optional imageio-ffmpeg package; install it with "
                     "pip install 'clipasso-inkscape[mp4]' (or write .gif or .svg instead).")


@dataclass(frozen=True)
class Layout:
    """Where each level's panel sits: panels of ``width`` × ``height`` in one row, labels below."""

    width: float
    height: float
    panels: int

    @property
    def total_width(self) -> float:
        """Width of the whole picture."""
        return self.panels * self.width + (self.panels + 1) * GAP

    @property
    def total_height(self) -> float:
        """Height of the whole picture."""
        return self.height + 2 * GAP + LABEL_HEIGHT

    def left(self, panel: int) -> float:
        """x of the left edge of panel ``panel``."""
        return GAP + panel * (self.width + GAP)


def play_seconds(frames: int) -> float:
    """How long the replay of ``frames`` snapshots lasts, before the hold on the result."""
    return min(MAX_PLAY_S, max(MIN_PLAY_S, frames * SECONDS_PER_SNAPSHOT))


def check_format(path: Path) -> None:
    """Fail before a run if ``path`` is not a .svg/.gif/.mp4 animation this installation can write."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise AnimationError(f"The animation '{path}' must end in .gif, .svg or .mp4.")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise AnimationError(MP4_EXTRA_MESSAGE) from None


def animation_file(snapshots: Sequence[SketchSnapshot], suffix: str) -> bytes:
    """The animation in the format of file suffix ``suffix`` (``.svg``, ``.gif`` or ``.mp4``)."""
    suffix = suffix.lower()
    if suffix == ".svg":
        return animation_svg(snapshots).encode()
    if suffix == ".gif":
        return animation_gif(snapshots)
    if suffix == ".mp4":
        return animation_mp4(snapshots)
    raise AnimationError(f"Unknown animation format {suffix!r}; use .gif, .svg or .mp4.")


def animation_svg(snapshots: Sequence[SketchSnapshot], fit_window: bool = False) -> str:
    """An SVG replaying ``snapshots`` with SMIL: each stroke's path data animates from snapshot to snapshot.

    Sized in pixels (each panel at the source image's size), or with ``fit_window`` 100 % wide and without a
    height, so that a browser scales the whole animation into its window (or into the box of an ``<img>``).
    """
    first, last = _check(snapshots)
    layout = Layout(float(first.width), float(first.height), len(first.levels))
    play = play_seconds(len(snapshots))
    duration = play + HOLD_S
    steps = max(1, len(snapshots) - 1)
    key_times = ";".join(_num(play / duration * index / steps) for index in range(len(snapshots))) + ";1"
    size = {"width": "100%"} if fit_window else {"width": _num(layout.total_width), "height": _num(layout.total_height)}
    root = ET.Element(f"{{{SVG_NS}}}svg", {
        **size, "version": "1.1", "viewBox": f"0 0 {_num(layout.total_width)} {_num(layout.total_height)}",
    })
    ET.SubElement(root, f"{{{SVG_NS}}}title").text = f"CLIPasso sketch: {last.iteration} optimisation steps"
    ET.SubElement(root, f"{{{SVG_NS}}}rect", {"width": "100%", "height": "100%", "fill": "#ffffff"})
    for index, level in enumerate(first.levels):
        left = layout.left(index)
        group = ET.SubElement(root, f"{{{SVG_NS}}}g", {"id": f"level-{level.strokes}",
                                                       "transform": f"translate({_num(left)} {GAP})"})
        ET.SubElement(group, f"{{{SVG_NS}}}rect", {"width": _num(layout.width), "height": _num(layout.height),
                                                   "fill": "none", "stroke": "#cccccc", "stroke-width": "1"})
        final = last.levels[index]
        for stroke in range(level.points.shape[0]):
            style = stroke_style(final.width_of(stroke, last.stroke_width), opacity=final.opacity_of(stroke))
            frames = [path_data(snapshot.levels[index].points[stroke]) for snapshot in snapshots]
            path = ET.SubElement(group, f"{{{SVG_NS}}}path", {"d": frames[-1], "style": style})
            replays = {"d": frames}
            if final.widths is not None:
                replays["stroke-width"] = [_num(s.levels[index].width_of(stroke, s.stroke_width)) for s in snapshots]
            if final.opacities is not None:
                replays["stroke-opacity"] = [_num(s.levels[index].opacity_of(stroke)) for s in snapshots]
            for attribute, values in replays.items():
                ET.SubElement(path, f"{{{SVG_NS}}}animate", {
                    "attributeName": attribute, "values": ";".join([*values, values[-1]]), "keyTimes": key_times,
                    "dur": f"{_num(duration)}s", "repeatCount": "indefinite", "calcMode": "linear",
                })
        label = ET.SubElement(root, f"{{{SVG_NS}}}text", {
            "x": _num(left), "y": _num(GAP + layout.height + LABEL_HEIGHT * 0.7),
            "font-family": "sans-serif", "font-size": "14", "fill": "#333333"})
        label.text = f"{level.strokes} strokes"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def animation_frames(snapshots: Sequence[SketchSnapshot], side: int = RASTER_SIDE) -> list[Image.Image]:
    """One RGB picture per snapshot: every level's strokes side by side, each panel at most ``side`` pixels."""
    first, _ = _check(snapshots)
    scale = side / max(first.width, first.height)
    layout = Layout(max(1, round(first.width * scale)), max(1, round(first.height * scale)), len(first.levels))
    width, height = int(layout.total_width), int(layout.total_height)
    t = np.linspace(0.0, 1.0, CURVE_SAMPLES)[:, None]
    basis = np.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3])  # [4, samples, 1]
    frames = []
    for snapshot in snapshots:
        image = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(image)
        for index, level in enumerate(snapshot.levels):
            left = layout.left(index)
            draw.rectangle((left - 1, GAP - 1, left + layout.width, GAP + layout.height), outline=(204, 204, 204))
            draw.text((left, GAP + layout.height + 8), f"{level.strokes} strokes", fill=(51, 51, 51))
            for number, stroke in enumerate(level.points):
                curve = (basis * stroke[:, None, :]).sum(axis=0) * scale + (left, GAP)  # [samples, 2]
                pen = max(1, round(level.width_of(number, snapshot.stroke_width) * scale))
                ink = round(255 * (1 - level.opacity_of(number)))  # a faint stroke as grey on the white paper
                draw.line([tuple(p) for p in curve.tolist()], fill=(ink, ink, ink), width=pen, joint="curve")
        frames.append(image)
    return frames


def animation_gif(snapshots: Sequence[SketchSnapshot]) -> bytes:
    """An animated GIF replaying ``snapshots``, holding the last one, looping forever."""
    frames = animation_frames(snapshots)
    step_ms = max(20, round(1000 * play_seconds(len(frames)) / len(frames)))
    durations = [step_ms] * (len(frames) - 1) + [round(1000 * HOLD_S)]
    buffer = io.BytesIO()
    grey = [frame.convert("L") for frame in frames]
    grey[0].save(buffer, format="GIF", save_all=True, append_images=grey[1:], duration=durations, loop=0)
    return buffer.getvalue()


def animation_mp4(snapshots: Sequence[SketchSnapshot]) -> bytes:
    """An H.264 MP4 replaying ``snapshots`` (needs imageio-ffmpeg: the ``mp4`` extra)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise AnimationError(MP4_EXTRA_MESSAGE) from None
    import tempfile

    frames = animation_frames(snapshots)
    width, height = frames[0].size
    even = (width + width % 2, height + height % 2)  # H.264 in yuv420p needs even sides
    repeats = max(1, round(play_seconds(len(frames)) * MP4_FPS / len(frames)))
    with tempfile.TemporaryDirectory(prefix="clipasso-mp4-") as folder:
        target = Path(folder) / "animation.mp4"
        writer = imageio_ffmpeg.write_frames(str(target), even, fps=MP4_FPS, macro_block_size=1,
                                             pix_fmt_out="yuv420p", ffmpeg_log_level="error")
        writer.send(None)
        for index, frame in enumerate(frames):
            padded = Image.new("RGB", even, "white")
            padded.paste(frame)
            hold = round(HOLD_S * MP4_FPS) if index == len(frames) - 1 else repeats
            for _ in range(hold):
                writer.send(padded.tobytes())
        writer.close()
        return target.read_bytes()


def _check(snapshots: Sequence[SketchSnapshot]) -> tuple[SketchSnapshot, SketchSnapshot]:
    if not snapshots:
        raise AnimationError("There is nothing to animate yet: the run has no snapshot.")
    return snapshots[0], snapshots[-1]


def _num(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"
