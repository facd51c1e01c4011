"""The five states of a job, as one ``str`` enum: equal to (and stored, sent and logged as) its lowercase word.

``queued`` → ``running`` → ``succeeded`` / ``failed`` / ``cancelled``; a running job goes back to
``queued`` when its run is interrupted (a restart, a lost worker). The SQLite column and the JSON
field hold the plain words, so data written before this enum existed reads back unchanged.
"""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    """Where a job stands: waiting, running, or finished one of three ways."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        """The plain word (``queued``), also in f-strings and log lines."""
        return self.value


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
"""A job in the queue: waiting or running (counted by ``queue_length``)."""
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
"""A job whose outcome is final: retention deletes these, and only these, when they are old."""
REUSABLE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED)
"""Statuses of an earlier identical job that a new submission returns instead of running again."""
