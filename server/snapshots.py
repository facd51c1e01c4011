"""Keeping a running job's snapshots: a bounded history in memory, written to the job store about once a second.

The worker (in-process, or a remote one whose snapshots the server relays as dicts) hands every
snapshot to :meth:`SnapshotRecorder.record`; :meth:`SnapshotRecorder.finish` writes the last one and must
run before the job is marked finished, so a finished job's snapshots always end at its result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from clipasso_core.snapshot import SketchSnapshot, SnapshotHistory

from .store import JobStore

log = logging.getLogger("clipasso_server")

WRITE_INTERVAL_S = 1.0
"""Least time between two writes of a job's snapshot file."""


class SnapshotRecorder:
    """One run of one job: records snapshots and persists the history, the first one at once, then throttled."""

    def __init__(self, store: JobStore, job_id: str, total: int | None = None,
                 interval_s: float = WRITE_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.job_id = job_id
        self.history = SnapshotHistory(total=total)
        self._interval_s = interval_s
        self._clock = clock
        self._written_at: float | None = None
        self._dirty = False

    def record(self, snapshot: SketchSnapshot | dict[str, Any]) -> None:
        """Add a snapshot (or its ``to_dict()``); write the history if the last write is old enough."""
        if isinstance(snapshot, dict):
            snapshot = SketchSnapshot.from_dict(snapshot)
        self.history.add(snapshot)
        self._dirty = True
        now = self._clock()
        if self._written_at is None or now - self._written_at >= self._interval_s:
            self._write(now)

    def finish(self) -> None:
        """Write what was recorded since the last write (call before marking the job finished)."""
        if self._dirty:
            self._write(self._clock())

    def _write(self, now: float) -> None:
        try:
            self.store.save_snapshots(self.job_id, self.history.to_dict())
        except OSError as error:  # a preview is never worth failing the job for
            log.warning("job %s: cannot write its snapshots: %s", self.job_id, error)
            return
        self._written_at = now
        self._dirty = False
