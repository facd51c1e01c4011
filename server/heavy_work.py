"""Bounded heavy work per request: decoding and validating a submission, drawing a job's files.

Each runs in a worker thread, off the event loop (so ``/v1/health`` and polls keep answering), and at most
:data:`MAX_PARALLEL_HEAVY` at once across the server, which bounds the memory they take; requests beyond
that wait their turn without holding a thread. The limiter belongs to the event loop: it is made by the
first request that needs it and lives on ``app.state.heavy_work``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from fastapi import FastAPI, Request

MAX_PARALLEL_HEAVY = 2
"""Submissions validated (image decoded, mask and init_paths checked) and files drawn (GIF, SVG) at once: a
decode may take ~10 bytes per pixel, a GIF frame as much, so this bounds the memory they take together."""

Value = TypeVar("Value")


def heavy_limiter(app: FastAPI) -> anyio.CapacityLimiter:
    """The app's limiter of heavy work (made on first use, on the event loop, which runs one coroutine at a time)."""
    limiter = getattr(app.state, "heavy_work", None)
    if limiter is None:
        limiter = app.state.heavy_work = anyio.CapacityLimiter(MAX_PARALLEL_HEAVY)
    return limiter


async def run_heavy(request: Request, work: Callable[[], Value]) -> Value:
    """Run ``work`` in a worker thread when one of the :data:`MAX_PARALLEL_HEAVY` turns is free."""
    return await anyio.to_thread.run_sync(work, limiter=heavy_limiter(request.app))


async def run_light(work: Callable[[], Value]) -> Value:
    """Run ``work`` (a quick read) in a worker thread of the common pool, off the event loop."""
    return await anyio.to_thread.run_sync(work)
