"""The worker loop of every backend: one dispatcher thread hands the next queued job to each idle worker, follows
the busy ones and writes down everything they produce; the store stays its only writer.

The workers come from a :class:`WorkerPool`: :class:`~clipasso_server.worker.LocalWorkers` in this process,
or :class:`~clipasso_server.ray_backend.RayWorkers` on a Ray cluster. The store decides *what* runs next
(:meth:`JobStore.claim_next`, round-robin across clients), the pool *where*, and
:func:`~clipasso_server.runner.run_job` inside each worker *how*. The dispatcher asks a busy worker for
its job's phase, progress and snapshots every ``poll_interval_s``; a worker whose job shows no sign of
progress for ``stuck_after_s`` is reported stuck, and a dispatcher thread that ended, dead, whichever
pool it drives.

No exception in claiming, running, storing or failing a job ends the loop: it is logged once (repeats
are counted, not logged again), remembered for ``/v1/health``, and the loop backs off and carries on.
An outcome the store cannot write (disk full, read-only) is kept in memory and written when storage
works again, so computed strokes are never thrown away; no job is started meanwhile. A worker that
dies (a killed Ray actor) is started again by its pool; its job goes back to the queue. A finished
job is never run again: the store accepts an outcome only for a job that is still running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .config import DEFAULT_KEEP_DAYS, DEFAULT_STUCK_AFTER_S
from .job_status import JobStatus
from .pace import PaceMeter
from .progress import JobClock
from .runner import INTERNAL_MESSAGE, INTERNAL_OUTCOME, Outcome, job_input
from .snapshots import SnapshotRecorder
from .storage_faults import storage_fault
from .store import Job, JobStore
from .worker import Poll, Ready, Report
from .workers import WorkerBoard, WorkerInfo

log = logging.getLogger("clipasso_server")

WATCH_EVERY_S = 1.0
"""How often the dispatcher asks its pool whether its workers can still be reached (see ``WorkerPool.problem``)."""
LOST_GRACE_S = 20.0
"""How long the workers may stay unreachable (a lost Ray head) before the server gives up and exits, saying why:
less than the minute after which Ray itself would end the process without a word."""
PURGE_EVERY_S = 3600.0
"""How often the dispatcher deletes finished jobs older than the retention time (also once at start)."""
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
TICK_S = 0.05
"""The longest the dispatcher waits for a busy worker's news before it looks at the queue again."""


class WorkerLost(Exception):
    """The worker died while answering a call (its process killed, its machine gone); its pool restarts it."""


class WorkerPool(Protocol):
    """Where the workers run: starts them and carries the dispatcher's calls to them, each answered later."""

    poll_interval_s: float
    """How often a busy worker is asked for its job's progress."""

    def planned(self) -> list[tuple[WorkerInfo, bool]]:
        """The workers this pool runs, as known before they start, and whether each is ready at once (else the
        answer to its ``ready`` call says when)."""

    def launch(self) -> list[Any]:
        """Start every planned worker; their handles, in the planned order."""

    def call(self, worker: Any, method: str, *args: Any) -> Any:
        """Call ``method`` of a :class:`~clipasso_server.worker.JobWorker` without waiting; the call's handle."""

    def wait(self, calls: list[Any], timeout: float) -> list[Any]:
        """Wait up to ``timeout`` s for any of ``calls`` to be answered; every answered one."""

    def answer(self, call: Any) -> Any:
        """An answered call's value; :class:`WorkerLost` when its worker died meanwhile."""

    def close(self, timeout: float) -> bool:
        """Stop every worker; whether they all ended within ``timeout`` s."""

    def problem(self) -> str | None:
        """Why the workers cannot be reached now (one sentence, e.g. a lost Ray head), or ``None``; answered at
        once, from a watch thread of the dispatcher, whatever the workers are doing."""


@dataclass(frozen=True)
class WorkerState:
    """What ``/v1/health`` says about the job worker: the dispatcher alive, the quietest busy worker's job."""

    alive: bool
    current_job: str | None
    phase: str  # idle, starting, loading_models, reading_image, sketching, saving, stopped
    seconds_since_progress: float | None
    stuck: bool
    last_error: str | None
    unsaved_jobs: int
    unreachable: str | None = None
    """Why the workers cannot be reached (from the pool), or ``None``."""


@dataclass
class _Slot:
    """The dispatcher's view of one worker and the calls it waits for."""

    name: str
    info: dict[str, Any] | None = None  # None while the worker starts
    worker: Any = None
    job: Job | None = None
    ready_call: Any = None
    run_call: Any = None
    poll_call: Any = None
    polled_at: float = 0.0
    phase: str = "idle"
    beat: float = 0.0  # the last sign of progress on its job
    seen: tuple[str, int | None] | None = None  # the phase and step of that sign
    clock: JobClock | None = None
    snapshots: SnapshotRecorder | None = None

    @property
    def status(self) -> str:
        """``busy`` with a job, ``starting`` until its worker is ready, else ``idle``."""
        return "busy" if self.job is not None else "starting" if self.info is None else "idle"


class Dispatcher:
    """Runs the queued jobs of ``store`` on the workers of ``pool``, one job per worker at a time."""

    def __init__(self, store: JobStore, pool: WorkerPool, max_pixels: int, stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
                 keep_days: float = DEFAULT_KEEP_DAYS, idle_poll_s: float = 1.0,
                 backoff_max_s: float = BACKOFF_MAX_S, wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, lost_grace_s: float = LOST_GRACE_S,
                 pace: PaceMeter | None = None) -> None:
        self.store = store
        self.pace = pace or PaceMeter(monotonic)  # seconds per image-pass of the jobs run here (GET /v1/health)
        self.pool = pool
        self.max_pixels = max_pixels
        self.stuck_after_s = stuck_after_s
        self.keep_days = keep_days
        self.workers = WorkerBoard()
        self._slots: list[_Slot] = []
        for info, ready in pool.planned():
            self.workers.register(info, status="idle" if ready else "starting")
            self._slots.append(_Slot(info.name, info.as_dict() if ready else None))
        self._idle_poll_s = idle_poll_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = 0.0
        self._purged_at: float | None = None
        self._wall_clock, self._monotonic = wall_clock, monotonic
        self._started_wall, self._started_monotonic = wall_clock(), monotonic()
        self._lock = threading.Lock()  # orders claiming a job against cancelling it
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = False  # nothing to wait for and the queue was empty: wait for a submission
        self._progress: dict[str, dict[str, Any]] = {}
        self._unsaved: dict[str, tuple[Outcome, dict[str, str]]] = {}  # job id -> (outcome, why not stored yet)
        self._last_error: str | None = None
        self._last_trouble: tuple[str, str] | None = None
        self._repeats = 0
        self._thread: threading.Thread | None = None
        self._watch: threading.Thread | None = None
        self.lost_grace_s = lost_grace_s
        self._unreachable: tuple[str, float] | None = None  # why, and since when (monotonic)
        self.on_lost: Callable[[str], None] | None = None
        """Called once, with a sentence, when the workers stay unreachable for ``lost_grace_s`` (the app exits)."""

    # -- the server's side -----------------------------------------------------------------------
    def wake(self) -> None:
        """A job was queued: look at the queue now."""
        self._wake.set()

    def cancel(self, job_id: str, message: str) -> tuple[JobStatus | None, Job | None]:
        """Cancel a job in the store; a running one's worker stops it after its current step. Returns its status
        before and the job after (``None`` if unknown)."""
        with self._lock:
            before, job = self.store.cancel(job_id, message)
            if before != JobStatus.RUNNING:
                return before, job
            slot = next((slot for slot in self._slots if slot.job is not None and slot.job.id == job_id), None)
            if slot is not None:
                self.pool.call(slot.worker, "cancel", job_id)
            self._unsaved.pop(job_id, None)
            live = self._progress.get(job_id)
            if live is not None:
                self.store.save_progress(job_id, live)
                job = self.store.get(job_id) or job
        return before, job

    def live_progress(self, job_id: str) -> dict[str, Any] | None:
        """The running job's latest progress (with its times), as its worker last reported it."""
        return self._progress.get(job_id)

    def unsaved(self, job_id: str) -> tuple[Outcome, dict[str, str]] | None:
        """A finished job's outcome the store could not write yet and why (``{"code", "message"}``), or ``None``."""
        return self._unsaved.get(job_id)

    def unsaved_problem(self) -> dict[str, str] | None:
        """Why a finished job's outcome waits in memory for the store (``{"code", "message"}``), or ``None``."""
        return next((why for _, why in list(self._unsaved.values())), None)

    def state(self) -> WorkerState:
        """Whether the dispatcher lives, the quietest busy worker's job and phase, whether it is stuck, the last
        error met."""
        alive = self._thread is not None and self._thread.is_alive()
        now = self._monotonic()
        busy = [(now - slot.beat, job.id, slot.phase) for slot in self._slots if (job := slot.job) is not None]
        quiet, current, phase = max(busy, default=(None, None, "idle"))
        return WorkerState(
            alive=alive, current_job=current, phase=phase if alive else "stopped",
            seconds_since_progress=None if quiet is None else round(quiet, 1),
            stuck=alive and quiet is not None and quiet > self.stuck_after_s,
            last_error=self._last_error, unsaved_jobs=len(self._unsaved),
            unreachable=None if self._unreachable is None else self._unreachable[0],
        )

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Put interrupted jobs back in the queue, start the workers and the dispatcher thread."""
        self.recover_interrupted()
        self.purge_expired()
        for slot, worker in zip(self._slots, self.pool.launch()):
            slot.worker = worker
            if slot.status == "starting":
                slot.ready_call = self.pool.call(worker, "ready")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="clipasso-dispatcher", daemon=True)
        self._thread.start()
        self._watch = threading.Thread(target=self._watch_pool, name="clipasso-pool-watch", daemon=True)
        self._watch.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop dispatching; running jobs stop after their current step and go back to the queue for the next start.

        Returns whether everything has ended (else a worker is still busy, e.g. loading models).
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        loop_ended = self._thread is None or not self._thread.is_alive()
        with self._lock:
            interrupted = [(slot, slot.job) for slot in self._slots if slot.job is not None]
        for slot, job in interrupted:
            try:
                self.pool.call(slot.worker, "cancel", job.id)
                if self.store.requeue(job.id):
                    log.info("job %s interrupted by shutdown; it will run again at the next start", job.id)
            except Exception as error:  # the next start puts it back in the queue
                self._trouble(f"putting job {job.id} back in the queue", error)
        if self._unsaved and not self._flush_unsaved():
            log.warning("%d finished job(s) could not be saved before the stop; they will run again at the next "
                        "start", len(self._unsaved))
        if not self.pool.close(timeout):
            log.warning("the worker is still busy; its job will run again at the next start")
            return False
        return loop_ended

    def recover_interrupted(self) -> None:
        """Put the jobs an earlier run left running back in the queue; a store fault is logged, never raised."""
        try:
            recovered = self.store.recover()
        except Exception as error:  # the dispatcher retries the store when it claims; the server still starts
            self._trouble("putting interrupted jobs back in the queue", error)
        else:
            if recovered:
                log.info("%d unfinished job(s) from an earlier run will run again", recovered)

    def purge_expired(self) -> None:
        """Delete finished jobs older than ``keep_days`` with their files, at most every ``PURGE_EVERY_S``.

        ``keep_days`` 0 keeps everything. An error is logged (once) and the purge is tried again later.
        Ages are counted on :meth:`trusted_time`, so setting the clock forward deletes no fresh job.
        """
        now = self._monotonic()
        if self.keep_days <= 0 or (self._purged_at is not None and now - self._purged_at < PURGE_EVERY_S):
            return
        self._purged_at = now
        try:
            removed = self.store.purge_finished(self.trusted_time() - self.keep_days * 86400)
        except Exception as error:
            self._trouble("deleting old finished jobs", error)
            return
        if removed:
            log.info("deleted %d finished job(s) older than %g day(s) with their files", removed, self.keep_days)

    def trusted_time(self) -> float:
        """Now as a Unix time no later than the wall clock at start plus the monotonic time since: a wall clock set
        forward (by hand, a bad NTP answer, a virtual machine resumed) cannot age a job faster than time passes."""
        return min(self._wall_clock(), self._started_wall + self._monotonic() - self._started_monotonic)

    def _watch_pool(self) -> None:
        """The watch thread: ask the pool every ``WATCH_EVERY_S`` whether its workers can be reached; say so at once
        (health turns degraded), and call ``on_lost`` when they stay unreachable for ``lost_grace_s``."""
        while not self._stopping.wait(WATCH_EVERY_S):
            try:
                problem = self.pool.problem()
            except Exception as error:  # the watch must not die: the pool's check itself failed
                problem = f"The workers cannot be checked ({type(error).__name__}: {error})."
            now = self._monotonic()
            if problem is None:
                if self._unreachable is not None:
                    log.warning("the workers can be reached again")
                self._unreachable = None
                continue
            if self._unreachable is None:
                log.error("%s", problem)
                self._unreachable = (problem, now)
            elif now - self._unreachable[1] >= self.lost_grace_s:
                message = (f"{problem} It has lasted {now - self._unreachable[1]:.0f} s, so clipasso-server stops; "
                           "unfinished jobs run again at its next start.")
                log.error("%s", message)
                if self.on_lost is not None:
                    self.on_lost(message)
                return

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        """The dispatcher thread: news from the workers → save what waits → start jobs → ask for progress."""
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception as error:  # the loop must outlive any surprise (a failing store, a strange answer)
                self._trouble("dispatching jobs to the workers", error)
                self._pause()

    def _tick(self) -> None:
        pending: dict[Any, tuple[_Slot, str]] = {}
        for slot in self._slots:
            for kind, call in (("ready", slot.ready_call), ("run", slot.run_call), ("poll", slot.poll_call)):
                if call is not None:
                    pending[call] = (slot, kind)
        answered: list[Any] = []
        if pending:
            answered = self.pool.wait(list(pending), TICK_S)
        elif self._idle:
            self._wake.wait(self._idle_poll_s)
            self._wake.clear()
        for call in answered:
            slot, kind = pending[call]
            getattr(self, f"_on_{kind}")(slot, call)
        self.purge_expired()
        if self._unsaved and not self._flush_unsaved():
            self._pause()  # storage still fails: finish saving before running more jobs
            return
        claimed = self._fill_idle_slots()
        self._idle = not pending and not claimed
        now = self._monotonic()
        for slot in self._slots:
            if slot.run_call is not None and slot.poll_call is None and now - slot.polled_at >= self.pool.poll_interval_s:
                slot.poll_call, slot.polled_at = self.pool.call(slot.worker, "poll"), now

    def _fill_idle_slots(self) -> bool:
        """Start the next queued job on each idle worker; whether the queue had any (or could not be read)."""
        for slot in self._slots:
            if slot.status != "idle" or self._stopping.is_set():
                continue
            try:
                job = self._claim(slot)
            except Exception as error:
                self._trouble("claiming the next job", error)
                self._pause()
                return True
            if not self._unsaved:
                self._recovered()
            if job is None:
                return False
            self._start(slot, job)
        return True

    def _claim(self, slot: _Slot) -> Job | None:
        with self._lock:
            job = self.store.claim_next(slot.info)
            if job is not None and self._stopping.is_set():  # stop() came between the loop test and the claim
                self.store.requeue(job.id)
                return None
            if job is not None:
                slot.job = job
                slot.phase, slot.beat, slot.seen = "starting", self._monotonic(), None
            return job

    def _start(self, slot: _Slot, job: Job) -> None:
        """Hand a claimed job to its worker; a fault in that fails the job and frees the worker."""
        waited = (job.started_at or time.time()) - job.created_at
        log.info("job %s started on %s (client %s; waited %.1f s in the queue; run %d)", job.id, slot.name,
                 job.client, waited, job.runs)
        self.workers.busy(slot.name, job.id)
        slot.clock = JobClock()
        slot.snapshots = SnapshotRecorder(self.store, job.id, job.params.iterations if job.params else None)
        try:
            slot.run_call = self.pool.call(slot.worker, "run", job_input(self.store, job, self.max_pixels))
        except Exception as error:
            self._trouble(f"starting job {job.id} on worker {slot.name}", error)
            try:
                self._record(job, INTERNAL_OUTCOME, self._monotonic())
            finally:
                self._free(slot, job, finished=True)

    def _release(self, slot: _Slot, job: Job) -> None:
        """Forget the slot's job and calls."""
        with self._lock:
            slot.job, slot.run_call, slot.poll_call = None, None, None
        self._progress.pop(job.id, None)
        self.pace.forget(job.id)

    def _free(self, slot: _Slot, job: Job, finished: bool) -> None:
        """The job's outcome is written down: the worker is idle again."""
        self._release(slot, job)
        slot.phase, slot.clock, slot.snapshots = "idle", None, None
        self.workers.done(slot.name, finished=finished)

    def _on_ready(self, slot: _Slot, call: Any) -> None:
        slot.ready_call = None
        try:
            ready: Ready = self.pool.answer(call)
        except WorkerLost:  # died while starting: its pool restarts it, ask again
            slot.ready_call = self.pool.call(slot.worker, "ready")
            return
        slot.info = ready.worker
        self.workers.register(WorkerInfo(**ready.worker))
        if ready.models_error:
            log.warning("worker %s could not load the models: %s", slot.name, ready.models_error)
        log.info("worker %s ready on %s (pid %d, %s)", slot.name, ready.worker["host"], ready.worker["pid"],
                 ready.worker["device"])

    def _on_poll(self, slot: _Slot, call: Any) -> None:
        slot.poll_call = None
        try:
            poll: Poll = self.pool.answer(call)
        except Exception:  # the run call says what happened to the worker
            return
        job = slot.job
        if job is None or poll.job != job.id:
            return
        seen = (poll.phase, None if poll.progress is None else poll.progress["iteration"])
        if seen != slot.seen:
            slot.seen, slot.beat = seen, self._monotonic()
        slot.phase = poll.phase
        self._relay(slot, job, poll.progress, poll.snapshots)

    def _on_run(self, slot: _Slot, call: Any) -> None:
        job = slot.job
        assert job is not None
        slot.run_call = slot.poll_call = None
        try:
            report: Report = self.pool.answer(call)
        except WorkerLost:
            self._lost(slot, job)
            return
        except Exception as error:
            self._trouble(f"running job {job.id} on worker {slot.name}", error)
            report = Report(INTERNAL_OUTCOME, None, [], 0.0)
        try:
            self._write_down(slot, job, report)
        except Exception as error:  # never leave the job running with no worker on it
            self._trouble(f"storing the outcome of job {job.id}", error)
            self._record(job, replace(INTERNAL_OUTCOME, progress=self._progress.get(job.id)), self._monotonic())
        finally:
            self._free(slot, job, finished=not self._stopping.is_set())

    def _write_down(self, slot: _Slot, job: Job, report: Report) -> None:
        """Store a finished run: its last progress and snapshots, then its outcome (a cancelled run only its progress)."""
        self._relay(slot, job, report.progress, report.snapshots)
        if slot.snapshots is not None:
            slot.snapshots.finish()  # before the job is marked finished: its snapshots end at its result
        slot.phase = "saving"
        outcome = replace(report.outcome, progress=self._progress.get(job.id))
        if outcome.status == JobStatus.CANCELLED:
            if self._stopping.is_set() and self.store.requeue(job.id):
                log.info("job %s interrupted by shutdown; it will run again at the next start", job.id)
                return
            self.store.save_progress(job.id, outcome.progress)
            log.info("job %s cancelled (ran %.1f s, %d of %d steps)", job.id, report.run_s, outcome.iterations,
                     job.params.iterations if job.params else 0)
            return
        if outcome.details:
            log.error("job %s: unexpected error while sketching on worker %s:\n%s", job.id, slot.name,
                      outcome.details)
        self._record(job, outcome, self._monotonic() - report.run_s)

    def _relay(self, slot: _Slot, job: Job, progress: dict[str, Any] | None, snapshots: list[dict[str, Any]]) -> None:
        """Keep a worker's progress (with the job's times) and record its snapshots."""
        if progress is not None and slot.clock is not None:
            self._progress[job.id] = {**progress, **slot.clock.times(progress["iteration"], progress["total"])}
        if progress is not None and job.params is not None:
            self.pace.observe(job.id, job.params, progress["iteration"])
        if slot.snapshots is not None:
            for snapshot in snapshots:
                slot.snapshots.record(snapshot)

    def _lost(self, slot: _Slot, job: Job) -> None:
        """The worker died while running ``job``: the job goes back to the queue, the worker is restarting."""
        self._release(slot, job)
        slot.info, slot.phase, slot.clock, slot.snapshots = None, "idle", None, None
        self.workers.set_status(slot.name, "starting")
        slot.ready_call = self.pool.call(slot.worker, "ready")
        again = self.store.requeue(job.id)
        log.warning("worker %s was lost while running job %s%s", slot.name, job.id,
                    "; the job is queued again" if again else "")

    # -- writing outcomes down -------------------------------------------------------------------
    def _record(self, job: Job, outcome: Outcome, started: float) -> None:
        """Write ``outcome`` to the store, retrying a failing write; keep it in memory if storage still fails.

        A result the store refuses for another reason than a storage fault is recorded as an internal error.
        """
        elapsed = self._monotonic() - started
        for attempt in range(3):
            try:
                written = self._write(job.id, outcome)
            except Exception as error:
                fault = storage_fault(error, self.store.data_dir)
                self._trouble(f"storing the outcome of job {job.id}", error)
                if fault is None and outcome.status == JobStatus.SUCCEEDED:
                    outcome = replace(INTERNAL_OUTCOME, progress=outcome.progress)
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

    # -- trouble ---------------------------------------------------------------------------------
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
