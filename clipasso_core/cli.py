"""The ``clipasso`` command: ``sketch`` an image, ``refine`` a sketch layer, ``score`` a sketch.

Installed packages add further subcommands through the ``clipasso.commands`` entry point group (the
Inkscape extension adds ``install-extension``), so this module imports nothing from them; this package
adds ``download-models`` and ``doctor`` the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import FrameType
from typing import Any

from PIL import Image
from pydantic import ValidationError
from tqdm import tqdm

from .animation import animation_file, check_format
from .download_command import download_spec
from .errors import ClipassoError, SketchFileError
from .files import write_output_file
from .image import CanvasFrame, embeddable, read_image, to_canvas
from .loss import LossWeights
from .mask import mask_coverage
from .mask_svg import read_mask_svg
from .model_options import OPTION_NAMES, add_model_options, long_option, model_spec
from .models import encode_prompt, load_encoder, load_models, resolve_device
from .optimize import Progress
from .params import (CANVAS_SIZE, FIDELITY_PRESETS, PRESET_CHOICES, REFINE_ITERATIONS, describe_validation_errors,
                     make_params)
from .precision import PRECISION_CHOICES, Precision
from .preview import preview_sheet
from .refine_svg import NAME_A_LAYER, LayeredDrawing
from .score import choose_layer, render_layer, score_canvas
from .sketch import SketchResult, sketch_image
from .snapshot import SnapshotHistory
from .svg import read_sketch_document, sketch_document

PLUGIN_GROUP = "clipasso.commands"
"""Entry point group of functions ``add(commands)`` that add a subcommand whose ``run`` default handles it."""
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CLI_NAMES = {**OPTION_NAMES, NAME_A_LAYER: "--layer"}
"""How this command says the library parameters its errors name."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``clipasso``."""
    parser = argparse.ArgumentParser(prog="clipasso", description="Turn an image into a few expressive pen strokes (CLIPasso).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sketch = commands.add_parser("sketch", help="sketch an image at several abstraction levels into one SVG",
                                 description="Sketch IMAGE with CLIPasso; writes one Inkscape layer per level.")
    sketch.add_argument("image", type=Path, help="PNG, JPEG, WebP, GIF or TIFF image to sketch")
    sketch.add_argument("-o", "--output", type=Path, required=True, help="SVG file to write")
    sketch.add_argument("--preset", default="paper", choices=PRESET_CHOICES,
                        help="quick: 1 attempt × 440 steps, the loss network at 112 px (minutes on a CPU; 'draft' "
                             "is another name for it); "
                             "balanced: 3 attempts, the best one continues after step 250, to 1000 steps; "
                             "paper: 3 attempts × 2000 steps, as published (hours on a CPU) (default: paper)")
    sketch.add_argument("--strokes", help="stroke counts, one level each (default: 4,8,16,32)")
    sketch.add_argument("--seeds", type=int, help="sketches per level; the lowest loss wins (default: 3)")
    sketch.add_argument("--iterations", type=int, help="optimisation steps (default: 2000)")
    sketch.add_argument("--pick-seed-at", type=int, metavar="STEP",
                        help="at this eval step each level keeps only its best attempt (default: the preset's)")
    sketch.add_argument("--seed", type=int, help="base random seed (default: 0)")
    sketch.add_argument("--stroke-width", type=float, help="pen width on the 224-px canvas (default: 3.0)")
    sketch.add_argument("--embed-image", action="store_true", help="embed the source image as a locked bottom layer")
    sketch.add_argument("--preview", type=Path, metavar="PNG", help="also write a PNG of all levels side by side")
    sketch.add_argument("--mask", type=Path, metavar="SVG",
                        help="sketch only inside the filled shapes of this SVG, drawn in the image's pixel coordinates")
    sketch.add_argument("--animation", type=Path, metavar="OUT.gif|OUT.svg|OUT.mp4",
                        help="also write the run as an animation (MP4 needs the mp4 extra: imageio-ffmpeg)")
    add_tidy_option(sketch)
    add_loss_options(sketch)
    add_style_options(sketch)
    add_model_options(sketch)

    refine = commands.add_parser(
        "refine", help="optimise the strokes of one layer of a sketch again, keeping the locked ones",
        description="Refine a layer of SKETCH (an SVG written by clipasso sketch, maybe edited in Inkscape) against "
                    "IMAGE: its paths are the starting strokes, paths locked in Inkscape stay fixed. Writes the SVG "
                    "with the refined layer added above the old one, which is hidden.")
    refine.add_argument("image", type=Path, help="the image the sketch was made from (PNG, JPEG or WebP)")
    refine.add_argument("sketch", type=Path, help="the layered SVG holding the strokes")
    refine.add_argument("-o", "--output", type=Path, required=True, help="SVG file to write")
    which = refine.add_mutually_exclusive_group()
    which.add_argument("--layer", metavar="NAME", help="the layer's name (default: the topmost visible layer with paths)")
    which.add_argument("--level", type=int, metavar="N", help="the layer named 'N strokes'")
    refine.add_argument("--add", type=int, metavar="N",
                        help="add N new strokes where the picture is salient and the layer's strokes leave it "
                             "uncovered; they are optimized with the unlocked ones (default: 0)")
    add_tidy_option(refine)
    refine.add_argument("--iterations", type=int, help=f"optimisation steps (default: {REFINE_ITERATIONS})")
    refine.add_argument("--seed", type=int, help="random seed of the augmentations (default: 0)")
    add_loss_options(refine)
    add_style_options(refine)
    add_model_options(refine)

    score = commands.add_parser("score", help="the un-augmented CLIPasso loss of a sketch against its target",
                                description="Score SKETCH (a PNG/JPEG, or an SVG this tool wrote) against TARGET; an SVG "
                                             "is scored in the precision its job used unless --precision says otherwise.")
    score.add_argument("target", type=Path, help="the target image")
    score.add_argument("sketch", type=Path, help="the sketch: a raster image or an SVG written by clipasso")
    score.add_argument("--level", type=int, metavar="STROKES", help="which level of a multi-level SVG (default: the visible one)")
    score.add_argument("--json", action="store_true",
                       help="print one JSON object: conv_layer2, conv_layer3, fc (and any other term in use), total "
                            "and the precision scored in")
    add_loss_options(score)
    add_model_options(score)

    add_plugin_commands(commands)
    return parser


def add_plugin_commands(commands: argparse._SubParsersAction) -> None:
    """Let each ``clipasso.commands`` entry point add its subcommand; it sets the ``run`` default to its handler."""
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda entry: entry.name):
        entry.load()(commands)


def add_loss_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose what the loss compares: ``--fidelity`` and the per-term weights."""
    group = parser.add_argument_group("loss")
    group.add_argument("--fidelity", choices=list(FIDELITY_PRESETS),
                       help="precise: layer1+layer2 (the image's geometry); paper: layer2+layer3 (default); "
                            "loose: layer3+layer4 (looser, more semantic)")
    for stage in (1, 2, 3, 4):
        group.add_argument(f"--layer{stage}-weight", type=float, metavar="W",
                           help=f"weight of the CLIP ResNet layer{stage} feature MSE (overrides --fidelity)")
    group.add_argument("--fc-weight", type=float, metavar="W", help="weight of the CLIP embedding term (default: 0.1)")
    group.add_argument("--text", metavar="PROMPT", help='a prompt that steers the sketch, e.g. "a cat" (default: none)')
    group.add_argument("--text-weight", type=float, metavar="W", help="weight of the text term (default: 0.1)")
    group.add_argument("--loss-size", type=int, metavar="PX",
                       help="side in pixels at which the loss network sees sketch and picture; 112 is about a quarter "
                            "of the work per step (default: the network's own, 224; quick: 112)")


def add_tidy_option(parser: argparse.ArgumentParser) -> None:
    """``--tidy``: leave specks and near-duplicate strokes out of the result."""
    parser.add_argument("--tidy", action="store_true",
                        help="leave out strokes shorter than 2%% of the picture's diagonal (specks) and "
                             "near-duplicates of another stroke; each layer records how many it left out "
                             "(default: off)")


def add_style_options(parser: argparse.ArgumentParser) -> None:
    """Options that let the optimizer vary each stroke's width and ink (opacity) too."""
    group = parser.add_argument_group("stroke width and ink")
    group.add_argument("--optimize-width", action="store_true",
                       help="optimise each stroke's width too, within 0.5 to 3 × the pen width (default: off)")
    group.add_argument("--width-lr", type=float, metavar="LR", help="learning rate of the widths, in px (default: 0.1)")
    group.add_argument("--optimize-opacity", action="store_true",
                       help="optimise each stroke's ink (opacity 0 to 1) too; faint strokes can be deleted "
                            "(default: off)")
    group.add_argument("--opacity-lr", type=float, metavar="LR", help="learning rate of the opacities (default: 0.01)")


def style_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The stroke width / ink options given on the command line, as :class:`SketchParams` fields."""
    return {"optimize_width": args.optimize_width, "width_lr": args.width_lr,
            "optimize_opacity": args.optimize_opacity, "opacity_lr": args.opacity_lr}


def loss_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The loss options given on the command line, as :class:`SketchParams` fields."""
    return {"fidelity": args.fidelity, "layer1_weight": args.layer1_weight, "layer2_weight": args.layer2_weight,
            "layer3_weight": args.layer3_weight, "layer4_weight": args.layer4_weight, "fc_weight": args.fc_weight,
            "text": args.text, "text_weight": args.text_weight, "loss_size": args.loss_size}


NOT_OPTIONS = {"init_paths", "locked"}
""":class:`SketchParams` fields that ``clipasso refine`` reads from the sketch file, not from an option."""


def option_name(field: str) -> str:
    """The option that sets a :class:`SketchParams` field (``width_lr`` → ``--width-lr``, ``add_strokes`` → ``--add``)."""
    return field if field in NOT_OPTIONS else "--add" if field == "add_strokes" else long_option(field)


def said_as_options(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's errors about :class:`SketchParams` with each field an option sets named as that option."""
    return [{**error, "loc": (option_name(str(error["loc"][0])), *error["loc"][1:])} if error.get("loc")
            else dict(error) for error in errors]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``clipasso``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "sketch": run_sketch, "refine": run_refine, "score": run_score,
    }
    handler = handlers[args.command] if args.command in handlers else args.run
    try:
        return handler(args)
    except ValidationError as error:
        return fail(f"invalid option: {describe_validation_errors(said_as_options(error.errors()))}", EXIT_USAGE)
    except ClipassoError as error:
        return fail(str(error.worded(CLI_NAMES)))
    except KeyboardInterrupt:
        print("clipasso: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        return fail("ran out of memory; try fewer strokes, levels or seeds, or a GPU.")


def fail(message: str, status: int = EXIT_ERROR) -> int:
    """Print ``clipasso: error: message`` to stderr and return ``status``."""
    print(f"clipasso: error: {message}", file=sys.stderr)
    return status


def run_sketch(args: argparse.Namespace) -> int:
    """``clipasso sketch``: optimise, then write the SVG (and preview, animation) even when stopped with Ctrl-C."""
    mask = read_mask_file(args.mask) if args.mask is not None else None
    params = make_params(args.preset, strokes=args.strokes, seeds=args.seeds, iterations=args.iterations,
                         pick_seed_at=args.pick_seed_at, seed=args.seed, stroke_width=args.stroke_width, mask=mask,
                         tidy=args.tidy, **loss_overrides(args), **style_overrides(args))
    if args.animation is not None:
        check_format(args.animation)
    for path in filter(None, (args.output, args.preview, args.animation)):
        check_writable(path)
    image = read_image(args.image)
    if params.mask is not None:
        mask_coverage(params.mask, CanvasFrame(image.width, image.height))  # a mask outside the image fails now
    device = resolve_device(args.device)
    download_spec(model_spec(args))  # a first run shows the download
    print(f"Loading CLIP models on {device}…", file=sys.stderr)
    models = load_models(model_spec(args), device)
    cancel = threading.Event()
    history = SnapshotHistory(total=params.iterations)
    with progress_bar(params.iterations) as report, stop_on_interrupt(cancel):
        result = sketch_image(image, params, models, progress=report, cancel=cancel,
                              snapshot=None if args.animation is None else history.add)
    embedded, image_type = embeddable(args.image.read_bytes(), image) if args.embed_image else (None, "image/png")
    document = sketch_document(result.width, result.height, result.levels, embedded, image_type,
                               precision=models.loss.precision.value)
    write_output(args.output, document.encode())
    if args.preview is not None:
        write_output(args.preview, png_bytes(preview_sheet(image, result)))
    if args.animation is not None:
        write_output(args.animation, animation_file(history.snapshots(), args.animation.suffix))
    summary = ", ".join(f"{level.strokes} strokes: loss {loss_text(level.loss)} (seed {level.seed})"
                        + (f", {level.left_out} left out" if level.left_out else "") for level in result.levels)
    return report_written(result, params.iterations, args.output, summary, "sketches")


def run_refine(args: argparse.Namespace) -> int:
    """``clipasso refine``: optimise one layer's paths again and add the result above it, even when stopped."""
    text = read_sketch_text(args.sketch)
    image = read_image(args.image)
    drawing = LayeredDrawing(text, image.width, image.height)
    layer = drawing.find_layer(args.layer, args.level)
    strokes = drawing.strokes(layer)
    if len(strokes.locked) == len(strokes.paths) and not args.add:
        raise SketchFileError(f"Every path of the layer {strokes.label!r} is locked; unlock at least one to refine, "
                              "or add strokes with --add.")
    frame = CanvasFrame(image.width, image.height)
    params = make_params(init_paths=strokes.paths, locked=strokes.locked, add_strokes=args.add,
                         iterations=args.iterations, seed=args.seed, stroke_width=strokes.stroke_width / frame.scale,
                         tidy=args.tidy, **loss_overrides(args), **style_overrides(args))
    check_writable(args.output)
    device = resolve_device(args.device)
    download_spec(model_spec(args))  # a first run shows the download
    print(f"Loading CLIP models on {device}…", file=sys.stderr)
    models = load_models(model_spec(args), device)
    cancel = threading.Event()
    with progress_bar(params.iterations) as report, stop_on_interrupt(cancel):
        result = sketch_image(image, params, models, progress=report, cancel=cancel)
    (level,) = result.levels
    label = drawing.add_refined(layer, strokes, level)
    write_output(args.output, drawing.to_string().encode())
    locked = f", {len(strokes.locked)} locked" if strokes.locked else ""
    added = f", {level.added} added" if params.add_strokes else ""
    left_out = f", {level.left_out} left out by tidy" if level.left_out else ""
    summary = f"layer {label!r} above {strokes.label!r}{locked}{added}{left_out}, loss {loss_text(level.loss)}"
    return report_written(result, params.iterations, args.output, summary, "strokes")


def loss_text(loss: float | None) -> str:
    """An eval loss for the summary line (``None`` is a loss that was not finite)."""
    return "not finite" if loss is None else f"{loss:.4f}"


def report_written(result: SketchResult, iterations: int, output: Path, summary: str, what: str) -> int:
    """Say what was written (and after how many steps, when stopped early); the exit status to return."""
    if result.cancelled:
        print(f"Stopped after {result.iterations} of {iterations} steps; wrote the best {what} so far to "
              f"{output} ({summary}).", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"Wrote {output} ({summary}).", file=sys.stderr)
    return 0


def read_sketch_text(path: Path) -> str:
    """The text of a sketch SVG; SketchFileError in one sentence when it is a folder or cannot be read."""
    if path.is_dir():
        raise SketchFileError(f"Cannot read the sketch '{path}': it is a folder, not an SVG file.")
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise SketchFileError(f"Cannot read the sketch '{path}': {error.strerror or error}.") from None
    except UnicodeDecodeError:
        raise SketchFileError(f"Cannot read the sketch '{path}': it is not UTF-8 text, so not an SVG file.") from None


def run_score(args: argparse.Namespace) -> int:
    """``clipasso score``: print the weighted eval loss terms of a sketch against a target."""
    params = make_params(**loss_overrides(args))
    target = read_image(args.target)
    precision = args.precision
    if args.sketch.suffix.lower() == ".svg":
        document = read_sketch_document(read_sketch_text(args.sketch))
        sketch = render_layer(document, choose_layer(document, args.level))
        precision = precision or known_precision(document.precision)
    else:
        sketch, _ = to_canvas(read_image(args.sketch), CANVAS_SIZE)
    device = resolve_device(args.device)
    encoder = load_encoder(args.loss_model, args.pretrained, args.loss_weights, device, "ModelSpec.loss_weights",
                           precision or Precision.AUTO)
    prompt = encode_prompt(encoder, params.text, device) if params.text else None
    score = score_canvas(encoder, target, sketch, LossWeights.from_params(params), prompt)
    if args.json:
        print(json.dumps({**score.as_dict(), "precision": encoder.precision.value}))
    else:
        terms = "  ".join(f"{name.removeprefix('conv_')} {value:.6f}" for name, value in score.as_dict().items())
        print(f"{terms}  ({encoder.precision.value})")
    return 0


def known_precision(recorded: str | None) -> Precision | None:
    """The precision a sketch SVG records, or ``None`` when it records none (or one this version does not know)."""
    return Precision(recorded) if recorded in PRECISION_CHOICES else None


def read_mask_file(path: Path) -> list[str]:
    """The filled shapes of a mask SVG as path data; a missing or unreadable file is one sentence."""
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ClipassoError(f"The mask '{path}' is a folder; give an SVG file.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ClipassoError(f"Cannot read the mask '{path}': {getattr(error, 'strerror', None) or error}.") from None
    return read_mask_svg(text)


def check_writable(path: Path) -> None:
    """Fail before a long run if ``path`` (or, for a symbolic link, its target) cannot be written."""
    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():
        raise ClipassoError(f"Cannot write '{path}': the folder '{folder}' does not exist.")
    if path.is_dir():
        raise ClipassoError(f"Cannot write '{path}': it is a folder.")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ClipassoError(f"Cannot write '{path}': permission denied.")


def write_output(path: Path, data: bytes) -> None:
    """Write an output file (atomically, unless it is a FIFO or a device); a failure is one sentence naming the file."""
    try:
        write_output_file(path, data)
    except OSError as error:
        raise ClipassoError(f"Cannot write '{path}': {error.strerror or error}.") from None


def png_bytes(image: Image.Image) -> bytes:
    """Encode a PIL image as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def progress_bar(total: int) -> Iterator[Callable[[Progress], None]]:
    """A tqdm bar over optimisation steps with the best loss per level and an ETA; yields the progress callback."""

    with tqdm(total=total, unit="step", desc="Sketching", dynamic_ncols=True, file=sys.stderr) as bar:

        def report(progress: Progress) -> None:
            losses = "  ".join(f"{count}:{loss:.4f}" for count, loss in progress.best_loss.items())
            bar.set_postfix_str(f"best loss {losses}", refresh=False)
            bar.update(progress.iteration - bar.n)

        yield report


@contextlib.contextmanager
def stop_on_interrupt(cancel: threading.Event) -> Iterator[None]:
    """While active, the first Ctrl-C sets ``cancel`` (the run ends after this step); a second one aborts."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\nStopping after this step and writing the best sketches so far (Ctrl-C again to abort)…",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
