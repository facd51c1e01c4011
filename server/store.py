"""The job store: jobs and their parameters in SQLite (WAL), uploaded images and result JSON as files.

Layout of the data directory::

    server.lock           held by the one server process using this directory
    jobs.sqlite3          one row per job (status, params, cache key, timestamps, error, final progress)
    images/<id>.image     the submitted image file's bytes
    results/<id>.json     the result body of a succeeded job, written atomically before the row says so

Finished jobs older than the retention time are deleted with all their files by
:meth:`JobStore.purge_finished` (the server runs it at start and periodically).

Job ids are server-generated uuid4 hex strings; paths are only ever built from ids read back from the
database, never from a client's string. A process killed at any point loses nothing: finished results stay
on disk and :meth:`JobStore.recover` puts jobs that were running back in the queue.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from pydantic import ValidationError

from clipasso_core.files import write_atomically
from clipasso_core.params import SketchParams, describe_validation_errors

from .job_status import ACTIVE, FINISHED, REUSABLE, JobStatus
from .schemas import is_result_body

DATABASE_NAME = "jobs.sqlite3"
BUSY_TIMEOUT_S = 2.0
"""How long a write waits for another program's lock on the database before the request answers 503
``storage_unavailable`` (reads never wait: they use their own connection, which WAL lets read under a lock)."""
PARAMS_CACHE_SIZE = 256
"""Jobs whose validated parameters are kept in memory: a job's stored parameters never change, so they are
validated once, not at every poll."""
LOCK_NAME = "server.lock"
JOB_ID_RE = re.compile(r"[0-9a-f]{32}")
PRIVATE = 0o600
"""Permissions of the uploaded images and results: the user's pictures, readable by the user only."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL,
    cache_key     TEXT NOT NULL,
    params        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    runs          INTEGER NOT NULL DEFAULT 0,
    progress      TEXT,
    error_code    TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_cache_key ON jobs (cache_key, seq);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
"""
_ADDED_COLUMNS = {
    "client": "TEXT NOT NULL DEFAULT 'local'",  # who submitted it: the fairness unit of the queue
    "claim_no": "INTEGER",                      # the store-wide order in which jobs were last claimed
    "worker": "TEXT",                           # JSON: the worker that ran it last (host, pid, device, name)
}
"""Columns added after the first release; :class:`JobStore` adds them to an older database on open."""
_CLIENT_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_client ON jobs (client, claim_no);
CREATE INDEX IF NOT EXISTS jobs_by_claim ON jobs (claim_no);
CREATE TABLE IF NOT EXISTS interests (
    job_id TEXT NOT NULL,
    client TEXT NOT NULL,
    wants  INTEGER NOT NULL,
    PRIMARY KEY (job_id, client)
);
"""
"""Indexes and the interests table (which clients want a queued or running job: 1, or 0 once that client
cancelled), added to an older database on open."""
DEFAULT_CLIENT = "local"
_COLUMNS = "id, status, created_at, started_at, finished_at, runs, progress, error_code, error_message, client, worker"
"""Every column a :class:`Job` reads, but its parameters, which :meth:`JobStore._job` reads once per job."""


@dataclass(frozen=True)
class Job:
    """One job as stored."""

    id: str
    status: JobStatus
    params: SketchParams | None  # None when the stored parameters no longer validate (see params_error)
    created_at: float
    started_at: float | None
    finished_at: float | None
    runs: int
    progress: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    client: str = DEFAULT_CLIENT
    worker: dict[str, Any] | None = None
    params_error: str | None = None

    @property
    def error(self) -> dict[str, str] | None:
        """``{"code", "message"}`` of a failed or cancelled job, else ``None``."""
        if self.error_code is None:
            return None
        return {"code": self.error_code, "message": self.error_message or ""}


def is_job_id(text: str) -> bool:
    """Whether ``text`` has the form of a job id (32 lowercase hex digits)."""
    return JOB_ID_RE.fullmatch(text) is not None


def canonical_json(value: Any) -> str:
    """Deterministic compact JSON (sorted keys), for cache keys and stored parameters."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def cache_key(image: bytes, params: SketchParams, models: str) -> str:
    """The identity of a job's outcome: the image bytes, the parameters after defaults, and the models."""
    identity = {"image": hashlib.sha256(image).hexdigest(), "params": params.model_dump(mode="json"), "models": models}
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()


def iso_time(timestamp: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC with milliseconds (``2024-01-02T03:04:05.678Z``)."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ResultMissing(Exception):
    """A succeeded job's result file is gone, damaged or not shaped like a result: treated as absent."""


class DataDirInUseError(OSError):
    """Another server process holds the data directory."""


def lock_data_dir(data_dir: Path) -> IO[bytes] | None:
    """Hold an exclusive lock on ``data_dir`` for this process (released when the file closes or it dies)."""
    if fcntl is None:  # Windows: no advisory locks; one server per data directory is up to the user
        return None
    handle = open(data_dir / LOCK_NAME, "ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DataDirInUseError(f"another clipasso-server is already using the data directory '{data_dir}'; "
                                "stop it or pass a different --data-dir") from None
    return handle


class JobStore:
    """Jobs in SQLite plus files under ``data_dir``; safe to use from several threads of one process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.images = self.data_dir / "images"
        self.results = self.data_dir / "results"
        self.snapshots = self.data_dir / "snapshots"
        for folder in (self.data_dir, self.images, self.results, self.snapshots):
            folder.mkdir(parents=True, exist_ok=True)
        self._data_dir_lock = lock_data_dir(self.data_dir)
        self._lock = threading.RLock()
        self._db = self._connect()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, declaration in _ADDED_COLUMNS.items():
            if name not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")
        self._db.executescript(_CLIENT_INDEXES)
        self._reader = self._connect()
        self._read_lock = threading.Lock()
        self._params: OrderedDict[str, tuple[SketchParams | None, str | None]] = OrderedDict()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.data_dir / DATABASE_NAME, isolation_level=None, check_same_thread=False,
                                     timeout=BUSY_TIMEOUT_S)
        connection.row_factory = sqlite3.Row
        return connection

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """The rows of a query, on the reading connection: never queued behind a write waiting for a lock."""
        with self._read_lock:
            return self._reader.execute(sql, args).fetchall()

    def close(self) -> None:
        """Close the database connections and let another process use the data directory."""
        with self._lock, self._read_lock:
            self._reader.close()
            self._db.close()
            if self._data_dir_lock is not None:
                self._data_dir_lock.close()
                self._data_dir_lock = None

    # -- reading ---------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """The job with id ``job_id``, or ``None`` (also for strings that are not job ids)."""
        if not is_job_id(job_id):
            return None
        rows = self._read(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def _job(self, row: sqlite3.Row) -> Job:
        """A row (without its parameters) as a :class:`Job`, its parameters validated once per job."""
        known = self._params.get(row["id"])
        if known is None:
            stored = self._read("SELECT params FROM jobs WHERE id = ?", (row["id"],))
            known = read_params(stored[0]["params"] if stored else "")
            with self._read_lock:
                self._params[row["id"]] = known
                while len(self._params) > PARAMS_CACHE_SIZE:
                    self._params.popitem(last=False)
        return _job(row, *known)

    def find_reusable(self, key: str, image: bytes | None = None) -> Job | None:
        """The latest queued, running or succeeded job with this cache key whose files are whole.

        A succeeded job counts only while its result file reads back as a result; a queued one only while
        its stored image is there (and, given the submitted ``image``, equal to it). A job with a damaged or
        missing file is never returned, so resubmitting runs the sketch again.
        """
        rows = self._read(f"SELECT {_COLUMNS} FROM jobs WHERE cache_key = ? AND status IN ({_marks(REUSABLE)}) "
                          "ORDER BY seq DESC LIMIT 1", (key, *REUSABLE))
        if not rows:
            return None
        job = self._job(rows[0])
        if job.status == JobStatus.SUCCEEDED:
            try:
                self.read_result(job)
            except ResultMissing:
                return None
        elif job.status == JobStatus.QUEUED and not self._image_intact(job, image):
            return None
        return job

    def _image_intact(self, job: Job, image: bytes | None) -> bool:
        try:
            stored = self.image_path(job).read_bytes()
        except OSError:
            return False
        return bool(stored) and (image is None or stored == image)

    def count(self, *statuses: JobStatus) -> int:
        """How many jobs have one of ``statuses`` (all jobs when none are given)."""
        if not statuses:
            return int(self._read("SELECT COUNT(*) FROM jobs")[0][0])
        return int(self._read(f"SELECT COUNT(*) FROM jobs WHERE status IN ({_marks(statuses)})", statuses)[0][0])

    def queue_position(self, job_id: str) -> int | None:
        """How many queued jobs start before the queued job ``job_id`` (0: it starts next), in the order
        :meth:`claim_next` takes them; ``None`` when that job is not queued."""
        with self._read_lock:  # one read transaction: the queue and the claims as of one moment
            self._reader.execute("BEGIN")
            try:
                queued = self._reader.execute("SELECT id, client FROM jobs WHERE status = ? ORDER BY seq",
                                              (JobStatus.QUEUED,)).fetchall()
                last = dict(self._reader.execute(
                    "SELECT client, COALESCE(MAX(claim_no), 0) FROM jobs GROUP BY client").fetchall())
            finally:
                self._reader.execute("COMMIT")
        return fair_position([(row["id"], row["client"]) for row in queued], last, job_id)

    def image_path(self, job: Job) -> Path:
        """Where the job's uploaded image is stored."""
        return self.images / f"{_checked(job.id)}.image"

    def result_path(self, job: Job) -> Path:
        """Where the job's result JSON is stored once it succeeded."""
        return self.results / f"{_checked(job.id)}.json"

    def read_result(self, job: Job) -> dict[str, Any]:
        """The stored result body of a succeeded job; :class:`ResultMissing` if its file is gone, damaged or
        not shaped like a result."""
        try:
            body = json.loads(self.result_path(job).read_bytes())
        except (OSError, ValueError):  # gone, unreadable, truncated, not UTF-8 or not JSON
            raise ResultMissing(job.id) from None
        if not is_result_body(body):
            raise ResultMissing(job.id)
        return body

    def save_snapshots(self, job_id: str, history: dict[str, Any]) -> None:
        """Keep a job's snapshot history (``SnapshotHistory.to_dict()``), replacing the earlier one atomically."""
        write_atomically(self.snapshots / f"{_checked(job_id)}.json", canonical_json(history).encode())

    def read_snapshots(self, job_id: str) -> dict[str, Any] | None:
        """A job's stored snapshot history, or ``None`` before its first snapshot or when its file is gone, damaged
        or not a JSON object (it counts as absent)."""
        try:
            data = json.loads((self.snapshots / f"{_checked(job_id)}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # -- changing --------------------------------------------------------------------------------
    def submit(self, image: bytes, params: SketchParams, key: str,
               client: str = DEFAULT_CLIENT) -> tuple[Job, bool]:
        """Queue a new job for ``client``, or return the reusable one with the same key; the flag says if it is new."""
        with self._lock:
            existing = self.find_reusable(key, image)
            if existing is not None:
                self.add_interest(existing, client)
                return existing, False
            job_id = uuid.uuid4().hex
            write_atomically(self.images / f"{job_id}.image", image, mode=PRIVATE)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO jobs (id, status, cache_key, params, created_at, client) VALUES (?, ?, ?, ?, ?, ?)",
                    (job_id, JobStatus.QUEUED, key, canonical_json(params.model_dump(mode="json")), time.time(),
                     client))
                self._db.execute("INSERT INTO interests (job_id, client, wants) VALUES (?, ?, 1)", (job_id, client))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            job = self.get(job_id)
        assert job is not None
        return job, True

    def add_interest(self, job: Job, client: str) -> None:
        """``client`` asked for the queued or running ``job`` (asking again changes nothing)."""
        if job.status not in ACTIVE:
            return
        with self._lock:
            self._db.execute("INSERT INTO interests (job_id, client, wants) VALUES (?, ?, 1) "
                             "ON CONFLICT (job_id, client) DO UPDATE SET wants = 1", (job.id, client))

    def interests(self, job_id: str) -> dict[str, bool]:
        """Whether each client that asked for ``job_id`` still wants it (``False``: it cancelled); empty for a job
        of a version that kept no interests."""
        return {row["client"]: bool(row["wants"]) for row in
                self._read("SELECT client, wants FROM interests WHERE job_id = ?", (job_id,))}

    def withdraw(self, job_id: str, client: str) -> None:
        """``client`` no longer wants ``job_id``."""
        with self._lock:
            self._db.execute("UPDATE interests SET wants = 0 WHERE job_id = ? AND client = ?", (job_id, client))

    def claim_next(self, worker: dict[str, Any] | None = None) -> Job | None:
        """Mark the next queued job running on ``worker`` and return it, or ``None`` when the queue is empty.

        Round-robin across clients: the client whose last claimed job is oldest (or who has none) goes
        next; within a client, first come first served.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM jobs AS q WHERE status = ? ORDER BY "
                "(SELECT COALESCE(MAX(c.claim_no), 0) FROM jobs AS c WHERE c.client = q.client), seq "
                "LIMIT 1", (JobStatus.QUEUED,)).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE jobs SET status = ?, started_at = ?, runs = runs + 1, progress = NULL, worker = ?, "
                "claim_no = (SELECT COALESCE(MAX(claim_no), 0) + 1 FROM jobs) WHERE id = ? AND status = ?",
                (JobStatus.RUNNING, time.time(), None if worker is None else canonical_json(worker), row["id"],
                 JobStatus.QUEUED))
            return self.get(row["id"])

    def succeed(self, job_id: str, result: dict[str, Any], progress: dict[str, Any] | None) -> bool:
        """Store a running job's result (file first, then the row); ``False`` if it is no longer running."""
        with self._lock:
            job = self.get(job_id)
            if job is None or job.status != JobStatus.RUNNING:
                return False
            write_atomically(self.result_path(job), canonical_json(result).encode(), mode=PRIVATE)
            return self._finish(job_id, JobStatus.SUCCEEDED, progress, None, None)

    def fail(self, job_id: str, code: str, message: str, progress: dict[str, Any] | None = None) -> bool:
        """Mark a running job failed with ``code`` and ``message``; ``False`` if it is no longer running."""
        with self._lock:
            return self._finish(job_id, JobStatus.FAILED, progress, code, message)

    def cancel(self, job_id: str, message: str) -> tuple[JobStatus | None, Job | None]:
        """Cancel a queued or running job; returns its status before and the job after (``None`` if unknown)."""
        with self._lock:
            job = self.get(job_id)
            if job is None:
                return None, None
            if job.status in ACTIVE:
                self._db.execute(
                    "UPDATE jobs SET status = ?, finished_at = ?, error_code = 'cancelled', "
                    "error_message = ? WHERE id = ?", (JobStatus.CANCELLED, time.time(), message, job_id))
            return job.status, self.get(job_id)

    def save_progress(self, job_id: str, progress: dict[str, Any] | None) -> None:
        """Keep a job's latest progress (used when a cancelled job's run ends)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET progress = ? WHERE id = ?",
                             (None if progress is None else canonical_json(progress), job_id))

    def requeue(self, job_id: str) -> bool:
        """Put a running job back at its place in the queue (it was interrupted by a shutdown)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET status = ?, started_at = NULL, progress = NULL WHERE id = ? AND status = ?",
                (JobStatus.QUEUED, job_id, JobStatus.RUNNING))
            return cursor.rowcount == 1

    def recover(self) -> int:
        """After a restart: jobs left running by a killed process go back to the queue; returns how many."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET status = ?, started_at = NULL, progress = NULL WHERE status = ?",
                (JobStatus.QUEUED, JobStatus.RUNNING))
            return cursor.rowcount

    def purge_finished(self, before: float) -> int:
        """Delete finished jobs (succeeded, failed, cancelled) that finished before Unix time ``before``, with
        every file of theirs (image, result and any other ``<id>…`` entry in the data directory's folders),
        and files of no known job last changed before then; returns how many jobs were deleted.

        Files go first, then the rows: an interruption leaves at worst a job whose files are missing, which
        counts as absent.
        """
        with self._lock:
            rows = self._db.execute(
                f"SELECT id FROM jobs WHERE status IN ({_marks(FINISHED)}) "
                "AND COALESCE(finished_at, created_at) < ?", (*FINISHED, before)).fetchall()
            known = {row[0] for row in self._db.execute("SELECT id FROM jobs")}
        expired = {row["id"] for row in rows}
        for entry in self._job_entries():
            job_id = entry.name.lstrip(".")[:32]  # a leading dot: a temporary file a crash left behind
            if job_id in expired or (job_id not in known and _changed_before(entry, before)):
                _remove(entry)
        with self._lock:
            for job_id in expired:
                self._db.execute(f"DELETE FROM jobs WHERE id = ? AND status IN ({_marks(FINISHED)})",
                                 (job_id, *FINISHED))
                self._db.execute("DELETE FROM interests WHERE job_id = ?", (job_id,))
        return len(expired)

    def _job_entries(self) -> list[Path]:
        """Every entry named after a job id (``<id>…``, or ``.<id>…`` for temporary files) in the data folders."""
        entries = []
        for folder in self.data_dir.iterdir():
            if folder.is_dir() and not folder.is_symlink():
                entries += [entry for entry in folder.iterdir() if is_job_id(entry.name.lstrip(".")[:32])]
        return entries

    def _finish(self, job_id: str, status: JobStatus, progress: dict[str, Any] | None, code: str | None,
                message: str | None) -> bool:
        cursor = self._db.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, progress = ?, error_code = ?, error_message = ? "
            "WHERE id = ? AND status = ?",
            (status, time.time(), None if progress is None else canonical_json(progress), code, message, job_id,
             JobStatus.RUNNING))
        return cursor.rowcount == 1


def fair_position(queued: list[tuple[str, str]], last_claim: dict[str, int], job_id: str) -> int | None:
    """The place of ``job_id`` among ``queued`` (``(id, client)`` in submission order) when they are claimed
    one by one as :meth:`JobStore.claim_next` does: the client whose last claim is oldest goes first, ties
    and a client's own jobs by submission order. ``last_claim``: each client's latest claim number (0: none)."""
    pending: dict[str, list[str]] = {}
    for queued_id, client in queued:
        pending.setdefault(client, []).append(queued_id)
    first_seen = {client: number for number, client in enumerate(dict.fromkeys(client for _, client in queued))}
    turn = max(last_claim.values(), default=0)
    for position in range(len(queued)):
        client = min(pending, key=lambda name: (last_claim.get(name, 0), first_seen[name]))
        if pending[client].pop(0) == job_id:
            return position
        if not pending[client]:
            del pending[client]
        turn += 1
        last_claim = {**last_claim, client: turn}
    return None


def _changed_before(entry: Path, moment: float) -> bool:
    try:
        return entry.lstat().st_mtime < moment
    except OSError:
        return False


def _remove(entry: Path) -> None:
    """Delete a file or a folder tree; one that is already gone is fine."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _marks(values: tuple[Any, ...]) -> str:
    """SQL placeholders for ``values``: ``?,?,?``."""
    return ",".join("?" * len(values))


def _checked(job_id: str) -> str:
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


def read_params(text: str) -> tuple[SketchParams | None, str | None]:
    """Stored parameters as :class:`SketchParams`, or ``None`` and why when they no longer validate (written by
    another version with other limits, or damaged)."""
    try:
        return SketchParams.model_validate_json(text), None
    except ValidationError as error:
        return None, describe_validation_errors(error.errors()) or "unreadable parameters"


def _job(row: sqlite3.Row, params: SketchParams | None, params_error: str | None) -> Job:
    """A row (without its parameters) and its parameters as a :class:`Job`; progress or a worker written by
    another version that no longer read are ``None``, never an exception."""
    try:
        progress = json.loads(row["progress"]) if row["progress"] else None
    except ValueError:
        progress = None
    try:
        worker = json.loads(row["worker"]) if row["worker"] else None
    except ValueError:
        worker = None
    return Job(
        id=row["id"],
        status=JobStatus(row["status"]),
        params=params,
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        runs=row["runs"],
        progress=progress if isinstance(progress, dict) else None,
        error_code=row["error_code"],
        error_message=row["error_message"],
        client=row["client"],
        worker=worker if isinstance(worker, dict) else None,
        params_error=params_error,
    )
