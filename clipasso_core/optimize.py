"""The CLIPasso optimisation loop, with every abstraction level and seed of a job in one batch.

Each step renders all sketches, runs the loss network once on all of them (1 clean + K augmented pairs),
and takes one Adam step on every sketch's control points (and, when asked, on every stroke's width and
opacity, each with its own learning rate, projected back into their range after the step). With a picture box
(the picture's rectangle on the padded canvas) every control point is projected into it at the start and after
each step, so no eval, snapshot or result ever holds a point off the picture. Sketches never interact: each one's
loss and gradient are exactly what a separate run would compute. The clean pair of each training step is the
un-augmented eval loss of the pre-step points, so best-iteration tracking costs no extra forward pass.

:func:`optimize_sketches` is the loop, read top to bottom; :class:`SketchBatch` holds what it works on. With
``pick_seed_at``, after that eval step each level keeps only its best attempt so far and the batch shrinks to
those: the steps that follow cost one sketch per level. The kept attempts go on exactly as in the whole batch,
since a step's augmentations are drawn for the step, not per sketch, and Adam's state is carried over row for
row; bit for bit where the loss network gives a sketch the same numbers in any batch (the CPU), else up to
rounding (a GPU's summation order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from .augment import Augmentations, Warps, sample_augmentations
from .graphed_step import CudaGraphs, GraphedStep, StepGraphs
from .loss import ClipConvLoss
from .params import SketchParams
from .precision import grad_scaler
from .raster import PairCapacity, pair_capacity, rasterize, rasterize_within

PictureBox = tuple[float, float, float, float]
"""The picture's rectangle on the canvas, ``(left, top, right, bottom)`` in canvas pixels."""

MIN_DELTA = 1e-5
"""An eval loss must beat the best one by more than this to count as an improvement (as in the paper's code)."""


class StrokeLayout(Protocol):
    """How a level's optimized tensor becomes segments, e.g. joined paths (:class:`~.joined_paths.JoinedPaths`)."""

    def segments(self, free: torch.Tensor) -> torch.Tensor:
        """Segments ``[seeds, N, 4, 2]`` of the level's optimized tensor ``[seeds, …]``."""
        ...

    def per_segment(self, values: torch.Tensor) -> torch.Tensor:
        """Per-path values ``[seeds, paths]`` (e.g. widths) repeated for each path's segments: ``[seeds, N]``."""
        ...


class CancelSignal(Protocol):
    """Anything with ``is_set()``, e.g. a :class:`threading.Event`."""

    def is_set(self) -> bool:
        """Whether the run should stop."""
        ...


@dataclass(frozen=True)
class Progress:
    """How far a job is: completed steps of ``total`` and the best eval loss so far per stroke count."""

    iteration: int
    total: int
    best_loss: dict[int, float]


@dataclass
class StrokeStyle:
    """Per-stroke widths and opacities of every level (``[seeds, S]`` each), or ``None`` where not optimized."""

    widths: list[torch.Tensor] | None
    opacities: list[torch.Tensor] | None


@dataclass(frozen=True)
class BestSketches:
    """The best sketch of every level after ``iteration`` steps: stroke count → (canvas segments ``[N, 4, 2]``, eval loss).

    ``N`` is the stroke count, except for a refined level, whose paths may have several segments each.
    ``widths`` (canvas pixels) and ``opacities`` map a stroke count to its segments' values ``[N]``, for the
    options that are optimized.
    """

    iteration: int
    levels: dict[int, tuple[torch.Tensor, float]]
    widths: dict[int, torch.Tensor] = field(default_factory=dict)
    opacities: dict[int, torch.Tensor] = field(default_factory=dict)


@dataclass
class LevelOutcome:
    """The winning sketch of one level: control points ``[S, 4, 2]`` on the canvas and its eval loss terms
    (weighted, in the order of the loss's ``term_names``).

    With a layout, ``points`` are the winner's segments ``[N, 4, 2]`` in the layout's path order.

    ``seed_losses`` holds every seed's best eval loss, in seed order; the winner has the lowest. An attempt a
    pick dropped reports its best before it was dropped.
    ``widths`` (canvas pixels) and ``opacities`` ``[S]`` are the winner's, per stroke (per path with a layout),
    when they were optimized.
    """

    strokes: int
    seed: int
    points: torch.Tensor
    loss: float
    terms: tuple[float, ...]
    seed_losses: tuple[float, ...]
    widths: torch.Tensor | None = None
    opacities: torch.Tensor | None = None


@dataclass
class Optimization:
    """All levels' winners, how many steps ran, whether the run was cancelled, and the sketch-steps it computed
    (each step's forward and backward pass of one sketch; :func:`planned_sketch_steps` for a whole job)."""

    levels: list[LevelOutcome]
    iterations: int
    cancelled: bool
    sketch_steps: int = 0


class _BestTracker:
    """Every attempt's lowest eval loss so far and the strokes (and style) that achieved it.

    It keeps all attempts of the job, level-major (row ``level · seeds + attempt``), also those a pick dropped
    from the batch: theirs stay as they were when they were dropped.
    """

    def __init__(self, points: list[torch.Tensor], terms: int, style: StrokeStyle) -> None:
        """Start from every level's whole batch of attempts ``[seeds, …]``, none evaluated yet."""
        self.seeds = points[0].shape[0]
        count = len(points) * self.seeds
        self.loss = torch.full((count,), float("inf"), device=points[0].device)
        self.terms = torch.zeros((count, terms), device=points[0].device)
        self.points = [p.detach().clone() for p in points]
        self.style = StrokeStyle(*(None if values is None else [v.detach().clone() for v in values]
                                   for values in (style.widths, style.opacities)))

    def update(self, terms: torch.Tensor, points: list[torch.Tensor], style: StrokeStyle,
               live: list[list[int]]) -> None:
        """Record eval ``terms`` ``[B, T]`` of ``points`` (and ``style``), whose rows are the attempts ``live``
        lists per level; keep them for every attempt that improved."""
        rows = torch.tensor([level * self.seeds + attempt
                             for level, attempts in enumerate(live) for attempt in attempts], device=self.loss.device)
        total = terms.sum(dim=-1)
        improved = total < self.loss[rows] - MIN_DELTA
        self.loss[rows] = torch.where(improved, total, self.loss[rows])
        self.terms[rows] = torch.where(improved[:, None], terms, self.terms[rows])
        for kept, current in ((self.points, points), (self.style.widths, style.widths),
                              (self.style.opacities, style.opacities)):
            start = 0
            for best, level, attempts in zip(kept or [], current or [], live):
                mask = improved[start:start + level.shape[0]]
                best[torch.tensor(attempts, device=mask.device)[mask]] = level.detach()[mask]
                start += level.shape[0]

    def winners(self) -> list[int]:
        """Each level's attempt with the lowest eval loss so far (the first of equals)."""
        return torch.argmin(self.loss.view(-1, self.seeds), dim=1).tolist()

    def best_sketches(self, iteration: int, strokes: list[int],
                      segments: Callable[[list[torch.Tensor]], list[torch.Tensor]],
                      per_segment: Callable[[list[torch.Tensor] | None], list[torch.Tensor] | None]) -> BestSketches:
        """The lowest-loss attempt's best strokes of every level (as ``segments`` draws them, styled per segment
        as ``per_segment`` spreads each path's values), copied to the CPU."""
        losses = self.loss.view(len(strokes), self.seeds)
        winners = self.winners()
        drawn = segments(self.points)

        def winners_of(values: list[torch.Tensor] | None) -> dict[int, torch.Tensor]:
            return {} if values is None else {count: values[level][winner].detach().cpu().clone()
                                              for level, (count, winner) in enumerate(zip(strokes, winners))}

        return BestSketches(iteration, {
            count: (drawn[level][winner].detach().cpu().clone(), float(losses[level, winner]))
            for level, (count, winner) in enumerate(zip(strokes, winners))
        }, winners_of(per_segment(self.style.widths)), winners_of(per_segment(self.style.opacities)))

    def per_level(self) -> list[float]:
        """Best eval loss per level over its attempts."""
        return self.loss.view(-1, self.seeds).min(dim=1).values.tolist()

    def attempts(self, strokes: list[int], seeds: list[int],
                 best_segments: list[torch.Tensor]) -> list[list[LevelOutcome]]:
        """Every attempt of every level at its best evaluated iteration, on the CPU; ``best_segments`` are the
        segments of :attr:`points`."""
        losses = self.loss.view(len(strokes), len(seeds))
        terms = self.terms.view(len(strokes), len(seeds), -1)
        return [[
            LevelOutcome(
                strokes=count,
                seed=seed,
                points=best_segments[level][attempt].detach().cpu(),
                loss=float(losses[level, attempt]),
                terms=tuple(terms[level, attempt].tolist()),
                seed_losses=tuple(losses[level].tolist()),
                widths=None if self.style.widths is None else self.style.widths[level][attempt].detach().cpu(),
                opacities=None if self.style.opacities is None else self.style.opacities[level][attempt].detach().cpu(),
            )
            for attempt, seed in enumerate(seeds)
        ] for level, count in enumerate(strokes)]


OFF_CANVAS = -1e4
"""Where padding strokes sit: a dot far outside the canvas touches no pixel and costs the rasterizer nothing."""


def stroke_batch(points: list[torch.Tensor], stroke_width: float, widths: list[torch.Tensor] | None = None,
                 opacities: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, float | torch.Tensor,
                                                                       torch.Tensor | None]:
    """Every level's sketches ``[seeds, S_l, 4, 2]`` as one batch ``[L·seeds, S, 4, 2]`` with its widths and opacities.

    Levels with fewer strokes are padded with off-canvas dots so that one rasterizer call draws them all.
    ``widths`` / ``opacities`` (``[seeds, S_l]`` per level) replace ``stroke_width`` / full ink per stroke.
    """
    most = max(p.shape[1] for p in points)

    def pad(levels: list[torch.Tensor], fill: float) -> torch.Tensor:
        return torch.cat([
            torch.cat([v, v.new_full((*v.shape[:1], most - v.shape[1], *v.shape[2:]), fill)], dim=1)
            if v.shape[1] < most else v
            for v in levels
        ])

    width: float | torch.Tensor = stroke_width if widths is None else pad(widths, stroke_width)
    return pad(points, OFF_CANVAS), width, None if opacities is None else pad(opacities, 1.0)


def render(points: list[torch.Tensor], stroke_width: float, size: int,
           widths: list[torch.Tensor] | None = None, opacities: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Render every level's sketches ``[seeds, S_l, 4, 2]`` into one RGB batch ``[L·seeds, 3, size, size]``.

    ``widths`` / ``opacities`` (``[seeds, S_l]`` per level) replace ``stroke_width`` / full ink per stroke.
    """
    batch, width, opacity = stroke_batch(points, stroke_width, widths, opacities)
    return _rgb(rasterize(batch, width, (size, size), opacity))


def _rgb(grey: torch.Tensor) -> torch.Tensor:
    """A grey batch ``[B, H, W]`` as RGB ``[B, 3, H, W]`` (a view)."""
    return grey[:, None].expand(-1, 3, -1, -1)


def initial_style(params: SketchParams, counts: list[int], device: torch.device,
                  locked: Mapping[int, Sequence[int]] | None = None) -> StrokeStyle:
    """Starting widths (``stroke_width``) and opacities (1) ``[seeds, S]`` per level, for the options that are on.

    The strokes listed in ``locked`` (per level index) keep their style: their gradients are zeroed.
    """

    def start(value: float) -> list[torch.Tensor]:
        return [_lock(torch.full((params.seeds, count), value, device=device, requires_grad=True),
                      (locked or {}).get(level, ()))
                for level, count in enumerate(counts)]

    return StrokeStyle(start(params.stroke_width) if params.optimize_width else None,
                       start(1.0) if params.optimize_opacity else None)


def _lock(values: torch.Tensor, fixed: Sequence[int]) -> torch.Tensor:
    """``values`` ``[seeds, S]``, whose strokes listed in ``fixed`` get no gradient (a hook zeroes it)."""
    if fixed:
        keep = torch.ones(values.shape[-1], device=values.device)
        keep[list(fixed)] = 0.0
        values.register_hook(lambda grad: grad * keep)
    return values


def _step_graphs(graphs: StepGraphs | bool, device: torch.device, scaled: bool) -> StepGraphs | None:
    """The graphs steps are replayed through: CUDA's where asked for and possible, the ones given, or none.

    A scaled loss (fp16) is never replayed: its loss scaling is not captured.
    """
    if graphs is False or scaled:
        return None
    if graphs is True:
        return CudaGraphs(device) if device.type == "cuda" else None
    return graphs


class SketchBatch:
    """Every level's attempts that are still optimized, as one batch, and what one step does to them.

    It holds the strokes (and widths, opacities) being optimized, one tensor per level, Adam over them,
    the best tracker (of every attempt, dropped ones included), and the step that computes the loss terms and
    gradients of the whole batch (eager, or replayed through ``graphs``; see :func:`optimize_sketches`).
    ``live[level]`` lists the attempts (indices into the level's seeds) whose rows the level's tensors hold.
    """

    def __init__(self, loss: ClipConvLoss, initial: dict[int, torch.Tensor], params: SketchParams,
                 layouts: Mapping[int, StrokeLayout], graphs: StepGraphs | bool,
                 within: PictureBox | None = None) -> None:
        """Start from ``initial`` (stroke count → ``[seeds, …]`` canvas points or a layout's tensor), projected
        into ``within`` (the picture's box on the canvas; ``None``: points may go anywhere)."""
        self.loss, self.params, self.layouts = loss, params, layouts
        self.strokes = sorted(initial)
        self.device = loss.target.device
        self.size = loss.target.shape[-1]
        self.live = [list(range(params.seeds)) for _ in self.strokes]
        self.points = [initial[count].to(self.device).clone().requires_grad_(True) for count in self.strokes]
        self.within = None if within is None else (torch.tensor(within[:2], device=self.device),
                                                   torch.tensor(within[2:], device=self.device))
        self._project_points()
        self.locked = {self.strokes.index(count): params.locked for count in layouts}
        self.style = initial_style(params, self.strokes, self.device, self.locked)
        self.optimizer = torch.optim.Adam(self._groups())
        self.scaler = grad_scaler(loss.encoder.precision, self.device)  # fp16 only: keeps small gradients from underflowing
        self.best = _BestTracker(self.points, len(loss.term_names), self.style)
        self.graphs = _step_graphs(graphs, self.device, self.scaler.is_enabled())
        self._step = self._new_step()
        self.sketch_steps = 0  # one per sketch in each step's batch

    def step(self, augmentations: Augmentations) -> torch.Tensor:
        """Loss terms ``[B, 1 + K, T]`` of the batch under ``augmentations``; their gradients are left in ``.grad``."""
        self.sketch_steps += sum(map(len, self.live))
        return self._step(augmentations)

    def record(self, terms: torch.Tensor) -> None:
        """Record the batch's eval terms ``[B, T]`` (of its current strokes) in the best tracker."""
        self.best.update(terms.detach(), self.points, self.style, self.live)

    def update(self) -> None:
        """One Adam step on the whole batch; points, widths and opacities are then projected back into their range."""
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._project_points()
        low, high = self.params.width_bounds()
        with torch.no_grad():
            for width in self.style.widths or []:
                width.clamp_(low, high)
            for opacity in self.style.opacities or []:
                opacity.clamp_(0.0, 1.0)

    def _project_points(self) -> None:
        """Move every optimized control point to the nearest point of the picture's box (in place, when there is one).

        A stroke's curve lies in the hull of its control points, so it stays on the picture too; a layout's
        fixed (locked) points are not optimized and stay as given.
        """
        if self.within is None:
            return
        low, high = self.within
        with torch.no_grad():
            for points in self.points:
                points.clamp_(low.to(points.dtype), high.to(points.dtype))

    def keep_best_attempts(self) -> None:
        """Keep each level's attempt with the lowest eval loss so far (the final pick's rule); drop the others.

        The kept attempts go on as they would have in the whole batch: their strokes, style and Adam state are
        carried over row for row, and the next steps (through a newly captured graph, where graphs are used)
        compute only them. Nothing changes where every level has one attempt left.
        """
        if all(len(attempts) == 1 for attempts in self.live):
            return
        winners = self.best.winners()
        rows = [[attempts.index(winner)] for attempts, winner in zip(self.live, winners)]
        self.live = [[winner] for winner in winners]
        self.points = [self._carry(points, kept) for points, kept in zip(self.points, rows)]
        self.style = StrokeStyle(*(
            None if values is None else [_lock(self._carry(level_values, kept), self.locked.get(level, ()))
                                         for level, (level_values, kept) in enumerate(zip(values, rows))]
            for values in (self.style.widths, self.style.opacities)))
        self._step = self._new_step()

    def eval_terms(self) -> torch.Tensor:
        """Un-augmented eval terms ``[B, T]`` of the current strokes (no gradients)."""
        return self.loss.eval_terms(self.draw()[0])

    def best_sketches(self, iteration: int) -> BestSketches:
        """The best sketch of every level so far, on the CPU."""
        return self.best.best_sketches(iteration, self.strokes, self.segments, self.per_segment)

    def best_losses(self) -> dict[int, float]:
        """The best eval loss so far per stroke count."""
        return dict(zip(self.strokes, self.best.per_level()))

    def attempts(self) -> list[list[LevelOutcome]]:
        """Every attempt of every level at its best evaluated iteration (a dropped one: before it was dropped)."""
        return self.best.attempts(self.strokes, self.params.sketch_seeds(), self.segments(self.best.points))

    def outcomes(self) -> list[LevelOutcome]:
        """Every level's winner: the attempt with the lowest best eval loss, at its best iteration."""
        return [attempts[winner] for attempts, winner in zip(self.attempts(), self.best.winners())]

    def segments(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each level's segments ``[seeds, N, 4, 2]`` of its optimized tensor (as its layout draws it, if any)."""
        return [self.layouts[count].segments(t) if count in self.layouts else t
                for count, t in zip(self.strokes, tensors)]

    def per_segment(self, values: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
        """Each level's per-stroke values ``[seeds, S]`` spread over its segments (per path with a layout)."""
        if values is None:
            return None
        return [self.layouts[count].per_segment(v) if count in self.layouts else v
                for count, v in zip(self.strokes, values)]

    def draw(self, capacity: PairCapacity | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The current sketches, RGB ``[B, 3, size, size]``, and the sizes the rasterizer needed."""
        strokes, width, opacity = self._stroke_batch()
        grey, needed = rasterize_within(strokes, capacity, width, (self.size, self.size), opacity)
        return _rgb(grey), needed

    def _stroke_batch(self) -> tuple[torch.Tensor, float | torch.Tensor, torch.Tensor | None]:
        """The current strokes as one rasterizer batch, with their widths and opacities."""
        return stroke_batch(self.segments(self.points), self.params.stroke_width, self.per_segment(self.style.widths),
                            self.per_segment(self.style.opacities))

    def _groups(self) -> list[dict[str, Any]]:
        """Adam's parameter groups: the points, and the widths and opacities where optimized, each at its rate."""
        groups: list[dict[str, Any]] = [{"params": self.points, "lr": self.params.lr}]
        if self.style.widths is not None:
            groups.append({"params": self.style.widths, "lr": self.params.width_lr})
        if self.style.opacities is not None:
            groups.append({"params": self.style.opacities, "lr": self.params.opacity_lr})
        return groups

    def _run(self, warps: Augmentations | Warps, capacity: PairCapacity | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss terms of the current strokes and their gradients (into ``.grad``); the sizes the rasterizer needed."""
        images, needed = self.draw(capacity)
        terms = self.loss.pair_terms(images, warps)
        self.scaler.scale(terms.sum(dim=-1).mean(dim=-1).sum()).backward()
        return terms, needed

    def _carry(self, old: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """A new leaf of ``old``'s ``rows``, which takes ``old``'s place in Adam with those rows of its state."""
        new = old.detach()[rows].requires_grad_(True)
        self.optimizer.state[new] = {key: value[rows] if value.dim() and value.shape == old.shape else value
                                     for key, value in self.optimizer.state.pop(old, {}).items()}
        for group in self.optimizer.param_groups:
            group["params"] = [new if param is old else param for param in group["params"]]
        return new

    def _eager_step(self, augmentations: Augmentations) -> torch.Tensor:
        """One step without graphs."""
        self.optimizer.zero_grad(set_to_none=True)
        return self._run(augmentations, None)[0]

    def _new_step(self) -> Callable[[Augmentations], torch.Tensor]:
        """The step of the batch as it is now: through a new :class:`~.graphed_step.GraphedStep`, or eager."""
        if self.graphs is None:
            return self._eager_step
        leaves = [*self.points, *(self.style.widths or []), *(self.style.opacities or [])]
        return GraphedStep(self._run, lambda: pair_capacity(*self._stroke_batch()[:2], (self.size, self.size)),
                           leaves, self.graphs)


def optimize_sketches(
    loss: ClipConvLoss,
    initial: dict[int, torch.Tensor],
    params: SketchParams,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelSignal | None = None,
    layouts: Mapping[int, StrokeLayout] | None = None,
    snapshot: Callable[[BestSketches], None] | None = None,
    graphs: StepGraphs | bool = True,
    within: PictureBox | None = None,
) -> Optimization:
    """Optimise ``initial`` strokes (stroke count → ``[seeds, S, 4, 2]`` canvas points) against ``loss``.

    Returns, per level, the seed whose best eval loss is lowest, at its best evaluated iteration. A set
    ``cancel`` stops the run before the next step; the best sketches found so far are still returned.
    A level with a layout optimizes ``initial[count]`` as that layout's tensor and draws its segments.
    ``snapshot`` receives the best sketches so far at every eval step and once more at the end.
    With ``params.pick_seed_at`` (:func:`pick_step`), after that eval step each level keeps only its best attempt
    so far, and the steps after it compute those alone.
    With ``graphs`` true, on CUDA (except in fp16, whose loss scaling is not captured) each step's forward and
    backward pass is replayed as a CUDA graph (:class:`~.graphed_step.GraphedStep`); false runs every step
    eagerly; other :class:`~.graphed_step.StepGraphs` (a stand-in on the CPU) are replayed through on any device.
    With ``within`` (the picture's box on the canvas) every control point is kept inside it: projected onto it at
    the start and after each step.
    """
    batch = SketchBatch(loss, initial, params, layouts or {}, graphs, within)
    generator = torch.Generator().manual_seed(params.seed)
    pick_at = pick_step(params)
    done, cancelled = 0, False
    for iteration in range(params.iterations):
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        terms = batch.step(sample_augmentations(params.augmentations, batch.size, generator))
        if iteration % params.eval_interval == 0:
            batch.record(terms[:, 0])
            if snapshot is not None:
                snapshot(batch.best_sketches(iteration))
        batch.update()
        if iteration == pick_at:
            batch.keep_best_attempts()
        done = iteration + 1
        if progress is not None:
            progress(Progress(done, params.iterations, batch.best_losses()))
    batch.record(batch.eval_terms())
    if snapshot is not None:
        snapshot(batch.best_sketches(done))
    return Optimization(batch.outcomes(), done, cancelled, batch.sketch_steps)


def pick_step(params: SketchParams) -> int | None:
    """The eval step after which each level keeps only its best attempt, or None where a pick would change
    nothing: no ``pick_seed_at``, one seed, or no step after it."""
    at = params.pick_seed_at
    return at if at is not None and params.seeds > 1 and at < params.iterations - 1 else None


def planned_sketch_steps(params: SketchParams) -> int:
    """How many sketch-steps (one sketch's forward and backward pass in one step) a whole job computes.

    A pick cuts them: every attempt runs the steps up to and including the pick's eval step, then one per level.
    """
    return sketch_steps_within(params, params.iterations)


def sketch_steps_within(params: SketchParams, steps: int) -> int:
    """How many sketch-steps the first ``steps`` steps of a job compute (every attempt until the pick, then one
    per level)."""
    at = pick_step(params)
    if at is None or steps <= at + 1:
        return len(params.strokes) * params.seeds * steps
    return len(params.strokes) * (params.seeds * (at + 1) + steps - (at + 1))
