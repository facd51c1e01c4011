"""The job queue as the routes see it: submit (or reuse an identical job), cancel, and a job as every route
shows it (:meth:`JobQueue.view`: a run that ended reads as ended, also while its outcome waits in memory).

Each client that asked for a queued or running job (by its name, else its token's identity, else ``local``)
holds an interest in it, kept by the store; a cancel withdraws the canceller's, and the job is cancelled only
when no client wants it any more.

Jobs wait in the :class:`~clipasso_server.store.JobStore`, which also decides what runs next (round-robin
across clients); a :class:`~clipasso_server.dispatcher.Dispatcher` runs them on the workers of a pool
(in this process, or Ray actors) and keeps their live progress and the outcomes the store could not
write yet. Every job state change is logged as one line with the job id and timings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from clipasso_core.params import SketchParams

from .dispatcher import Dispatcher, WorkerState
from .job_status import ACTIVE, JobStatus
from .store import DEFAULT_CLIENT, Job, JobStore, cache_key
from .workers import WorkerBoard

log = logging.getLogger("clipasso_server")

CANCELLED_MESSAGE = "The job was cancelled."
WITHDRAWN_MESSAGE = ("You cancelled this job; the same sketch goes on for {others} other client(s) that asked for it, "
                     "and stops when none wants it any more.")


class SharedJob(Exception):
    """A client that never asked for a job shared by several clients tried to cancel it."""


def withdrawn(job: Job, others: int) -> Job:
    """``job`` as a client that withdrew from it sees it: cancelled, while ``others`` clients still want it."""
    return replace(job, status=JobStatus.CANCELLED, error_code="cancelled",
                   error_message=WITHDRAWN_MESSAGE.format(others=others))


class JobQueue:
    """Submits, cancels and reports the jobs of ``store``; ``dispatcher`` runs them."""

    def __init__(self, store: JobStore, dispatcher: Dispatcher, models_key: str) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.models_key = models_key

    @property
    def workers(self) -> WorkerBoard:
        """The workers that run the jobs, with their state."""
        return self.dispatcher.workers

    def start(self) -> None:
        """Put interrupted jobs back in the queue and start running jobs."""
        self.dispatcher.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop running jobs (a running one goes back to the queue); whether everything has ended."""
        return self.dispatcher.stop(timeout)

    def cache_key(self, image: bytes, params: SketchParams) -> str:
        """The key under which identical submissions share one job."""
        return cache_key(image, params, self.models_key)

    def find_reusable(self, key: str, image: bytes | None = None) -> Job | None:
        """An earlier identical job that is queued, running or succeeded, with its files whole."""
        return self.store.find_reusable(key, image)

    def submit(self, image: bytes, params: SketchParams, key: str, client: str = DEFAULT_CLIENT) -> Job:
        """Queue ``client``'s job for a validated image (or return the identical one already known)."""
        job, created = self.store.submit(image, params, key, client)
        if created:
            log.info("job %s queued for %s (strokes %s, seeds %d, %d iterations; %d waiting or running)", job.id,
                     client, ",".join(map(str, params.strokes)), params.seeds, params.iterations,
                     self.queue_length())
            self.dispatcher.wake()
        else:
            log.info("job %s reused for an identical submission (%s)", job.id, job.status)
        return job

    def join(self, job: Job, client: str) -> None:
        """``client`` submitted the same image and settings as the queued or running ``job``: it wants it too."""
        self.store.add_interest(job, client)
        if job.status in ACTIVE:
            log.info("job %s also wanted by %s (%s)", job.id, client, job.status)

    def cancel(self, job_id: str, client: str = DEFAULT_CLIENT) -> Job | None:
        """Withdraw ``client``'s interest in a job; the job is cancelled when no client wants it any more (a queued one
        at once, a running one within one optimizer step), else it goes on for the others and reads as cancelled
        to ``client``. A job whose run has ended (its outcome perhaps still waiting for the store) is left as it
        is. Returns the job's view for ``client``; :class:`SharedJob` when ``client`` never asked for a job that
        several clients want."""
        current = self.store.get(job_id)
        if current is None:
            return None
        seen = self.view(current)
        if seen.status not in ACTIVE:
            return seen
        wanting = {name for name, wants in self.store.interests(job_id).items() if wants}
        if client in wanting:
            self.store.withdraw(job_id, client)
            wanting.discard(client)
        elif len(wanting) > 1:
            raise SharedJob(job_id)
        else:
            wanting = set()  # a job one client wants (or from before interests were kept): the cancel is for all
        if wanting:
            log.info("job %s: %s cancelled; %d other client(s) still want it", job_id, client, len(wanting))
            return withdrawn(self.view(current), len(wanting))
        before, job = self.dispatcher.cancel(job_id, CANCELLED_MESSAGE)
        if job is None:
            return None
        if before == JobStatus.QUEUED:
            log.info("job %s cancelled while queued (waited %.1f s)", job_id, time.time() - job.created_at)
        elif before == JobStatus.RUNNING:
            log.info("job %s cancel requested while running", job_id)
        return self.view(job)

    def view(self, job: Job) -> Job:
        """The job as every route shows it: a run that has ended reads as ended, also while its outcome waits in
        memory for the store (disk full, read-only), with that wait as its error; a running job has its live
        progress."""
        if job.status != JobStatus.RUNNING:
            return job
        unsaved = self.dispatcher.unsaved(job.id)
        if unsaved is None:
            return replace(job, progress=self.dispatcher.live_progress(job.id))
        outcome, why = unsaved
        error = why if outcome.status == JobStatus.SUCCEEDED else {"code": outcome.code or "internal_error",
                                                                   "message": outcome.message or ""}
        return replace(job, status=outcome.status, progress=outcome.progress, error_code=error["code"],
                       error_message=error["message"])

    def for_client(self, job: Job, client: str) -> Job:
        """The view of ``job`` for ``client``: cancelled when that client withdrew from a job others still want."""
        job = self.view(job)
        if job.status not in ACTIVE:
            return job
        interests = self.store.interests(job.id)
        others = sum(wants for name, wants in interests.items() if name != client)
        if interests.get(client, True) or not others:
            return job
        return withdrawn(job, others)

    def result(self, job: Job) -> dict[str, Any]:
        """The result body of a job whose view has succeeded: from memory while it waits for the store, else from
        its file; :class:`ResultMissing` when that file is gone or damaged."""
        unsaved = self.dispatcher.unsaved(job.id)
        if unsaved is not None and unsaved[0].result is not None:
            return unsaved[0].result
        return self.store.read_result(job)

    def saved(self, job: Job) -> bool:
        """Whether ``job``'s view is what the store holds (nothing of it waits in memory)."""
        return self.dispatcher.unsaved(job.id) is None

    def queue_length(self) -> int:
        """Jobs queued or running."""
        return self.store.count(*ACTIVE)

    def worker_state(self) -> WorkerState:
        """Whether the job worker lives, what it does, whether it is stuck and the last error it met."""
        return self.dispatcher.state()

    def unsaved_problem(self) -> dict[str, str] | None:
        """Why a finished job waits in memory for the store (``{"code", "message"}``), or ``None`` when none waits."""
        return self.dispatcher.unsaved_problem()
