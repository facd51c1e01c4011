"""A stand-in for the CLIPasso sketch server (API v1), ONLY for what the real one cannot do on demand.

The extension's tests run against the real server (``python -m clipasso_server`` with tiny models,
see server_process.py) wherever it can show the behaviour: sketches, pending jobs, failed and
cancelled jobs, broken models, token refusals. A real server cannot be made at will to

* answer POST /v1/jobs with a 500 carrying a JSON error message (``error_message``): its own 500s
  are unexpected bugs, with a generic message;
* accept connections but not answer in time (``response_delay``, seconds before every answer);
* speak an older API revision (``api_version``: what /v1/health reports; None leaves it out);
* send a malformed result (``result``: POST /v1/jobs then creates job "fake-job", which has
  succeeded at once and whose result is that body);
* cut the connection on a request body over ``cut_above`` bytes without reading it, as servers do
  that refuse a large body by its Content-Length (a real one answers 413 first, which a client
  busy sending may never read), and report an upload limit or none (``max_body_bytes``);
  ``requests`` lists the (method, path, Authorization header or None) of every request received;

so those cases, and only those, use this fake. It answers /v1/health as a healthy server and
refuses everything else with the API's JSON 404; the ``sketch_server`` fixture (``tests/conftest.py``)
starts one per test.
"""

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import List, Optional, Tuple

from tests.support.loopback_http import LoopbackHttpServer


class FakeSketchServer(LoopbackHttpServer):
    """The API on 127.0.0.1 in a thread (``url``); attributes below steer its behaviour between requests."""

    def __init__(self) -> None:
        self.error_message: Optional[str] = None  # POST /v1/jobs answers 500 with this message
        self.response_delay = 0.0  # seconds to sleep before every answer
        self.result: Optional[object] = None  # the body of GET /v1/jobs/fake-job/result; None: no jobs
        self.cut_above: Optional[int] = None  # larger request bodies: connection closed unread
        self.max_body_bytes: Optional[int] = None  # the upload limit /v1/health reports (None: not reported)
        self.api_version: Optional[int] = 3  # the API revision /v1/health reports (None: none, as before revision 2)
        self.requests: List[Tuple[str, str, Optional[str]]] = []
        super().__init__(_handler_for(self))

    def handle(self, method: str, path: str) -> Tuple[int, object]:
        """Answer one request: (HTTP status, JSON body)."""
        if self.response_delay:
            time.sleep(self.response_delay)
        if method == "GET" and path == "/v1/health":
            health = {"version": "fake-1.0", "device": "cpu", "models_loaded": True, "models_error": None,
                      "queue_length": 0}
            if self.api_version is not None:
                health["api_version"] = self.api_version
            return 200, health if self.max_body_bytes is None else {**health, "max_body_bytes": self.max_body_bytes}
        if method == "POST" and path == "/v1/jobs" and self.error_message is not None:
            return 500, _error("internal", self.error_message)
        if self.result is not None:
            if method == "POST" and path == "/v1/jobs":
                return 202, {"id": "fake-job", "status": "queued"}
            if method == "GET" and path == "/v1/jobs/fake-job":
                return 200, {"id": "fake-job", "status": "succeeded", "progress": None, "error": None}
            if method == "GET" and path == "/v1/jobs/fake-job/result":
                return 200, self.result
        return 404, _error("not_found", f"the fake does not serve {method} {path}")


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _handler_for(server: FakeSketchServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            server.requests.append((self.command, self.path, self.headers.get("Authorization")))
            length = int(self.headers.get("Content-Length") or 0)
            if server.cut_above is not None and length > server.cut_above:
                self.close_connection = True
                return
            if length:
                self.rfile.read(length)
            status, answer = server.handle(self.command, self.path)
            payload = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up waiting (response_delay)
                pass

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args) -> None:
            pass

    return Handler

