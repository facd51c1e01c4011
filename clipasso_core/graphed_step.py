"""One training step's forward and backward pass captured as a CUDA graph and replayed every step.

On a GPU, a step of hundreds of small kernels is bound by how fast the host launches them; a replayed graph
launches them all at once. A graph needs fixed shapes, so the rasterizer draws into buffers of a fixed
:class:`~.raster.PairCapacity` (the pairs the strokes needed when the graph was captured, with headroom),
and each step's transforms come in as matrices copied into the graph's input (:class:`~.augment.Warps`).

Assumes a CUDA device and the caller's contract: ``run(warps, capacity)`` computes the loss terms of the
current leaves under ``warps`` and back-propagates them (leaving gradients in ``.grad``), without
synchronising with the host when ``capacity`` is given; ``measure()`` gives the exact capacity the current
leaves need. The first steps run eagerly on a side stream (cuDNN picks its algorithms, lazy state is
made), then the step is captured. Where strokes outgrow the buffers, the step that overflowed is redone
eagerly and a larger graph is captured; where capture fails (an operation this PyTorch cannot capture),
the rest of the run stays eager.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

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


class GraphedStep:
    """Calls ``run`` through a captured CUDA graph; see the module docstring for the contract."""

    def __init__(self, run: StepRun, measure: Callable[[], PairCapacity], leaves: Sequence[torch.Tensor],
                 device: torch.device) -> None:
        """Eager for the first :data:`WARMUP_STEPS` calls, captured from then on."""
        self._run, self._measure, self._leaves, self._device = run, measure, list(leaves), device
        self._side = torch.cuda.Stream(device)
        self._eager_left = WARMUP_STEPS
        self._graph: torch.cuda.CUDAGraph | None = None
        self._disabled = False
        self.captures = 0  # graphs captured (a larger one after each overflow)
        self.replays = 0  # steps whose replay the rasterizer's buffers held

    def __call__(self, augmentations: Augmentations) -> torch.Tensor:
        """Loss terms of this step under ``augmentations``, with the leaves' gradients in ``.grad``."""
        if self._graph is None and not self._eager_left and not self._disabled:
            self._capture(len(augmentations))
        if self._graph is not None:
            self._matrices.copy_(augmentations.matrices())
            self._graph.replay()
            if self._capacity.holds(PairCapacity(*self._needed.tolist())):
                self.replays += 1
                return self._terms
            logger.debug("the strokes outgrew the rasterizer's buffers; redoing the step and capturing larger ones")
            self._graph, self._eager_left = None, 1
        return self._eager(augmentations)

    def _eager(self, augmentations: Augmentations) -> torch.Tensor:
        """One step with exact buffers, on the side stream."""
        self._clear_gradients()
        self._side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(self._side):
            terms, _ = self._run(augmentations, None)
        torch.cuda.current_stream(self._device).wait_stream(self._side)
        self._eager_left = max(self._eager_left - 1, 0)
        return terms

    def _capture(self, transforms: int) -> None:
        """Capture ``run`` with buffers for the current strokes plus headroom; on failure, stay eager."""
        self._capacity = self._measure().scaled(HEADROOM)
        self._matrices = torch.zeros(transforms, 3, 3, device=self._device)
        self._clear_gradients()
        graph = torch.cuda.CUDAGraph()
        try:
            # on the warm-up's stream (where autograd made the leaves' gradient nodes); thread-local, so that
            # a server's other threads may use the GPU meanwhile
            with torch.cuda.graph(graph, stream=self._side, capture_error_mode="thread_local"):
                self._terms, self._needed = self._run(Warps(self._matrices), self._capacity)
        except RuntimeError as error:
            logger.warning("Cannot capture the optimisation step as a CUDA graph, so it runs eagerly: %s", error)
            self._disabled = True
            self._clear_gradients()
            return
        self._graph = graph
        self.captures += 1

    def _clear_gradients(self) -> None:
        """Drop the leaves' gradients (a capture allocates its own; an eager pass must not add to a graph's)."""
        for leaf in self._leaves:
            leaf.grad = None
