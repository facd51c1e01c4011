"""One worker: a device, its models and at most one running job, behind the interface every backend drives;
and :class:`LocalWorkers`, the pool that runs such workers in this process.

:class:`SketchWorker` runs a job with :func:`~clipasso_server.runner.run_job` and answers four calls:
:meth:`~SketchWorker.ready` (who it is, its models loaded when asked to preload), :meth:`~SketchWorker.run`
(one job to its end), :meth:`~SketchWorker.poll` (the running job's phase, latest progress and the snapshots
since the last poll) and :meth:`~SketchWorker.cancel`. The dispatcher makes these calls through a
:class:`~clipasso_server.dispatcher.WorkerPool`: :class:`LocalWorkers` runs them in threads of the server
(the in-process backend, and the stand-in for Ray actors in the default tests), the Ray pool
(:mod:`clipasso_server.ray_backend`) on actors. A worker never touches the job store: everything it
produces goes back in its answers, and the server writes it down.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Protocol

from clipasso_core.errors import ClipassoError
from clipasso_core.optimize import Progress
from clipasso_core.snapshot import SketchSnapshot

from .model_cache import ModelCache
from .runner import JobInput, Outcome, RunHooks, progress_body, run_job
from .workers import WorkerInfo, this_process

MAX_PENDING_SNAPSHOTS = 32
"""Snapshots kept between two polls; older ones are dropped first (the server keeps only a bounded history)."""


@dataclass(frozen=True)
class Ready:
    """A worker that is up: its identity (``WorkerInfo.as_dict()``) and why its models failed to load, if they did."""

    worker: dict[str, Any]
    models_error: str | None = None


@dataclass(frozen=True)
class Poll:
    """The running job (``None`` when idle), its phase, its latest progress and the snapshots since the last poll."""

    job: str | None
    phase: str
    progress: dict[str, Any] | None
    snapshots: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    """A finished run: its outcome, its last progress, the snapshots not yet polled and how long it ran."""

    outcome: Outcome
    progress: dict[str, Any] | None
    snapshots: list[dict[str, Any]]
    run_s: float


class JobWorker(Protocol):
    """What the dispatcher asks of a worker, wherever it runs."""

    def ready(self) -> Ready:
        """Start up (loading the models when preloading) and say who this worker is."""

    def run(self, job: JobInput) -> Report:
        """Run one job to its end."""

    def poll(self) -> Poll:
        """The running job's state and the snapshots since the last poll."""

    def cancel(self, job_id: str) -> bool:
        """Stop job ``job_id`` after its current step (or before it starts); whether it was running here."""


class SketchWorker:
    """The worker: ``models`` on their device, at most one job at a time; every method is thread-safe."""

    def __init__(self, name: str, models: ModelCache, preload: bool = False) -> None:
        self.name = name
        self.models = models
        self.preload = preload
        self._lock = threading.Lock()
        self._job: str | None = None
        self._phase = "idle"
        self._cancel = threading.Event()
        self._cancel_next: str | None = None  # a job cancelled before its run began here
        self._progress: dict[str, Any] | None = None
        self._snapshots: list[dict[str, Any]] = []

    def ready(self) -> Ready:
        """Load the models if preloading (once) and say who this worker is."""
        error = None
        if self.preload:
            try:
                self.models.get()
            except ClipassoError as problem:
                error = str(problem)
        return Ready(this_process(self.name, str(self.models.device)).as_dict(), error)

    def run(self, job: JobInput) -> Report:
        """Run ``job`` with :func:`run_job`; its progress and snapshots are kept for :meth:`poll`."""
        with self._lock:
            cancel = threading.Event()
            if self._cancel_next == job.id:
                cancel.set()
            self._job, self._phase, self._cancel, self._cancel_next = job.id, "starting", cancel, None
            self._progress, self._snapshots = None, []
        started = time.monotonic()
        try:
            outcome = run_job(job, self.models, RunHooks(cancel, self._set_phase, self._report, self._snapshot))
        finally:
            with self._lock:
                progress, snapshots = self._progress, self._snapshots
                self._job, self._phase, self._progress, self._snapshots = None, "idle", None, []
        return Report(outcome, progress, snapshots, time.monotonic() - started)

    def poll(self) -> Poll:
        """The running job, its phase, its latest progress and the snapshots since the last poll."""
        with self._lock:
            snapshots, self._snapshots = self._snapshots, []
            return Poll(self._job, self._phase, self._progress, snapshots)

    def cancel(self, job_id: str) -> bool:
        """Ask job ``job_id`` to stop after its current step; a job not yet begun here stops before its first."""
        with self._lock:
            if self._job != job_id:
                self._cancel_next = job_id
                return False
            self._cancel.set()
            return True

    def _set_phase(self, phase: str) -> None:
        with self._lock:
            self._phase = phase

    def _report(self, progress: Progress) -> None:
        body = progress_body(progress)
        with self._lock:
            self._progress = body

    def _snapshot(self, snapshot: SketchSnapshot) -> None:
        body = snapshot.to_dict()
        with self._lock:
            self._snapshots = [*self._snapshots[-(MAX_PENDING_SNAPSHOTS - 1):], body]


class LocalWorkers:
    """Workers in this server process on its own models (one by default, named ``local``).

    A ``run`` call gets a thread of its own, a daemon one, as the worker thread always was: a job that never
    ends does not keep the server from exiting. The other calls are answered at once, in the caller's thread.
    """

    poll_interval_s = 0.05

    def __init__(self, models: ModelCache, count: int = 1) -> None:
        self.models = models
        self.names = ["local"] if count == 1 else [f"local-{number}" for number in range(count)]
        self._runs: list[futures.Future[Any]] = []

    def planned(self) -> list[tuple[WorkerInfo, bool]]:
        """Each worker's identity: this process, ready at once (the models load with the first job)."""
        return [(this_process(name, str(self.models.device)), True) for name in self.names]

    def launch(self) -> list[SketchWorker]:
        """A worker on this process's models per name."""
        return [SketchWorker(name, self.models) for name in self.names]

    def call(self, worker: SketchWorker, method: str, *args: Any) -> futures.Future[Any]:
        """Call ``method`` of ``worker``; its answer comes in the returned future."""
        call: futures.Future[Any] = futures.Future()
        if method != "run":
            _answer(call, getattr(worker, method), args)
            return call
        self._runs = [*(run for run in self._runs if not run.done()), call]
        threading.Thread(target=_answer, args=(call, worker.run, args), name=f"clipasso-{worker.name}",
                         daemon=True).start()
        return call

    def wait(self, calls: list[futures.Future[Any]], timeout: float) -> list[futures.Future[Any]]:
        """The calls answered within ``timeout`` s (at least one, unless none was)."""
        done, _ = futures.wait(calls, timeout, return_when=futures.FIRST_COMPLETED)
        return list(done)

    def answer(self, call: futures.Future[Any]) -> Any:
        """The call's value (a worker in this process never dies: an exception is a fault in its code)."""
        return call.result()

    def close(self, timeout: float) -> bool:
        """Let running jobs end (a cancelled one stops within a step); whether they did within ``timeout`` s."""
        _, running = futures.wait(self._runs, timeout)
        return not running

    def problem(self) -> str | None:
        """Workers in this process can always be reached."""
        return None


def _answer(call: futures.Future[Any], method: Any, args: tuple[Any, ...]) -> None:
    """Settle ``call`` with what ``method(*args)`` returns or raises."""
    try:
        call.set_result(method(*args))
    except Exception as error:
        call.set_exception(error)
