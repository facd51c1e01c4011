"""The body of a Ray worker actor: keeps the CLIP models of one device loaded and runs one job at a time.

Plain Python, no Ray import: :mod:`clipasso_server.ray_backend` turns :class:`SketchActor` into a Ray
actor (a threaded one, so :meth:`poll` and :meth:`cancel` are answered while :meth:`run` works). The
actor never touches the job store: it gets the image bytes and parameters, hands over its progress and
the snapshots taken since the last poll when polled, and returns an outcome dict (with the snapshots
not yet handed over); the server writes everything down.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any

import torch

from clipasso_core.errors import ClipassoError
from clipasso_core.image import read_image
from clipasso_core.models import ModelSpec
from clipasso_core.optimize import Progress
from clipasso_core.params import SketchParams
from clipasso_core.sketch import sketch_image
from clipasso_core.snapshot import SketchSnapshot

from .job_status import JobStatus
from .model_cache import ModelCache
from .worker import INTERNAL_MESSAGE, OUT_OF_MEMORY_MESSAGE, is_out_of_memory, progress_body, result_body
from .workers import this_process

log = logging.getLogger("clipasso_server")

MAX_PENDING_SNAPSHOTS = 32
"""Snapshots kept between two polls; older ones are dropped first (the server keeps only a bounded history)."""


class SketchActor:
    """One worker: a device, its models (loaded once) and at most one running job."""

    def __init__(self, name: str, spec: ModelSpec, device: str) -> None:
        self.name = name
        self.device = torch.device(device)
        self.models = ModelCache(spec, self.device)
        self._lock = threading.Lock()
        self._job: str | None = None
        self._cancel = threading.Event()
        self._progress: dict[str, Any] | None = None
        self._snapshots: list[dict[str, Any]] = []

    def ready(self) -> dict[str, Any]:
        """Load the models (once) and say who this worker is: ``{"worker": {...}, "models_error": str | None}``."""
        error = None
        try:
            self.models.get()
        except ClipassoError as problem:
            error = str(problem)
        return {"worker": this_process(self.name, str(self.device)).as_dict(), "models_error": error}

    def poll(self) -> dict[str, Any]:
        """The running job, its latest progress and the snapshots since the last poll: ``{"job", "progress", "snapshots"}``."""
        with self._lock:
            snapshots, self._snapshots = self._snapshots, []
            return {"job": self._job, "progress": self._progress, "snapshots": snapshots}

    def cancel(self, job_id: str) -> bool:
        """Ask the running job ``job_id`` to stop after its current step; ``False`` if it is not running here."""
        with self._lock:
            if self._job != job_id:
                return False
            self._cancel.set()
            return True

    def run(self, job_id: str, image: bytes, params: dict[str, Any], max_pixels: int) -> dict[str, Any]:
        """Sketch one job; returns ``{"status": succeeded|failed|cancelled, "result"?, "error"?, "progress", ...}``."""
        with self._lock:
            self._job, self._progress, self._cancel, self._snapshots = job_id, None, threading.Event(), []
        started = time.monotonic()
        try:
            outcome = self._sketch(image, SketchParams.model_validate(params), max_pixels)
        finally:
            with self._lock:
                progress, snapshots, self._job, self._snapshots = self._progress, self._snapshots, None, []
        return {**outcome, "progress": progress, "snapshots": snapshots, "run_s": time.monotonic() - started}

    def _report(self, progress: Progress) -> None:
        body = progress_body(progress)
        with self._lock:
            self._progress = body

    def _snapshot(self, snapshot: SketchSnapshot) -> None:
        body = snapshot.to_dict()
        with self._lock:
            self._snapshots = [*self._snapshots[-(MAX_PENDING_SNAPSHOTS - 1):], body]

    def _sketch(self, image: bytes, params: SketchParams, max_pixels: int) -> dict[str, Any]:
        try:
            models = self.models.get()
            picture = read_image(image, max_pixels)
            result = sketch_image(picture, params, models, progress=self._report, cancel=self._cancel,
                                  snapshot=self._snapshot)
        except ClipassoError as error:
            return {"status": JobStatus.FAILED, "error": {"code": error.code, "message": str(error)}}
        except Exception as error:
            if is_out_of_memory(error):
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                device = "GPU" if self.device.type == "cuda" else "computer"
                return {"status": JobStatus.FAILED,
                        "error": {"code": "out_of_memory", "message": OUT_OF_MEMORY_MESSAGE.format(device=device)}}
            return {"status": JobStatus.FAILED, "error": {"code": "internal_error", "message": INTERNAL_MESSAGE},
                    "details": traceback.format_exc()}
        if result.cancelled or self._cancel.is_set():
            return {"status": JobStatus.CANCELLED, "iterations": result.iterations}
        return {"status": JobStatus.SUCCEEDED, "result": result_body(result)}
