"""The job queue: submissions go to the store; one worker thread runs them one at a time on the device.

The worker is a supervisor loop (:meth:`JobQueue._supervise`) around :meth:`JobQueue.run_claimed`, which
runs one claimed job. No exception in claiming, loading, running, storing or failing a job ends the loop:
it is logged once (repeats are counted, not logged again), remembered for ``/v1/health``, and the loop
backs off and carries on. An outcome the store cannot write (disk full, read-only) is kept in memory and
written when storage works again, so computed strokes are never thrown away.

Live progress is kept in memory (the optimizer reports after every step); the store keeps everything
that must survive a restart. Every job state change is logged as one line with the job id and timings.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from clipasso_core.errors import ClipassoError, ImageError, ImageTooLargeError
from clipasso_core.image import DEFAULT_MAX_PIXELS, read_image
from clipasso_core.optimize import Progress
from clipasso_core.params import SketchParams
from clipasso_core.sketch import LevelSketch, SketchResult, sketch_image
from clipasso_core.snapshot import finite_or_none

from .config import DEFAULT_KEEP_DAYS, DEFAULT_STUCK_AFTER_S
from .job_status import ACTIVE, JobStatus
from .model_cache import ModelCache, models_identity
from .progress import JobClock
from .snapshots import SnapshotRecorder
from .storage_faults import storage_fault
from .store import DEFAULT_CLIENT, Job, JobStore, cache_key
from .workers import WorkerBoard, this_process

log = logging.getLogger("clipasso_server")

CANCELLED_MESSAGE = "The job was cancelled."
OUT_OF_MEMORY_MESSAGE = ("The {device} ran out of memory while sketching; try fewer stroke counts, fewer seeds or "
                         "a smaller image, or run the server on a device with more memory.")
INTERNAL_MESSAGE = "The sketch failed because of an unexpected error in the sketch server; see its log."
INVALID_STORED_MESSAGE = ("This job was stored with parameters this version of the sketch server does not accept "
                          "({reason}); submit the image again.")
IMAGE_MISSING_MESSAGE = "The uploaded image of this job is missing or damaged on the server; submit it again."
PURGE_EVERY_S = 3600.0
"""How often the worker deletes finished jobs older than the retention time (also once at start)."""
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0


def progress_body(progress: Progress) -> dict[str, Any]:
    """The API's progress object: ``{"iteration", "total", "best_loss": {"<strokes>": loss}}``."""
    return {
        "iteration": progress.iteration,
        "total": progress.total,
        "best_loss": {str(count): finite_or_none(loss) for count, loss in progress.best_loss.items()},
    }


def result_body(result: SketchResult) -> dict[str, Any]:
    """The API's result object: the image size and each level's strokes as path data in image pixels."""
    return {"width": result.width, "height": result.height, "levels": [level_body(level) for level in result.levels]}


def level_body(level: LevelSketch) -> dict[str, Any]:
    """One level of the result; ``widths`` / ``opacities`` (per path) only when the job optimized them."""
    body: dict[str, Any] = {
        "strokes": level.strokes,
        "stroke_width": float(level.stroke_width),
        "paths": level.path_data(),
        "loss": finite_or_none(level.loss),
    }
    if level.widths is not None:
        body["widths"] = [round(float(width), 4) for width in level.widths]
    if level.opacities is not None:
        body["opacities"] = [round(float(opacity), 4) for opacity in level.opacities]
    return body


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device (GPU or CPU) ran out of memory."""
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as it must be written to the store: succeeded with a result, or failed with a reason."""

    status: JobStatus  # succeeded or failed
    progress: dict[str, Any] | None
    result: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None


IMAGE_MISSING_OUTCOME = Outcome(JobStatus.FAILED, None, code="image_missing", message=IMAGE_MISSING_MESSAGE)
"""A job whose uploaded image is gone or damaged."""


def invalid_stored_outcome(job: Job) -> Outcome:
    """A job whose stored parameters this version cannot read: failed, with the reason."""
    reason = job.params_error or "unreadable parameters"
    return Outcome(JobStatus.FAILED, None, code="invalid_stored_job", message=INVALID_STORED_MESSAGE.format(reason=reason))


@dataclass(frozen=True)
class WorkerState:
    """What ``/v1/health`` says about the worker thread."""

    alive: bool
    current_job: str | None
    phase: str  # idle, loading_models, sketching, saving, stopped
    seconds_since_progress: float | None
    stuck: bool
    last_error: str | None
    unsaved_jobs: int


class JobQueue:
    """Submits, cancels and reports jobs, and owns the single worker thread that runs them."""

    def __init__(self, store: JobStore, models: ModelCache, max_pixels: int = DEFAULT_MAX_PIXELS,
                 idle_poll_s: float = 1.0, stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
                 keep_days: float = DEFAULT_KEEP_DAYS,
                 backoff_max_s: float = BACKOFF_MAX_S) -> None:
        self.store = store
        self.models = models
        self.max_pixels = max_pixels
        self.models_key = models_identity(models.spec, models.device)
        self.stuck_after_s = stuck_after_s
        self.keep_days = keep_days
        self._purged_at: float | None = None
        self._idle_poll_s = idle_poll_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = 0.0
        self._lock = threading.Lock()  # orders claiming a job against cancelling it
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._current: str | None = None
        self._phase = "idle"
        self._beat = time.monotonic()  # the last sign of progress on the current job
        self._cancel = threading.Event()
        self._progress: dict[str, dict[str, Any]] = {}
        self._unsaved: dict[str, tuple[Outcome, dict[str, str]]] = {}  # job id -> (outcome, why not stored yet)
        self._last_error: str | None = None
        self._last_trouble: tuple[str, str] | None = None
        self._repeats = 0
        self._thread: threading.Thread | None = None
        self.workers = WorkerBoard()
        self.worker = this_process("local", str(models.device))
        self.workers.register(self.worker)

    # -- API side --------------------------------------------------------------------------------
    def cache_key(self, image: bytes, params: SketchParams) -> str:
        """The key under which identical submissions share one job."""
        return cache_key(image, params, self.models_key)

    def find_reusable(self, key: str, image: bytes | None = None) -> Job | None:
        """An earlier identical job that is queued, running or succeeded, with its files whole."""
        return self.store.find_reusable(key, image)

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
            if before == JobStatus.RUNNING:
                self._stop_running(job_id)
                self._unsaved.pop(job_id, None)
                live = self._progress.get(job_id)
                if live is not None:
                    self.store.save_progress(job_id, live)
                    job = self.store.get(job_id) or job
        if before == JobStatus.QUEUED:
            log.info("job %s cancelled while queued (waited %.1f s)", job_id, time.time() - job.created_at)
        elif before == JobStatus.RUNNING:
            log.info("job %s cancel requested while running", job_id)
        return job

    def _stop_running(self, job_id: str) -> None:
        """Ask the running job ``job_id`` to stop after its current step (called with the lock held)."""
        if self._current == job_id:
            self._cancel.set()

    def progress(self, job: Job) -> dict[str, Any] | None:
        """The job's latest progress: live while it runs, else as stored."""
        if job.status == JobStatus.RUNNING:
            unsaved = self._unsaved.get(job.id)
            return unsaved[0].progress if unsaved else self._progress.get(job.id)
        return job.progress

    def unsaved(self, job_id: str) -> tuple[Outcome, dict[str, str]] | None:
        """A finished job's outcome the store could not write yet and why (``{"code", "message"}``), or ``None``."""
        return self._unsaved.get(job_id)

    def unsaved_ids(self) -> list[str]:
        """Ids of finished jobs whose outcome waits in memory for the store."""
        return list(self._unsaved)

    def queue_length(self) -> int:
        """Jobs queued or running."""
        return self.store.count(*ACTIVE)

    def worker_state(self) -> WorkerState:
        """Whether the worker thread lives, what it does, whether it is stuck and the last error it met."""
        alive = self._thread is not None and self._thread.is_alive()
        current = self._current
        quiet = time.monotonic() - self._beat if current is not None else None
        return WorkerState(
            alive=alive, current_job=current, phase=self._phase if alive else "stopped",
            seconds_since_progress=None if quiet is None else round(quiet, 1),
            stuck=alive and quiet is not None and quiet > self.stuck_after_s,
            last_error=self._last_error, unsaved_jobs=len(self._unsaved),
        )

    # -- worker side -----------------------------------------------------------------------------
    def start(self) -> None:
        """Put interrupted jobs back in the queue and start the worker thread."""
        self.recover_interrupted()
        self.purge_expired()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._supervise, name="clipasso-worker", daemon=True)
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
        if self._unsaved and not self._flush_unsaved():
            log.warning("%d finished job(s) could not be saved before the stop; they will run again at the next "
                        "start", len(self._unsaved))
        return True

    def _supervise(self) -> None:
        """The worker thread: claim → run → store, forever; no exception ends it, only :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                if self._unsaved and not self._flush_unsaved():
                    self._pause()  # storage still fails: finish saving before running more jobs
                    continue
                job = self._claim()
                if not self._unsaved:
                    self._recovered()
            except Exception as error:
                self._trouble("claiming the next job", error)
                self._pause()
                continue
            if job is None:
                self.purge_expired()
                self._wake.wait(self._idle_poll_s)
                self._wake.clear()
                continue
            try:
                self.run_claimed(job)
            except Exception as error:  # run_claimed records its own failures; this is a fault in that
                self._trouble(f"running job {job.id}", error)
                self._record(job, Outcome(JobStatus.FAILED, self._progress.get(job.id), code="internal_error",
                                          message=INTERNAL_MESSAGE), time.monotonic())
                self._pause()
            finally:
                with self._lock:
                    self._current = None
                    self._phase = "idle"
                self._progress.pop(job.id, None)
                self.workers.done(self.worker.name, finished=not self._stopping.is_set())

    def recover_interrupted(self) -> None:
        """Put the jobs an earlier run left running back in the queue; a store fault is logged, never raised."""
        try:
            recovered = self.store.recover()
        except Exception as error:  # the worker retries the store when it claims; the server still starts
            self._trouble("putting interrupted jobs back in the queue", error)
        else:
            if recovered:
                log.info("%d unfinished job(s) from an earlier run will run again", recovered)

    def purge_expired(self) -> None:
        """Delete finished jobs older than ``keep_days`` with their files, at most every ``PURGE_EVERY_S``.

        ``keep_days`` 0 keeps everything. An error is logged (once) and the purge is tried again later.
        """
        now = time.monotonic()
        if self.keep_days <= 0 or (self._purged_at is not None and now - self._purged_at < PURGE_EVERY_S):
            return
        self._purged_at = now
        try:
            removed = self.store.purge_finished(time.time() - self.keep_days * 86400)
        except Exception as error:
            self._trouble("deleting old finished jobs", error)
            return
        if removed:
            log.info("deleted %d finished job(s) older than %g day(s) with their files", removed, self.keep_days)

    def _claim(self) -> Job | None:
        with self._lock:
            job = self.store.claim_next(self.worker.as_dict())
            if job is not None and self._stopping.is_set():  # stop() came between the loop test and the claim
                self.store.requeue(job.id)
                return None
            if job is not None:
                self._current = job.id
                self._phase = "starting"
                self._beat = time.monotonic()
                self._cancel = threading.Event()
                self.workers.busy(self.worker.name, job.id)
            return job

    def run_claimed(self, job: Job) -> None:
        """Run one claimed (running) job to its end and record the outcome; records its own failures."""
        started = time.monotonic()
        waited = (job.started_at or time.time()) - job.created_at
        log.info("job %s started on %s (client %s; waited %.1f s in the queue; run %d)", job.id, self.worker.name,
                 job.client, waited, job.runs)
        cancel = self._cancel
        if job.params is None:
            self._record(job, invalid_stored_outcome(job), started)
            return

        clock = JobClock()
        snapshots = SnapshotRecorder(self.store, job.id, job.params.iterations)

        def report(progress: Progress) -> None:
            self._progress[job.id] = {**progress_body(progress), **clock.times(progress.iteration, progress.total)}
            self._beat = time.monotonic()

        try:
            self._phase = "loading_models"
            models = self.models.get()
            self._phase = "reading_image"
            image = self._read_image(job)
            if image is None:
                self._record(job, IMAGE_MISSING_OUTCOME, started)
                return
            self._phase = "sketching"
            self._beat = time.monotonic()
            try:
                result = sketch_image(image, job.params, models, progress=report, cancel=cancel,
                                      snapshot=snapshots.record)
            finally:
                snapshots.finish()
        except ClipassoError as error:
            self._record(job, Outcome(JobStatus.FAILED, self._progress.get(job.id), code=error.code, message=str(error)),
                         started)
            return
        except Exception as error:
            if is_out_of_memory(error):
                if self.models.device.type == "cuda":
                    torch.cuda.empty_cache()
                device = "GPU" if self.models.device.type == "cuda" else "computer"
                self._record(job, Outcome(JobStatus.FAILED, self._progress.get(job.id), code="out_of_memory",
                                          message=OUT_OF_MEMORY_MESSAGE.format(device=device)), started)
                return
            log.exception("job %s: unexpected error while sketching", job.id)
            self._record(job, Outcome(JobStatus.FAILED, self._progress.get(job.id), code="internal_error",
                                      message=INTERNAL_MESSAGE), started)
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
        self._phase = "saving"
        self._record(job, Outcome(JobStatus.SUCCEEDED, progress, result=result_body(result)), started)

    def _read_image(self, job: Job) -> Any:
        """The job's decoded image, or ``None`` when its file is gone or damaged (it decoded when submitted)."""
        try:
            data = self.store.image_path(job).read_bytes()
        except OSError:  # gone, or not a readable file any more
            return None
        try:
            return read_image(data, self.max_pixels)
        except ImageTooLargeError:  # whole, but over a lower limit this server was restarted with: say so
            raise
        except ImageError:
            return None

    def _record(self, job: Job, outcome: Outcome, started: float) -> None:
        """Write ``outcome`` to the store, retrying a failing write; keep it in memory if storage still fails.

        A result the store refuses for another reason than a storage fault is recorded as an internal error.
        """
        elapsed = time.monotonic() - started
        for attempt in range(3):
            try:
                written = self._write(job.id, outcome)
            except Exception as error:
                fault = storage_fault(error, self.store.data_dir)
                self._trouble(f"storing the outcome of job {job.id}", error)
                if fault is None and outcome.status == JobStatus.SUCCEEDED:
                    outcome = Outcome(JobStatus.FAILED, outcome.progress, code="internal_error", message=INTERNAL_MESSAGE)
                elif attempt == 2:
                    why = {"code": fault.code if fault else "internal_error",
                           "message": fault.message if fault else INTERNAL_MESSAGE}
                    self._unsaved[job.id] = (outcome, why)
                    log.warning("job %s %s after %.1f s but cannot be saved yet; kept in memory and retried", job.id,
                                outcome.status, elapsed)
                    return
                time.sleep(BACKOFF_FIRST_S * (attempt + 1))
                continue
            self._log_outcome(job.id, outcome, written, elapsed)
            return

    def _write(self, job_id: str, outcome: Outcome) -> bool:
        if outcome.status == JobStatus.SUCCEEDED:
            assert outcome.result is not None
            return self.store.succeed(job_id, outcome.result, outcome.progress)
        return self.store.fail(job_id, outcome.code or "internal_error", outcome.message or INTERNAL_MESSAGE,
                               outcome.progress)

    def _flush_unsaved(self) -> bool:
        """Try to write every outcome kept in memory; ``False`` when storage still fails (run no more jobs yet)."""
        blocked = False
        for job_id, (outcome, _) in list(self._unsaved.items()):
            try:
                written = self._write(job_id, outcome)
            except Exception as error:
                self._trouble(f"storing the outcome of job {job_id}", error)
                blocked = blocked or storage_fault(error, self.store.data_dir) is not None
                continue
            self._unsaved.pop(job_id, None)
            self._log_outcome(job_id, outcome, written, None)
        if not self._unsaved:
            self._recovered()
        return not blocked

    def _log_outcome(self, job_id: str, outcome: Outcome, written: bool, elapsed: float | None) -> None:
        ran = "" if elapsed is None else f" (ran {elapsed:.1f} s)"
        if not written:
            log.info("job %s ended after it was cancelled%s; its outcome is discarded", job_id, ran)
        elif outcome.status == JobStatus.SUCCEEDED:
            log.info("job %s succeeded%s", job_id, ran)
        else:
            log.info("job %s failed%s: %s: %s", job_id, ran, outcome.code, outcome.message)

    def _trouble(self, what: str, error: BaseException) -> None:
        """Log an error of the worker once (a repeat of the same one is only counted) and remember it for health."""
        fault = storage_fault(error, self.store.data_dir)
        summary = fault.message if fault is not None else f"{type(error).__name__}: {error}"
        self._last_error = f"{what}: {summary}"
        key = (what.split(" job ")[0], summary)
        if key == self._last_trouble:
            self._repeats += 1
            return
        if self._repeats:
            log.warning("the previous worker error repeated %d more time(s)", self._repeats)
        self._last_trouble, self._repeats = key, 0
        if fault is not None:
            log.error("worker: %s", self._last_error)
        else:
            log.error("worker: error while %s", what, exc_info=error)

    def _recovered(self) -> None:
        if self._last_trouble is not None:
            if self._repeats:
                log.warning("the previous worker error repeated %d more time(s)", self._repeats)
            self._last_trouble, self._repeats = None, 0
        self._backoff_s = 0.0

    def _pause(self) -> None:
        """Wait before trying again, longer each time in a row (up to the maximum), unless stopping."""
        self._backoff_s = min(self._backoff_max_s, max(BACKOFF_FIRST_S, self._backoff_s * 2))
        self._stopping.wait(self._backoff_s)
