"""One training step's forward and backward pass captured as a CUDA graph and replayed every step.

On a GPU, a step of hundreds of small kernels is bound by how fast the host launches them; a replayed graph
launches them all at once. A graph needs fixed shapes, so the rasterizer draws into buffers of a fixed
:class:`~.raster.PairCapacity` (the pairs the strokes needed when the graph was captured, with headroom),
and each step's transforms come in as matrices copied into the graph's input (:class:`~.augment.Warps`).

Assumes the caller's contract: ``run(warps, capacity)`` computes the loss terms of the current leaves
under ``warps`` and back-propagates them (leaving gradients in ``.grad``), without synchronising with the
host when ``capacity`` is given; ``measure()`` gives the exact capacity the current leaves need. The
graphs are CUDA's (:class:`CudaGraphs`); the logic around them takes any :class:`StepGraphs`. The first
steps run eagerly on a side stream (cuDNN picks its algorithms, lazy state is made), then the step is
captured. Where strokes outgrow the buffers, the step that overflowed is redone
eagerly and a larger graph is captured; where capture fails (an operation this PyTorch cannot capture),
the rest of the run stays eager.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import torch

from .augment import Augmentations, Warps
from .raster import PairCapacity

logger = logging.getLogger(__name__)

WARMUP_STEPS = 3
"""Eager steps before a capture (cuDNN's algorithm search and lazy initialisation must not be captured)."""

HEADROOM = 1.25
"""Buffer sizes of a captured rasterizer, as a multiple of what the strokes needed at capture time."""

StepRun = Callable[[Warps | Augmentations, PairCapacity | None], tuple[torch.Tensor, torch.Tensor | None]]
"""``run(warps, capacity)`` → (loss terms, sizes the rasterizer needed, or None with exact buffers)."""

Outputs = TypeVar("Outputs")


class StepGraphs(Protocol):
    """How a step runs eagerly and how it is captured and replayed (:class:`CudaGraphs` on a GPU)."""

    def eager(self, run: Callable[[], Outputs]) -> Outputs:
        """``run()`` now, where a later capture may follow it."""
        ...

    def capture(self, run: Callable[[], Outputs]) -> tuple[Outputs, Callable[[], None]]:
        """Capture ``run()`` without running it: its outputs, which each call of the returned replay refills."""
        ...


class CudaGraphs:
    """Eager steps on a side stream, captures on that stream too (where autograd made the leaves' gradient
    nodes), thread-local, so that a server's other threads may use the GPU meanwhile."""

    def __init__(self, device: torch.device) -> None:
        """Streams and graphs on ``device``, a CUDA device."""
        self._device = device
        self._side = torch.cuda.Stream(device)

    def eager(self, run: Callable[[], Outputs]) -> Outputs:
        """``run()`` on the side stream, which the current stream then waits for."""
        current = torch.cuda.current_stream(self._device)
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side):
            outputs = run()
        current.wait_stream(self._side)
        return outputs

    def capture(self, run: Callable[[], Outputs]) -> tuple[Outputs, Callable[[], None]]:
        """``run()`` captured as a CUDA graph: its static outputs and the graph's replay."""
        torch.cuda.empty_cache()  # the graph takes its own memory: hand back what the eager steps left cached
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self._side, capture_error_mode="thread_local"):
            outputs = run()
        return outputs, graph.replay




class GraphedStep:
    """Calls ``run`` through a captured graph; see the module docstring for the contract."""

    def __init__(self, run: StepRun, measure: Callable[[], PairCapacity], leaves: Sequence[torch.Tensor],
                 graphs: StepGraphs) -> None:
        """Eager for the first :data:`WARMUP_STEPS` calls, captured from then on."""
        self._run, self._measure, self._leaves, self._graphs = run, measure, list(leaves), graphs
        self._eager_left = WARMUP_STEPS
        self._replay: Callable[[], None] | None = None
        self._disabled = False
        self.captures = 0  # graphs captured (a larger one after each overflow)
        self.replays = 0  # steps whose replay the rasterizer's buffers held

    def __call__(self, augmentations: Augmentations) -> torch.Tensor:
        """Loss terms of this step under ``augmentations``, with the leaves' gradients in ``.grad``."""
        if self._replay is None and not self._eager_left and not self._disabled:
            self._capture(augmentations)
        if self._replay is not None:
            self._matrices.copy_(augmentations.matrices())
            self._replay()
            if self._capacity.holds(PairCapacity(*self._needed.tolist())):
                self.replays += 1
                return self._terms
            logger.debug("the strokes outgrew the rasterizer's buffers; redoing the step and capturing larger ones")
            self._replay, self._eager_left = None, 1
        self._clear_gradients()
        terms, _ = self._graphs.eager(lambda: self._run(augmentations, None))
        self._eager_left = max(self._eager_left - 1, 0)
        return terms

    def _capture(self, augmentations: Augmentations) -> None:
        """Capture ``run`` with buffers for the current strokes plus headroom; on failure, stay eager."""
        self._capacity = self._measure().scaled(HEADROOM)
        self._matrices = augmentations.matrices().to(self._leaves[0].device)
        self._clear_gradients()
        try:
            (self._terms, self._needed), self._replay = self._graphs.capture(self._fresh_run)
        except RuntimeError as error:
            logger.warning("Cannot capture the optimisation step as a CUDA graph, so it runs eagerly: %s", error)
            self._disabled = True
            self._clear_gradients()
            return
        self.captures += 1

    def _fresh_run(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The captured call: ``run`` from no gradients, on the graph's transforms and buffers.

        (A CUDA graph replays only its kernels; a stand-in that calls this again gets fresh gradients.)
        """
        self._clear_gradients()
        return self._run(Warps(self._matrices), self._capacity)

    def _clear_gradients(self) -> None:
        """Drop the leaves' gradients (a capture allocates its own; an eager pass must not add to a graph's)."""
        for leaf in self._leaves:
            leaf.grad = None
