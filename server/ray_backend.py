"""The Ray backend of a studio server: jobs from the one queue run on worker actors across a Ray cluster.

``clipasso-server --ray ADDRESS`` joins a Ray cluster and starts one :class:`SketchActor` per GPU
(``num_gpus=1``: Ray pins the device), or ``--ray-workers N`` actors on the CPUs of a cluster without
GPUs. A dispatcher thread in the server hands the next queued job (round-robin across clients, see
:meth:`JobStore.claim_next`) to each idle actor, polls busy actors for progress and snapshots every
:data:`POLL_INTERVAL_S` and writes snapshots and outcomes to the store: the server stays its only writer.

An actor that dies (its process killed, its machine gone) is restarted by Ray (``max_restarts=-1``);
its job goes back to the queue and the next idle actor runs it. A finished job is never run again: the
store accepts an outcome only for a job that is still running. The actors belong to the server process,
so Ray ends them when the server dies; a restarted server finds its unfinished jobs queued again.
Ray is imported only here and only when ``--ray`` is given.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from clipasso_core.errors import ClipassoError
from clipasso_core.image import DEFAULT_MAX_PIXELS

from .config import DEFAULT_KEEP_DAYS, DEFAULT_STUCK_AFTER_S
from .job_status import JobStatus
from .model_cache import ModelCache
from .progress import JobClock
from .ray_actor import SketchActor
from .snapshots import SnapshotRecorder
from .store import Job, JobStore
from .worker import IMAGE_MISSING_OUTCOME, INTERNAL_MESSAGE, JobQueue, Outcome, invalid_stored_outcome
from .workers import WorkerBoard, WorkerInfo

log = logging.getLogger("clipasso_server")

INSTALL_HINT = "--ray needs Ray, which is not installed; install it with: pip install 'clipasso-inkscape[ray]'."
POLL_INTERVAL_S = 0.5
"""How often a busy actor is asked for its job's progress."""
TICK_S = 0.05
"""The longest the dispatcher waits for news before it looks at the queue again."""
ACTOR_THREADS = 4
"""Concurrent calls an actor answers: its one job's ``run`` plus ``poll`` and ``cancel``."""


class RayBackendError(ClipassoError):
    """Ray is missing, the cluster cannot be reached, or it has nothing to run workers on."""

    code = "ray_unavailable"


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`RayBackendError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayBackendError(INSTALL_HINT) from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, with a clear message, when nothing listens at a ``HOST:PORT`` address (Ray would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto', 'ray://…' and other forms are left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout).close()
    except OSError as error:
        raise RayBackendError(f"cannot reach the Ray cluster at '{address}' ({error.strerror or error}); start it "
                              "with 'ray start --head' and pass the address it prints.") from None


def connect(address: str) -> float:
    """Join the Ray cluster at ``address`` (``auto``: the one started here); returns how many GPUs it has."""
    ray = import_ray()
    check_reachable(address)
    try:
        ray.init(address=address, namespace="clipasso", log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise RayBackendError(f"cannot join the Ray cluster at '{address}' ({str(error).splitlines()[0]}); start "
                              "it first with 'ray start --head' and pass its address.") from None
    return float(ray.cluster_resources().get("GPU", 0))


def worker_plan(requested: int | None, gpus: float) -> tuple[int, int]:
    """How many worker actors to start and how many GPUs each takes (1, or 0 on a cluster without GPUs)."""
    if gpus >= 1:
        return (requested or int(gpus)), 1
    if requested:
        return requested, 0
    raise RayBackendError("the Ray cluster has no GPUs; pass --ray-workers N to run N workers on its CPUs.")


@dataclass
class _Slot:
    """The dispatcher's view of one actor and the Ray calls it is waiting for."""

    name: str
    actor: Any
    status: str = "starting"
    info: dict[str, Any] | None = None
    job: Job | None = None
    ready_ref: Any = None
    run_ref: Any = None
    poll_ref: Any = None
    polled_at: float = 0.0
    clock: JobClock | None = None
    snapshots: SnapshotRecorder | None = None


class RayJobQueue(JobQueue):
    """The job queue with Ray worker actors in place of the in-process worker thread."""

    def __init__(self, store: JobStore, models: ModelCache, workers: int, gpus_per_worker: int,
                 max_pixels: int = DEFAULT_MAX_PIXELS, stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
                 keep_days: float = DEFAULT_KEEP_DAYS) -> None:
        super().__init__(store, models, max_pixels=max_pixels, stuck_after_s=stuck_after_s, keep_days=keep_days)
        self.workers = WorkerBoard()  # the actors register themselves once they are up
        self._count = workers
        self._gpus = gpus_per_worker
        self._slots: list[_Slot] = []
        self._running: dict[str, _Slot] = {}

    # -- API side --------------------------------------------------------------------------------
    def _stop_running(self, job_id: str) -> None:
        """Ask the actor running ``job_id`` to stop it after its current step (called with the lock held)."""
        slot = self._running.get(job_id)
        if slot is not None:
            slot.actor.cancel.remote(job_id)

    # -- dispatcher side -------------------------------------------------------------------------
    def start(self) -> None:
        """Put interrupted jobs back in the queue, start the actors and the dispatcher thread."""
        ray = import_ray()
        self.recover_interrupted()
        self.purge_expired()
        remote = ray.remote(SketchActor).options(
            num_cpus=0 if self._gpus else 1, num_gpus=self._gpus, max_restarts=-1, max_task_retries=0,
            max_concurrency=ACTOR_THREADS)
        device = "cuda" if self._gpus else "cpu"
        for number in range(self._count):
            name = f"ray-{number}"
            slot = _Slot(name, remote.remote(name, self.models.spec, device))
            slot.ready_ref = slot.actor.ready.remote()
            self._slots.append(slot)
            self.workers.register(WorkerInfo(name, None, None, device), status="starting")
        log.info("starting %d Ray worker(s) on %s", self._count, "one GPU each" if self._gpus else "CPUs")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="clipasso-ray-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop dispatching; running jobs go back to the queue for the next start, and the actors end."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for slot in self._slots:
            if slot.job is not None and self.store.requeue(slot.job.id):
                log.info("job %s interrupted by shutdown; it will run again at the next start", slot.job.id)
        if self._unsaved and not self._flush_unsaved():
            log.warning("%d finished job(s) could not be saved before the stop; they will run again at the next "
                        "start", len(self._unsaved))
        import_ray().shutdown()
        return self._thread is None or not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
                self.purge_expired()
            except Exception as error:  # the dispatcher must outlive any surprise (e.g. a failing store)
                self._trouble("dispatching jobs to the Ray workers", error)
                self._pause()
            else:
                self._recovered()

    def _tick(self) -> None:
        ray = import_ray()
        pending: dict[Any, tuple[_Slot, str]] = {}
        for slot in self._slots:
            for kind, ref in (("ready", slot.ready_ref), ("run", slot.run_ref), ("poll", slot.poll_ref)):
                if ref is not None:
                    pending[ref] = (slot, kind)
        if pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=TICK_S)
            if done:
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        else:
            done = []
            time.sleep(TICK_S)
        for ref in done:
            slot, kind = pending[ref]
            getattr(self, f"_on_{kind}")(slot, ref)
        if self._unsaved and not self._flush_unsaved():
            return  # storage still fails: save the finished jobs before running more
        for slot in self._slots:
            if slot.status == "idle" and not self._stopping.is_set() and not self._dispatch(slot):
                break
        now = time.monotonic()
        for slot in self._slots:
            if slot.status == "busy" and slot.poll_ref is None and now - slot.polled_at >= POLL_INTERVAL_S:
                slot.poll_ref, slot.polled_at = slot.actor.poll.remote(), now

    def _dispatch(self, slot: _Slot) -> bool:
        """Give the next queued job to an idle actor; ``False`` when the queue is empty."""
        with self._lock:
            job = self.store.claim_next(slot.info)
            if job is None:
                return False
            slot.job, slot.status = job, "busy"
            self._running[job.id] = slot
        problem = None
        if job.params is None:
            problem = invalid_stored_outcome(job)
        else:
            try:
                image = self.store.image_path(job).read_bytes()
            except FileNotFoundError:
                problem = IMAGE_MISSING_OUTCOME
        if problem is not None:
            self._release(slot)
            slot.status = "idle"
            self._record(job, problem, time.monotonic())
            return True
        assert job.params is not None
        slot.clock, slot.snapshots = JobClock(), SnapshotRecorder(self.store, job.id, job.params.iterations)
        self.workers.busy(slot.name, job.id)
        slot.run_ref = slot.actor.run.remote(job.id, image, job.params.model_dump(mode="json"), self.max_pixels)
        waited = (job.started_at or time.time()) - job.created_at
        log.info("job %s started on %s (client %s; waited %.1f s in the queue; run %d)", job.id, slot.name,
                 job.client, waited, job.runs)
        return True

    def _release(self, slot: _Slot) -> Job | None:
        with self._lock:
            job, slot.job, slot.run_ref, slot.poll_ref = slot.job, None, None, None
            if job is not None:
                self._running.pop(job.id, None)
        return job

    def _on_ready(self, slot: _Slot, ref: Any) -> None:
        ray = import_ray()
        slot.ready_ref = None
        try:
            answer = ray.get(ref)
        except ray.exceptions.RayActorError:  # died while starting: Ray restarts it, ask again
            slot.ready_ref = slot.actor.ready.remote()
            return
        slot.info, slot.status = answer["worker"], "idle"
        self.workers.register(WorkerInfo(**answer["worker"]))
        if answer["models_error"]:
            log.warning("worker %s could not load the models: %s", slot.name, answer["models_error"])
        log.info("worker %s ready on %s (pid %d, %s)", slot.name, slot.info["host"], slot.info["pid"],
                 slot.info["device"])

    def _on_poll(self, slot: _Slot, ref: Any) -> None:
        ray = import_ray()
        slot.poll_ref = None
        try:
            answer = ray.get(ref)
        except ray.exceptions.RayError:  # the run call reports what happened to the actor
            return
        job = slot.job
        if job is not None and answer["job"] == job.id:
            self._relay(slot, job, answer)

    def _on_run(self, slot: _Slot, ref: Any) -> None:
        ray = import_ray()
        job = self._release(slot)
        assert job is not None and job.params is not None
        try:
            answer = ray.get(ref)
        except ray.exceptions.RayActorError:
            self._lost(slot, job)
            return
        except ray.exceptions.RayError as error:
            self._trouble(f"running job {job.id} on worker {slot.name}", error)
            answer = {"status": JobStatus.FAILED, "error": {"code": "internal_error", "message": INTERNAL_MESSAGE}}
        started = time.monotonic() - float(answer.get("run_s", 0.0))
        try:
            self._relay(slot, job, answer)
            if slot.snapshots is not None:
                slot.snapshots.finish()  # before the job is marked finished: its snapshots end at its result
            progress = self._progress.get(job.id)
            if answer["status"] == JobStatus.CANCELLED:
                self.store.save_progress(job.id, progress)
                log.info("job %s cancelled (ran %.1f s, %d of %d steps)", job.id, time.monotonic() - started,
                         answer.get("iterations", 0), job.params.iterations)
            elif answer["status"] == JobStatus.SUCCEEDED:
                self._record(job, Outcome(JobStatus.SUCCEEDED, progress, result=answer["result"]), started)
            else:
                if answer.get("details"):
                    log.error("job %s: unexpected error on worker %s:\n%s", job.id, slot.name, answer["details"])
                error = answer["error"]
                self._record(job, Outcome(JobStatus.FAILED, progress, code=error["code"], message=error["message"]), started)
        finally:
            slot.status, slot.clock, slot.snapshots = "idle", None, None
            self.workers.done(slot.name)
            self._progress.pop(job.id, None)

    def _relay(self, slot: _Slot, job: Job, answer: dict[str, Any]) -> None:
        """Keep an actor's progress (with the job's times) and record its snapshots."""
        progress = answer.get("progress")
        if progress is not None and slot.clock is not None:
            self._progress[job.id] = {**progress, **slot.clock.times(progress["iteration"], progress["total"])}
        if slot.snapshots is not None:
            for snapshot in answer.get("snapshots") or ():
                slot.snapshots.record(snapshot)

    def _lost(self, slot: _Slot, job: Job) -> None:
        """The actor died while running ``job``: the job goes back to the queue, the actor is restarting."""
        self._progress.pop(job.id, None)
        again = self.store.requeue(job.id)
        log.warning("worker %s was lost while running job %s%s", slot.name, job.id,
                    "; the job is queued again" if again else "")
        slot.status, slot.info, slot.clock, slot.snapshots = "starting", None, None, None
        self.workers.set_status(slot.name, "starting")
        slot.ready_ref = slot.actor.ready.remote()
