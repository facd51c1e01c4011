"""Who runs the jobs: each worker's identity (name, host, process, device) and its live state for /v1/health.

A worker is the in-process worker thread of a single-machine server, or one Ray actor of a studio
server. The :class:`WorkerBoard` lives in the server process and is only kept in memory: after a
restart every worker starts again with zero jobs done.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class WorkerInfo:
    """Where a worker runs: a name unique in this server, the host, the process id (unknown while it starts), the device."""

    name: str
    host: str | None
    pid: int | None
    device: str

    def as_dict(self) -> dict[str, Any]:
        """The worker as a JSON object (stored with each job it runs)."""
        return asdict(self)


def this_process(name: str, device: str) -> WorkerInfo:
    """The identity of a worker running in the current process on ``device``."""
    return WorkerInfo(name=name, host=socket.gethostname(), pid=os.getpid(), device=device)


class WorkerBoard:
    """The server's view of its workers: identity, ``starting``/``idle``/``busy``, current job, jobs done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: dict[str, dict[str, Any]] = {}

    def register(self, info: WorkerInfo, status: str = "idle") -> None:
        """Add a worker, or replace the identity of a restarted one (its count of jobs done is kept)."""
        with self._lock:
            done = self._workers.get(info.name, {}).get("jobs_done", 0)
            self._workers[info.name] = {**info.as_dict(), "status": status, "job": None, "jobs_done": done}

    def set_status(self, name: str, status: str) -> None:
        """Mark a worker ``starting`` (e.g. restarting after it died) or ``idle``: it runs no job then."""
        with self._lock:
            if name in self._workers:
                self._workers[name].update(status=status, job=None)

    def busy(self, name: str, job_id: str) -> None:
        """The worker started running ``job_id``."""
        with self._lock:
            if name in self._workers:
                self._workers[name].update(status="busy", job=job_id)

    def done(self, name: str, finished: bool = True) -> None:
        """The worker's job ended; it counts as done unless it was interrupted (``finished=False``)."""
        with self._lock:
            worker = self._workers.get(name)
            if worker is not None:
                worker.update(status="idle", job=None, jobs_done=worker["jobs_done"] + int(finished))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every worker's identity and state, in the order they were registered."""
        with self._lock:
            return [dict(worker) for worker in self._workers.values()]
