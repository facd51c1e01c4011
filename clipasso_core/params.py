"""Sketch parameters: one validated value object with the published CLIPasso defaults.

The same object backs the ``clipasso sketch`` options, the server's ``params`` schema and the
defaults of the Inkscape dialog. Field names are the CLI's long options with underscores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, Strict, ValidationInfo,
                      WithJsonSchema, field_validator, model_validator)

from .joined_paths import read_paths
from .path_data import PathDataError, parse_path
from .prompt import prompt_problem
from .svg_xml import shortened

CANVAS_SIZE = 224
"""Side of the square canvas the optimizer draws on, in pixels (the paper's ``image_scale``)."""

MAX_STROKES = 256
MAX_LEVELS = 8
MAX_SEEDS = 16
MAX_ITERATIONS = 100_000
MAX_PATH_CHARS = 100_000
MAX_INIT_SEGMENTS = 4096
REFINE_ITERATIONS = 300
"""Steps of a job that starts from ``init_paths`` when the caller names none (a refine needs far fewer than 2000)."""
MIN_LOSS_SIZE, MAX_LOSS_SIZE = 64, 448
"""Bounds of ``loss_size``: a CLIP ResNet's last stage still has a 2 × 2 grid at 64 px."""
MAX_LOSS_WEIGHT = 1000.0
MIN_LOSS_WEIGHT = 1e-6
"""A loss weight below this moves no stroke (the terms are of order 0.01–1): it counts as zero."""
MAX_SEED = 2**31 - 1
MAX_TEXT_LENGTH = 1000
WIDTH_RANGE = (0.5, 3.0)
"""An optimized stroke width stays within these multiples of ``stroke_width`` (1.5 to 9 px at the paper's 3 px)."""

WholeNumber = Annotated[int, Strict()]
"""An integer given as an integer: ``true``, ``"3"`` and ``3.0`` are refused (bounds are set per field)."""

FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite number (an integer is accepted): NaN, infinities and numeric strings are refused."""

Switch = Annotated[bool, Strict()]
"""A yes/no given as a JSON boolean: ``1`` and ``"true"`` are refused."""

LossWeight = Annotated[FiniteFloat, Field(ge=0.0, le=MAX_LOSS_WEIGHT)]
"""The weight of one loss term: finite, in [0, MAX_LOSS_WEIGHT]."""


_DIGITS = re.compile(r"[0-9]+")


def parse_stroke_list(value: Any) -> Any:
    """Turn ``"4,8,16"`` (or ``"4 8 16"``) into ``[4, 8, 16]``; other values pass through unchanged."""
    if not isinstance(value, str):
        return value
    parts = [part for part in value.replace(",", " ").split() if part]
    if not parts:
        raise ValueError("give at least one stroke count, e.g. 4,8,16,32")
    if not all(_DIGITS.fullmatch(part) for part in parts):  # int() would also read "١٢" and "1_000"
        raise ValueError(f"stroke counts must be whole numbers separated by commas, got {shortened(value, 40)!r}")
    return [int(part) for part in parts]


StrokeList = Annotated[list[WholeNumber], BeforeValidator(parse_stroke_list)]

MAX_MASK_SHAPES = 1000
MAX_MASK_NODES = 50_000
"""Path segments (nodes) a mask may have in all its shapes together: a traced outline of 20,000 nodes fits twice.
Reading and filling a mask costs time in proportion to its nodes (and characters), about 0.1 s per 10,000 nodes."""
MAX_MASK_CHARS = 4_000_000
"""Characters of path data a mask may have in all its shapes together (50,000 cubic nodes as Inkscape writes them)."""
MASK_EXAMPLE = "'M 10 10 H 90 V 90 H 10 Z'"


def check_mask(value: Any) -> str | list[str] | None:
    """A mask as given (path data, or a list of them) when it is one SVG can fill; ``ValueError`` in words if not.

    One validator for the whole field, so every refusal reads as a sentence about the mask (never pydantic's
    names for the branches of ``str | list[str]``). Work is linear in the mask's size and bounded by
    :data:`MAX_MASK_CHARS` and :data:`MAX_MASK_NODES`.
    """
    if value is None:
        return None
    if isinstance(value, str):
        shapes = [value]
    elif isinstance(value, list) and all(isinstance(shape, str) for shape in value):
        shapes = value
    else:
        raise ValueError(f"give SVG path data as a string (e.g. {MASK_EXAMPLE}) or a list of such strings, "
                         f"not {_json_kind(value)}")
    if not shapes:
        raise ValueError(f"give SVG path data of at least one closed shape (e.g. {MASK_EXAMPLE}), or leave mask out")
    if len(shapes) > MAX_MASK_SHAPES:
        raise ValueError(f"at most {MAX_MASK_SHAPES} shapes, got {len(shapes)}; join them into fewer paths")
    characters = sum(len(shape) for shape in shapes)
    if characters > MAX_MASK_CHARS:
        raise ValueError(f"at most {MAX_MASK_CHARS:,} characters of path data, got {characters:,}; simplify the "
                         "outline (Path → Simplify in Inkscape)")
    nodes = 0
    for number, shape in enumerate(shapes):
        which = "" if isinstance(value, str) else f"shape {number}: "
        if not shape.strip():
            raise ValueError(f"{which}give SVG path data of a closed shape (e.g. {MASK_EXAMPLE}), or leave mask out")
        try:
            nodes += sum(len(subpath.segments) for subpath in parse_path(shape))
        except PathDataError as error:
            raise ValueError(f"{which}{error}") from None
        if nodes > MAX_MASK_NODES:
            raise ValueError(f"at most {MAX_MASK_NODES:,} nodes in all, got {nodes:,} by {which or 'the end'}"
                             .rstrip(": ") + "; simplify the outline (Path → Simplify in Inkscape)")
    return value


def _json_kind(value: Any) -> str:
    """What a JSON value is, in words: ``a number``, ``an object``, ``a list holding a number``…"""
    if isinstance(value, list):
        odd = next((item for item in value if not isinstance(item, str)), None)
        return f"a list holding {_json_kind(odd)}"
    kinds = {bool: "true or false", int: "a number", float: "a number", dict: "an object"}
    return next((word for kind, word in kinds.items() if isinstance(value, kind)), "that")


Mask = Annotated[str | list[str] | None, PlainValidator(check_mask), WithJsonSchema({
    "anyOf": [{"type": "string", "maxLength": MAX_MASK_CHARS},
              {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_MASK_SHAPES},
              {"type": "null"}]})]
"""The ``mask`` field: checked by :func:`check_mask` alone, documented as the string-or-list it is."""

LAYER_WEIGHTS = ("layer1_weight", "layer2_weight", "layer3_weight", "layer4_weight")
FIDELITY_PRESETS: dict[str, dict[str, float]] = {
    "precise": {"layer1_weight": 1.0, "layer2_weight": 1.0, "layer3_weight": 0.0, "layer4_weight": 0.0},
    "paper": {"layer1_weight": 0.0, "layer2_weight": 1.0, "layer3_weight": 1.0, "layer4_weight": 0.0},
    "loose": {"layer1_weight": 0.0, "layer2_weight": 0.0, "layer3_weight": 1.0, "layer4_weight": 1.0},
}
"""ResNet stage weights per fidelity (CLIPascene): shallow stages keep the geometry, deep ones the meaning."""

Fidelity = Literal["precise", "paper", "loose"]

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"seeds": 1, "iterations": 440, "lr": 1.5, "loss_size": 112},
    "balanced": {"seeds": 3, "iterations": 1000, "pick_seed_at": 250},
    "paper": {"seeds": 3, "iterations": 2000},
}
"""Quality presets by what a designer gets: ``quick`` a first look in minutes on a CPU (one attempt, 440 steps at
learning rate 1.5 with the loss network at 112 px: about 0.4 of the old draft's work), ``balanced`` three
attempts of which the best one continues after step 250, ``paper`` the published run (3 × 2000 steps).

``quick`` must keep its quality guard: from random strokes, at least the share of ink on the object that the old
draft (1 × 300 steps at 224 px, 4 pairs) reaches (``testkit/ink_guard.py``, ``tests/test_quality_guard.py``,
``bench/presets.py --guard``)."""

Preset = Literal["quick", "balanced", "paper"]

PRESET_ALIASES: dict[str, str] = {"draft": "quick"}
"""Other names of presets (``draft`` was ``quick``'s name before there were three)."""

PRESET_CHOICES = (*PRESETS, *PRESET_ALIASES)
"""Every name a preset may be given by (for the CLI's choices)."""


class SketchParams(BaseModel):
    """Everything that shapes one sketch job; defaults are the paper's run (CLIPasso, SIGGRAPH 2022)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strokes: StrokeList = Field(
        default=[4, 8, 16, 32],
        description="Stroke counts, one abstraction level each.",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": MAX_STROKES},
                           "minItems": 1, "maxItems": MAX_LEVELS, "uniqueItems": True},
    )
    preset: Preset | None = Field(
        default=None,
        description="A quality preset that fills what is not given: quick (1 attempt × 440 steps with the loss "
                    "network at 112 px), balanced "
                    "(3 attempts until step 250, then the best one to 1000 steps) or paper (3 attempts × 2000 "
                    "steps, as published). 'draft' is another name for quick. Absent: the paper's values.",
    )
    seeds: WholeNumber = Field(default=3, ge=1, le=MAX_SEEDS, description="Sketches per level; the lowest eval loss wins.")
    iterations: WholeNumber = Field(default=2000, ge=1, le=MAX_ITERATIONS, description="Optimisation steps per sketch.")
    pick_seed_at: WholeNumber | None = Field(
        default=None, ge=1, le=MAX_ITERATIONS,
        description="The eval step (a multiple of eval_interval) at which each level keeps only its best attempt "
                    "(lowest eval loss) and drops the others; the kept one continues exactly as without the pick. "
                    "No effect at or after the last step, or with one seed. Absent: every attempt runs to the end.",
    )
    seed: WholeNumber = Field(default=0, ge=0, le=MAX_SEED, description="Base random seed; seed k of a level uses seed + 1000·k.")
    stroke_width: FiniteFloat = Field(
        default=3.0, gt=0.0, le=50.0, description="SVG stroke width on the 224-px canvas (the paper's diffvg 1.5 half-width)."
    )
    lr: FiniteFloat = Field(default=1.0, gt=0.0, le=100.0, description="Adam learning rate on the control points, in pixels.")
    loss_size: WholeNumber | None = Field(
        default=None, ge=MIN_LOSS_SIZE, le=MAX_LOSS_SIZE,
        description="Side in pixels at which the loss network sees the sketch and the picture (each block of "
                    "canvas pixels averaged): 112 is about a quarter of the work per step. Absent: the network's "
                    "own input size (224 for RN101, as in the paper).",
    )
    augmentations: WholeNumber = Field(default=4, ge=0, le=16, description="Augmented (sketch, image) pairs per step, besides the clean one.")
    eval_interval: WholeNumber = Field(default=10, ge=1, le=10_000, description="Steps between eval losses (best-iteration tracking).")
    softmax_temperature: FiniteFloat = Field(default=0.3, gt=0.0, le=100.0, description="Temperature of the saliency softmax.")
    attention_init: Switch = Field(default=True, description="Place first points on CLIP attention × edges (else uniformly).")
    fidelity: Fidelity = Field(
        default="paper",
        description="Which ResNet stages the loss compares: precise = layer1+layer2 (the image's geometry), "
                    "paper = layer2+layer3, loose = layer3+layer4 (looser, more semantic). "
                    "Explicit layer weights override it.",
    )
    layer1_weight: LossWeight = Field(default=0.0, description="Weight of the RN layer1 feature MSE.")
    layer2_weight: LossWeight = Field(default=1.0, description="Weight of the RN layer2 feature MSE.")
    layer3_weight: LossWeight = Field(default=1.0, description="Weight of the RN layer3 feature MSE.")
    layer4_weight: LossWeight = Field(default=0.0, description="Weight of the RN layer4 feature MSE.")
    fc_weight: LossWeight = Field(default=0.1, description="Weight of 1 − cos of the CLIP image embeddings.")
    text: str | None = Field(
        default=None, max_length=MAX_TEXT_LENGTH,
        description="A prompt that steers the sketch (e.g. 'a cat'): adds text_weight × (1 − cos) between the "
                    "sketch's CLIP embedding and the prompt's. Off when absent.",
    )
    text_weight: LossWeight = Field(default=0.1, description="Weight of the text term (used only with text).")
    mask: Mask = Field(
        default=None,
        description="SVG path data in the image's pixels (nonzero fill), or a list of them (their union): only "
                    "what lies inside is sketched; outside it the image counts as white and no stroke starts "
                    f"there. At most {MAX_MASK_NODES:,} nodes and {MAX_MASK_CHARS:,} characters in all. Off when "
                    "absent.",
    )
    optimize_width: Switch = Field(
        default=False,
        description=f"Optimise each stroke's width too, kept within {WIDTH_RANGE[0]:g} to {WIDTH_RANGE[1]:g} × "
                    "stroke_width. Off by default (every stroke has stroke_width).",
    )
    width_lr: FiniteFloat = Field(default=0.1, gt=0.0, le=10.0,
                                  description="Adam learning rate of the stroke widths, in canvas pixels (with optimize_width).")
    optimize_opacity: Switch = Field(
        default=False,
        description="Optimise each stroke's ink (opacity, in [0, 1], starting opaque) too, as CLIPasso's "
                    "--force_sparse. Off by default (every stroke is opaque).",
    )
    opacity_lr: FiniteFloat = Field(default=0.01, gt=0.0, le=1.0,
                                    description="Adam learning rate of the stroke opacities (with optimize_opacity).")
    init_paths: list[Annotated[str, Strict(), Field(max_length=MAX_PATH_CHARS)]] | None = Field(
        default=None, min_length=1, max_length=MAX_STROKES,
        description="SVG path data in the image's pixels to start from instead of the saliency init: one level, "
                    "one stroke per path, each path kept as one joined path with its number of segments. "
                    f"Such a job defaults to 1 seed and {REFINE_ITERATIONS} iterations.",
    )
    add_strokes: WholeNumber = Field(
        default=0, ge=0, le=MAX_STROKES,
        description="New strokes to add to init_paths (complete a drawing): placed by the saliency init where the "
                    "picture is salient and the given paths leave it uncovered, optimized with the free paths, and "
                    "returned after them. Needs init_paths; 0: none.",
    )
    locked: list[Annotated[WholeNumber, Field(ge=0, le=MAX_STROKES - 1)]] = Field(
        default=[], max_length=MAX_STROKES,
        description="Indices into init_paths of the paths that are drawn and count in the loss but never move "
                    "(all of them may be locked when add_strokes adds some).",
    )
    tidy: Switch = Field(
        default=False,
        description="Leave specks (strokes shorter than 2 % of the picture's diagonal) and near-duplicates of "
                    "another stroke out of the result; each level says how many it left out. A refine never "
                    "leaves out the given paths. Off by default.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        """Fill what was not given from the ``preset``, then (a job with ``init_paths``) from the refine defaults.

        A refine has one level of as many strokes as paths, 1 seed and fewer steps, unless given or set by a
        preset. ``"draft"`` is read as ``"quick"``; an unknown preset is left for the field to refuse.
        """
        if not isinstance(data, Mapping):
            return data
        given = {key: value for key, value in data.items() if value is not None}
        preset = given.get("preset")
        if isinstance(preset, str):
            preset = given["preset"] = PRESET_ALIASES.get(preset, preset)
        defaults: dict[str, Any] = {}
        if isinstance(given.get("init_paths"), list) and given["init_paths"]:
            added = given.get("add_strokes", 0)
            sound = isinstance(added, int) and not isinstance(added, bool) and added > 0  # else refused by its field
            total = len(given["init_paths"]) + (added if sound else 0)
            defaults = {"strokes": [total], "seeds": 1, "iterations": REFINE_ITERATIONS}
        if isinstance(preset, str):
            defaults.update(PRESETS.get(preset, {}))
        return {**defaults, **given} if defaults or preset is not None else data

    @model_validator(mode="before")
    @classmethod
    def _apply_fidelity(cls, data: Any) -> Any:
        """Fill the layer weights not given explicitly from the ``fidelity`` preset."""
        if isinstance(data, Mapping) and isinstance(data.get("fidelity"), str):
            preset = FIDELITY_PRESETS.get(data["fidelity"])
            if preset is not None:
                data = {**preset, **data}
        return data

    @field_validator(*LAYER_WEIGHTS, "fc_weight", "text_weight")
    @classmethod
    def _weight_floor(cls, weight: float) -> float:
        """A weight too small to move a stroke counts as zero (1e-300 would pass as 'some loss' and do nothing)."""
        return 0.0 if weight < MIN_LOSS_WEIGHT else weight

    @model_validator(mode="after")
    def _check_some_loss(self) -> SketchParams:
        if not any(getattr(self, name) > 0 for name in (*LAYER_WEIGHTS, "fc_weight")) and not (
                self.text and self.text_weight > 0):
            raise ValueError(f"at least one loss weight (layer1_weight … layer4_weight, fc_weight) must be at least "
                             f"{MIN_LOSS_WEIGHT:g}")
        return self

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str | None) -> str | None:
        problem = None if text is None else prompt_problem(text)
        if problem is not None:
            raise ValueError(problem)
        return text

    @field_validator("strokes")
    @classmethod
    def _check_strokes(cls, strokes: list[int]) -> list[int]:
        if not strokes:
            raise ValueError("give at least one stroke count, e.g. 4,8,16,32")
        if len(strokes) > MAX_LEVELS:
            raise ValueError(f"at most {MAX_LEVELS} abstraction levels, got {len(strokes)}")
        for count in strokes:
            if not 1 <= count <= MAX_STROKES:
                raise ValueError(f"each stroke count must be between 1 and {MAX_STROKES}, got {count}")
        if len(set(strokes)) != len(strokes):
            raise ValueError("stroke counts must not repeat")
        return sorted(strokes)

    @field_validator("init_paths")
    @classmethod
    def _check_init_paths(cls, paths: list[str] | None) -> list[str] | None:
        if paths is None:
            return None
        subpaths = read_paths(paths)
        segments = sum(len(subpath.segments) for subpath in subpaths)
        if segments > MAX_INIT_SEGMENTS:
            raise ValueError(f"at most {MAX_INIT_SEGMENTS} segments in all paths together, got {segments}")
        return paths  # every coordinate is within ±MAX_COORDINATE: parse_path refuses any beyond

    @field_validator("locked")
    @classmethod
    def _check_locked(cls, locked: list[int], info: ValidationInfo) -> list[int]:
        if not locked or "init_paths" not in info.data:  # no locks, or init_paths is already reported invalid
            return locked
        paths = info.data["init_paths"]
        if not paths:
            raise ValueError("locked needs init_paths: it lists indices of init_paths that must not move")
        if len(set(locked)) != len(locked):
            raise ValueError("locked indices must not repeat")
        beyond = [index for index in locked if index >= len(paths)]
        if beyond:
            raise ValueError(f"locked index {beyond[0]} is not a path: init_paths has {len(paths)} "
                             f"(0 to {len(paths) - 1})")
        if len(locked) == len(paths) and not info.data.get("add_strokes"):
            raise ValueError("every path is locked, so nothing could be refined; unlock at least one or add strokes")
        return sorted(locked)

    @model_validator(mode="after")
    def _check_pick_seed_at(self) -> SketchParams:
        if self.pick_seed_at is not None and self.pick_seed_at % self.eval_interval:
            raise ValueError(f"pick_seed_at must be an eval step, a multiple of eval_interval ({self.eval_interval}), "
                             f"got {self.pick_seed_at}")
        return self

    @model_validator(mode="after")
    def _check_refine_level(self) -> SketchParams:
        if self.init_paths is None:
            if self.add_strokes:
                raise ValueError("add_strokes needs init_paths: it adds strokes to a drawing (a new sketch takes "
                                 "strokes)")
            return self
        total = len(self.init_paths) + self.add_strokes
        if self.strokes != [total]:
            added = f" and one per added stroke ({total} in all)" if self.add_strokes else f" ({total})"
            raise ValueError(f"a job with init_paths has one level with one stroke per path{added}; "
                             f"leave out strokes or give [{total}]")
        return self

    def width_bounds(self) -> tuple[float, float]:
        """The smallest and largest width an optimized stroke may take, in canvas pixels."""
        return WIDTH_RANGE[0] * self.stroke_width, WIDTH_RANGE[1] * self.stroke_width

    def sketch_seeds(self) -> list[int]:
        """The random seed of each sketch of a level: ``seed, seed + 1000, …`` as in the paper's run script."""
        return [self.seed + 1000 * k for k in range(self.seeds)]


def make_params(preset: str | None = None, **overrides: Any) -> SketchParams:
    """Build parameters from a preset (or its other name; ``None``: none) plus explicit overrides (``None`` values are ignored)."""
    name = None if preset is None else PRESET_ALIASES.get(preset, preset)
    if name is not None and name not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESET_CHOICES)}")
    return SketchParams(preset=name, **{key: value for key, value in overrides.items() if value is not None})


MAX_REPORTED_ERRORS = 5
"""Validation problems named in one message; the rest are counted, so a message stays short whatever was sent."""


def describe_validation_errors(errors: Iterable[Mapping[str, Any]], empty_field: str = "params") -> str:
    """One sentence naming each invalid field and why (``strokes: …; seeds: …``), from pydantic's error list.

    What was sent is never echoed at length: field names are cut at 40 characters, each reason at 160, and
    past the first five problems the rest are only counted.
    """
    reasons: dict[str, list[str]] = {}  # field → why; the branches of a union are one field's alternatives
    problems: list[tuple[str, str]] = []
    for item in errors:
        location = [part for part in item.get("loc", ()) if not _is_schema_tag(part, item.get("type"))]
        field = ".".join(shortened(str(part), 40) for part in location) or empty_field
        message = shortened(str(item.get("msg", "is invalid")).removeprefix("Value error, "), 160)
        branch = len(location) < len(item.get("loc", ()))
        if branch and field in reasons:
            if message not in reasons[field]:
                reasons[field].append(message)
            continue
        reasons[field] = [message]
        problems.append((field, message))
    lines = [f"{field}: {' or '.join(reasons[field]) if len(reasons[field]) > 1 else message}"
             for field, message in problems]
    more = len(lines) - MAX_REPORTED_ERRORS
    return "; ".join(lines[:MAX_REPORTED_ERRORS]) + (f"; and {more} more" if more > 0 else "")


_SCHEMA_TAGS = re.compile(r"(?:constrained|function|lax|json-or-python|is-instance|tagged-union|union|nullable|list|"
                          r"dict|tuple|set|frozenset|literal|chain|model|default)(?:-[a-z-]+)?\[.*\]|"
                          r"(?:constrained|function|lax)-[a-z-]+", re.DOTALL)
_TYPE_TAGS = {"str", "int", "float", "bool", "bytes", "none", "decimal", "date", "datetime", "list", "dict"}


def _is_schema_tag(part: Any, error_type: Any) -> bool:
    """Whether a part of an error's location is pydantic's name for a branch of a union (``constrained-str``,
    ``list[constrained-str]``, ``function-after[…]``…) rather than a field name or an index."""
    if not isinstance(part, str) or error_type == "extra_forbidden":
        return False
    return part in _TYPE_TAGS or _SCHEMA_TAGS.fullmatch(part) is not None
