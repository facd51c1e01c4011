"""Files derived from a finished job (its result and preview SVGs, its animation SVG and GIF), kept on disk
with the job so that each is drawn once, not at every request.

Layout: ``derived/<id>.<name>`` in the data directory: a line with the SHA-256 of the server's version and
the content, then the content. A file whose checksum does not match (damaged, truncated, emptied, or drawn
by another version of the server, which may draw it otherwise) counts as absent and is drawn again; retention deletes the files with their job (every ``<id>…`` entry goes). A file that cannot be
written (disk full, read-only) is only not cached: the request is answered all the same.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from clipasso_core.files import write_atomically

from .store import PRIVATE, is_job_id

log = logging.getLogger("clipasso_server")

FOLDER_NAME = "derived"
_HASH_LENGTH = 64


class DerivedFiles:
    """The cache of derived files under ``data_dir/derived``; safe to use from several threads."""

    def __init__(self, data_dir: Path, version: str = "") -> None:
        self.folder = Path(data_dir) / FOLDER_NAME
        self.version = version.encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._guard = threading.Lock()
        self._drawing: dict[str, threading.Lock] = {}

    def path(self, job_id: str, name: str) -> Path:
        """Where the file ``name`` of job ``job_id`` is kept."""
        if not is_job_id(job_id) or not name.replace(".", "").isalnum():
            raise ValueError(f"not a derived file: {job_id!r}, {name!r}")
        return self.folder / f"{job_id}.{name}"

    def read(self, job_id: str, name: str) -> bytes | None:
        """The kept file, or ``None`` when it is absent or damaged."""
        try:
            stored = self.path(job_id, name).read_bytes()
        except OSError:
            return None
        checksum, content = stored[:_HASH_LENGTH], stored[_HASH_LENGTH + 1:]
        if stored[_HASH_LENGTH:_HASH_LENGTH + 1] != b"\n" or self._checksum(content) != checksum:
            return None
        return content

    def _checksum(self, content: bytes) -> bytes:
        return hashlib.sha256(self.version + b"\n" + content).hexdigest().encode()

    def get(self, job_id: str, name: str, draw: Callable[[], bytes]) -> bytes:
        """The kept file, else ``draw()`` it (once, however many ask at the same time) and keep it."""
        key = f"{job_id}.{name}"
        with self._guard:
            lock = self._drawing.setdefault(key, threading.Lock())
        try:
            with lock:
                kept = self.read(job_id, name)  # drawn meanwhile by the caller that held the lock
                if kept is not None:
                    return kept
                content = draw()
                try:
                    write_atomically(self.path(job_id, name), self._checksum(content) + b"\n" + content, mode=PRIVATE)
                except OSError as error:  # not kept: drawn again next time
                    log.warning("job %s: cannot keep its %s: %s", job_id, name, error)
        finally:
            with self._guard:
                self._drawing.pop(key, None)
        return content
