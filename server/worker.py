"""The job queue: submissions go to the store; one worker thread runs them one at a time on the device.

Live progress is kept in memory (the optimizer reports after every step); the store keeps everything
that must survive a restart. Every job state change is logged as one line with the job id and timings.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import torch

from clipasso_core.errors import ClipassoError
from clipasso_core.image import DEFAULT_MAX_PIXELS, read_image
from clipasso_core.optimize import Progress
from clipasso_core.params import SketchParams
from clipasso_core.sketch import SketchResult, sketch_image
from clipasso_core.svg import path_data

from .model_cache import ModelCache, models_identity
from .progress import JobClock
from .snapshots import SnapshotRecorder
from .store import DEFAULT_CLIENT, Job, JobStore, cache_key
from .workers import WorkerBoard, this_process

log = logging.getLogger("clipasso_server")

CANCELLED_MESSAGE = "The job was cancelled."
OUT_OF_MEMORY_MESSAGE = ("The {device} ran out of memory while sketching; try fewer stroke counts, fewer seeds or "
                         "a smaller image, or run the server on a device with more memory.")
INTERNAL_MESSAGE = "The sketch failed because of an unexpected error in the sketch server; see its log."


def finite(value: float) -> float | None:
    """``value``, or ``None`` when it is NaN or infinite (JSON has no such numbers)."""
    return value if math.isfinite(value) else None


def progress_body(progress: Progress) -> dict[str, Any]:
    """The API's progress object: ``{"iteration", "total", "best_loss": {"<strokes>": loss}}``."""
    return {
        "iteration": progress.iteration,
        "total": progress.total,
        "best_loss": {str(count): finite(float(loss)) for count, loss in progress.best_loss.items()},
    }


def result_body(result: SketchResult) -> dict[str, Any]:
    """The API's result object: the image size and each level's strokes as path data in image pixels."""
    return {
        "width": result.width,
        "height": result.height,
        "levels": [
            {
                "strokes": level.strokes,
                "stroke_width": float(level.stroke_width),
                "paths": [path_data(stroke) for stroke in level.points.detach().cpu().double().numpy()],
                "loss": finite(float(level.loss)),
            }
            for level in result.levels
        ],
    }


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device (GPU or CPU) ran out of memory."""
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class JobQueue:
    """Submits, cancels and reports jobs, and owns the single worker thread that runs them."""

    def __init__(self, store: JobStore, models: ModelCache, max_pixels: int = DEFAULT_MAX_PIXELS,
                 idle_poll_s: float = 1.0) -> None:
        self.store = store
        self.models = models
        self.max_pixels = max_pixels
        self.models_key = models_identity(models.spec)
        self._idle_poll_s = idle_poll_s
        self._lock = threading.Lock()  # orders claiming a job against cancelling it
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._current: str | None = None
        self._cancel = threading.Event()
        self._progress: dict[str, dict[str, Any]] = {}
        self._thread: threading.Thread | None = None
        self.workers = WorkerBoard()
        self.worker = this_process("local", str(models.device))
        self.workers.register(self.worker)

    # -- API side --------------------------------------------------------------------------------
    def cache_key(self, image: bytes, params: SketchParams) -> str:
        """The key under which identical submissions share one job."""
        return cache_key(image, params, self.models_key)

    def find_reusable(self, key: str) -> Job | None:
        """An earlier identical job that is queued, running or succeeded."""
        return self.store.find_reusable(key)

    def submit(self, image: bytes, params: SketchParams, key: str, client: str = DEFAULT_CLIENT) -> Job:
        """Queue ``client``'s job for a validated image (or return the identical one already known); wake the worker."""
        job, created = self.store.submit(image, params, key, client)
        if created:
            log.info("job %s queued for %s (strokes %s, seeds %d, %d iterations; %d waiting or running)", job.id,
                     client, ",".join(map(str, params.strokes)), params.seeds, params.iterations,
                     self.queue_length())
            self._wake.set()
        else:
            log.info("job %s reused for an identical submission (%s)", job.id, job.status)
        return job

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once, or a running one (the optimizer stops within one step)."""
        with self._lock:
            before, job = self.store.cancel(job_id, CANCELLED_MESSAGE)
            if job is None:
                return None
            if before == "running":
                if self._current == job_id:
                    self._cancel.set()
                live = self._progress.get(job_id)
                if live is not None:
                    self.store.save_progress(job_id, live)
                    job = self.store.get(job_id) or job
        if before == "queued":
            log.info("job %s cancelled while queued (waited %.1f s)", job_id, time.time() - job.created_at)
        elif before == "running":
            log.info("job %s cancel requested while running", job_id)
        return job

    def progress(self, job: Job) -> dict[str, Any] | None:
        """The job's latest progress: live while it runs, else as stored."""
        if job.status == "running":
            return self._progress.get(job.id)
        return job.progress

    def queue_length(self) -> int:
        """Jobs queued or running."""
        return self.store.count("queued", "running")

    # -- worker side -----------------------------------------------------------------------------
    def start(self) -> None:
        """Put interrupted jobs back in the queue and start the worker thread."""
        recovered = self.store.recover()
        if recovered:
            log.info("%d unfinished job(s) from an earlier run will run again", recovered)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="clipasso-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the worker; a running job is interrupted after its current step and stays queued for next time.

        Returns whether the worker thread has ended (else it is still busy, e.g. loading models).
        """
        self._stopping.set()
        with self._lock:
            self._cancel.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the worker is still busy; its job will run again at the next start")
            return False
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                job = self.store.claim_next(self.worker.as_dict())
                if job is not None and self._stopping.is_set():  # stop() came between the loop test and the claim
                    self.store.requeue(job.id)
                    return
                if job is not None:
                    self._current = job.id
                    self._cancel = threading.Event()
                    self.workers.busy(self.worker.name, job.id)
            if job is None:
                self._wake.wait(self._idle_poll_s)
                self._wake.clear()
                continue
            try:
                self._run_job(job)
            except Exception:  # never let the worker die; the job is already marked by _run_job when possible
                log.exception("job %s: unexpected error in the worker", job.id)
                self.store.fail(job.id, "internal_error", INTERNAL_MESSAGE)
            finally:
                with self._lock:
                    self._current = None
                self._progress.pop(job.id, None)
                self.workers.done(self.worker.name, finished=not self._stopping.is_set())

    def _run_job(self, job: Job) -> None:
        started = time.monotonic()
        waited = (job.started_at or time.time()) - job.created_at
        log.info("job %s started on %s (client %s; waited %.1f s in the queue; run %d)", job.id, self.worker.name,
                 job.client, waited, job.runs)
        cancel = self._cancel
        clock = JobClock()
        snapshots = SnapshotRecorder(self.store, job.id, job.params.iterations)

        def report(progress: Progress) -> None:
            self._progress[job.id] = {**progress_body(progress), **clock.times(progress.iteration, progress.total)}

        try:
            models = self.models.get()
            image = read_image(self.store.image_path(job).read_bytes(), self.max_pixels)
            try:
                result = sketch_image(image, job.params, models, progress=report, cancel=cancel,
                                      snapshot=snapshots.record)
            finally:
                snapshots.finish()
        except ClipassoError as error:
            self._failed(job, error.code, str(error), started)
            return
        except Exception as error:
            if is_out_of_memory(error):
                if self.models.device.type == "cuda":
                    torch.cuda.empty_cache()
                device = "GPU" if self.models.device.type == "cuda" else "computer"
                self._failed(job, "out_of_memory", OUT_OF_MEMORY_MESSAGE.format(device=device), started)
                return
            log.exception("job %s: unexpected error while sketching", job.id)
            self._failed(job, "internal_error", INTERNAL_MESSAGE, started)
            return
        elapsed = time.monotonic() - started
        progress = self._progress.get(job.id)
        if result.cancelled or cancel.is_set():
            if self._stopping.is_set() and self.store.requeue(job.id):
                log.info("job %s interrupted by shutdown after %.1f s; it will run again at the next start",
                         job.id, elapsed)
            else:
                self.store.save_progress(job.id, progress)
                log.info("job %s cancelled (ran %.1f s, %d of %d steps)", job.id, elapsed, result.iterations,
                         job.params.iterations)
            return
        if self.store.succeed(job.id, result_body(result), progress):
            log.info("job %s succeeded (ran %.1f s)", job.id, elapsed)
        else:
            log.info("job %s finished after it was cancelled (ran %.1f s); result discarded", job.id, elapsed)

    def _failed(self, job: Job, code: str, message: str, started: float) -> None:
        if self.store.fail(job.id, code, message, self._progress.get(job.id)):
            log.info("job %s failed (ran %.1f s): %s: %s", job.id, time.monotonic() - started, code, message)
        else:
            log.info("job %s stopped after it was cancelled (ran %.1f s)", job.id, time.monotonic() - started)
