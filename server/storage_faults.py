"""Storage faults of the data directory (disk full, read-only, no permission) as one typed error each.

Any OS or SQLite error raised while the store writes is passed through :func:`storage_fault`; a full disk
becomes :class:`StorageFull` (HTTP 507) and a directory that cannot be written :class:`StorageUnavailable`
(HTTP 503), each with one sentence naming the data directory. Other errors are not storage faults.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
UNWRITABLE_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


class StorageFault(Exception):
    """The data directory cannot take a write: ``status``, ``code`` and one sentence naming the directory."""

    status = 503
    code = "storage_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StorageFull(StorageFault):
    """The disk (or quota) of the data directory is full."""

    status = 507
    code = "storage_full"


class StorageUnavailable(StorageFault):
    """The data directory is read-only, not permitted or failing, or another program locks the job database."""


def storage_fault(error: BaseException, data_dir: Path) -> StorageFault | None:
    """``error`` as a :class:`StorageFull` or :class:`StorageUnavailable`, or ``None`` when it is neither."""
    if isinstance(error, StorageFault):
        return error
    full = unwritable = False
    if isinstance(error, sqlite3.OperationalError) and "locked" in str(error).lower():
        return StorageUnavailable(f"Another program holds a lock on the sketch server's job database "
                                  f"'{data_dir / 'jobs.sqlite3'}', so nothing can be written now; close that "
                                  "program (e.g. an SQLite browser) and try again.")
    if isinstance(error, OSError):
        full, unwritable = error.errno in FULL_ERRNOS, error.errno in UNWRITABLE_ERRNOS
    elif isinstance(error, sqlite3.Error):
        text = str(error).lower()
        full = "full" in text
        unwritable = any(word in text for word in ("readonly", "read-only", "unable to open", "disk i/o error"))
    if full:
        return StorageFull(f"The sketch server's data directory '{data_dir}' is full; free some space there "
                           "(finished sketches are kept in memory until they can be saved).")
    if unwritable:
        return StorageUnavailable(f"The sketch server cannot write to its data directory '{data_dir}' (read-only, "
                                  "no permission or failing); make it writable again.")
    return None
