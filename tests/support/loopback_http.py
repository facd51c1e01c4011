"""A threaded HTTP server on 127.0.0.1 at a free port, for the stand-ins the tests serve (a sketch server, the hub).

A stand-in subclasses :class:`LoopbackHttpServer` with the request handler class that answers for it; it
serves while its ``with`` block runs.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

Server = TypeVar("Server", bound="LoopbackHttpServer")


class LoopbackHttpServer:
    """Serves ``handler`` on 127.0.0.1 in a daemon thread, from ``__enter__`` to ``__exit__``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, where it serves."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self: Server) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
