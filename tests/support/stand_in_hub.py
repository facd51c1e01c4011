"""A stand-in for the Hugging Face hub on 127.0.0.1, for tests of the CLIP weights download (no network).

huggingface_hub talks to it when ``HF_ENDPOINT`` (or, in this process, ``huggingface_hub.constants``) points
at it. It answers ``HEAD`` and ``GET`` on ``/{org}/{name}/resolve/{revision}/{filename}`` as the hub does
for a file: ``X-Repo-Commit``, ``ETag`` (the content's sha256, as for LFS files), ``Content-Length`` and
``Accept-Ranges``; a ``Range: bytes=N-`` request gets 206 and the rest. An unknown file is a 404 with
``X-Error-Code: EntryNotFound``. Steering, between requests:

* ``cut_once``: (repo, filename) pairs whose first GET sends the headers and half the bytes, then closes
  the connection, as a network that drops does;
* ``hold(after)``: every GET stops once it has sent ``after`` bytes (at least its first chunk) until
  ``release()``, so a test can look at a download in progress without timing anything;
* ``requests``: (method, path, Range header or None) of every request.
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler

from tests.support.loopback_http import LoopbackHttpServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 64 * 1024
_PATH = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")


class StandInHub(LoopbackHttpServer):
    """The hub's file endpoints for ``files`` ({(repo_id, filename): bytes}) in a thread on 127.0.0.1 (``url`` is
    the endpoint to give as ``HF_ENDPOINT``)."""

    def __init__(self, files: dict[tuple[str, str], bytes]) -> None:
        self.files = dict(files)
        self.cut_once: set[tuple[str, str]] = set()
        self.requests: list[tuple[str, str, str | None]] = []
        self._held = threading.Event()
        self._released = threading.Event()
        self._released.set()
        self._hold_after = 0
        super().__init__(_handler_for(self))

    def hold(self, after: int = 0) -> None:
        """Make every GET pause once it has sent ``after`` bytes (at least one chunk) until :meth:`release`."""
        self._hold_after = after
        self._released.clear()

    def release(self) -> None:
        """Let held GETs finish."""
        self._released.set()

    def wait_until_held(self, timeout: float = 60.0) -> bool:
        """Wait until a GET has sent its first chunk and is holding."""
        return self._held.wait(timeout)

    def gets(self, filename: str) -> list[str | None]:
        """The Range headers of the GETs of ``filename`` received so far (None: the whole file)."""
        return [ranged for method, path, ranged in self.requests if method == "GET" and path.endswith("/" + filename)]

    def __exit__(self, *exc: object) -> None:
        self.release()
        super().__exit__(*exc)


def _handler_for(hub: StandInHub) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _file(self) -> tuple[str, str, bytes] | None:
            match = _PATH.match(self.path.split("?")[0])
            if match is None:
                return None
            key = (match["repo"], match["filename"])
            return (*key, hub.files[key]) if key in hub.files else None

        def _not_found(self) -> None:
            body = b'{"error": "Entry not found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def _headers(self, status: int, data: bytes, start: int) -> None:
            self.send_response(status)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data) - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()

        def do_HEAD(self) -> None:  # noqa: N802 (the http.server API)
            hub.requests.append(("HEAD", self.path, None))
            found = self._file()
            if found is None:
                return self._not_found()
            self._headers(200, found[2], 0)

        def do_GET(self) -> None:  # noqa: N802
            ranged = self.headers.get("Range")
            hub.requests.append(("GET", self.path, ranged))
            found = self._file()
            if found is None:
                return self._not_found()
            repo, filename, data = found
            start = int(re.match(r"bytes=(\d+)-", ranged)[1]) if ranged and re.match(r"bytes=(\d+)-", ranged) else 0
            self._headers(206 if start else 200, data, start)
            end = len(data)
            if (repo, filename) in hub.cut_once:
                hub.cut_once.discard((repo, filename))
                end = start + (len(data) - start) // 2
                self.close_connection = True
            try:
                held = False
                for offset in range(start, end, CHUNK):
                    self.wfile.write(data[offset:min(offset + CHUNK, end)])
                    if not held and offset + CHUNK - start >= hub._hold_after and not hub._released.is_set():
                        held = True
                        self.wfile.flush()
                        hub._held.set()
                        hub._released.wait(120)
                self.wfile.flush()
            except OSError:  # the client went away
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    return Handler
