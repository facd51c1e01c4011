"""Run the REAL sketch server (``python -m clipasso_server``) as a child process, for tests.

The server loads tiny CLIP models (random weights, real files; see ``testkit/tiny_models.py``), listens on a
free loopback port (``--port 0``; the URL is read from the line it prints) and keeps its jobs in a data
directory of the test's choosing, so a test can SIGKILL it and start it again on the same data::

    from tests.support.server_process import start_server

    with start_server(tmp_path / "data", tiny_spec) as server:   # or models=a folder for tiny models
        status, body = server.request("GET", "/v1/health")
        server.kill()                                            # SIGKILL, like a crash
        server = server.restart()                                # same data dir, same options, new port

``start_server(data_dir, models, token=None, extra_args=())`` returns a :class:`ServerProcess` with
``.url``, ``.request(method, path, body=None, token=...)`` (stdlib HTTP, returns ``(status, json)``),
``.output()`` (everything the server printed: one log line per job state change), ``.stop()``
(SIGTERM, graceful), ``.kill()`` (SIGKILL) and ``.restart()``. Jobs: ``submit_image(server, png_bytes, **params)``,
``wait_for_status``, ``wait_for_progress`` and ``queue_blocked``. The fixtures that start servers are in
``tests/conftest.py`` (``live_server``: one plain server for the whole session).
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from clipasso_core.models import ModelSpec
from testkit import STEADY_ENV
from testkit.tiny_models import model_options, tiny_models_in

START_TIMEOUT_S = 90.0
URL_LINE = re.compile(r"clipasso-server: listening on (http://\S+)")
LOCAL = "http://127.0.0.1"
"""Base URL for in-process TestClients: without a token the server answers only loopback Host names."""
FAST_PARAMS = {"strokes": [2, 4], "seeds": 1, "iterations": 2, "augmentations": 0}
"""Sketch parameters for a quick job with the tiny models on a CPU (well under a second per job)."""

_UNSET: Any = object()


class ServerProcess:
    """A running ``clipasso-server`` child process and the URL it listens on."""

    def __init__(self, args: list[str], data_dir: Path, token: str | None, env: dict[str, str] | None = None,
                 timeout: float = START_TIMEOUT_S) -> None:
        self.args = args
        self.data_dir = data_dir
        self.token = token
        self.env = env
        self.url = ""
        self._lines: list[str] = []
        self._seen = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clipasso_server", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace", bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **STEADY_ENV, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            match = self.wait_for_output(URL_LINE, timeout)
            self.url = match.group(1)
            self._wait_healthy(timeout)
        except BaseException:
            self.kill()
            raise

    # -- output ----------------------------------------------------------------------------------
    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._seen:
                self._lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        with self._seen:
            return "".join(self._lines)

    def wait_for_output(self, pattern: str | re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        """Wait until a line matching ``pattern`` is printed; fails if the process exits or time runs out."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        checked = 0
        with self._seen:
            while True:
                for line in self._lines[checked:]:
                    found = regex.search(line)
                    if found:
                        return found
                checked = len(self._lines)
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise RuntimeError(f"clipasso-server exited ({self.process.returncode}) before printing "
                                       f"{regex.pattern!r}:\n{''.join(self._lines)}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"clipasso-server did not print {regex.pattern!r} within {timeout} s:\n"
                                       + "".join(self._lines))
                self._seen.wait(min(left, 0.2))

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, _ = self.request("GET", "/v1/health", timeout=5)
                if status in (200, 503):  # 503: up, but degraded (e.g. still downloading its models)
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"clipasso-server at {self.url} never answered /v1/health:\n{self.output()}")
            time.sleep(0.1)

    # -- HTTP ------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, token: Any = _UNSET, timeout: float = 30.0,
                raw: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """Send one request (``body`` as JSON, or ``raw`` bytes); returns (status, decoded JSON or text).

        ``token`` defaults to the server's own; pass ``None`` to send no Authorization header.
        """
        token = self.token if token is _UNSET else token
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        text = payload.decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    # -- life cycle ------------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL the server (as a crash would) and wait for it to be gone."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self._reader.join(5)

    def stop(self, timeout: float = 15.0) -> int:
        """Stop the server gracefully (SIGTERM; SIGKILL after ``timeout``); returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self._reader.join(5)
        return int(self.process.returncode)

    def restart(self, timeout: float = START_TIMEOUT_S) -> "ServerProcess":
        """Stop this server if it still runs, then start a new one with the same options and data dir."""
        self.stop()
        return ServerProcess(self.args, self.data_dir, self.token, self.env, timeout)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_args(data_dir: Path, models: Path | ModelSpec, token: str | None = None,
                extra_args: Sequence[str] = ()) -> list[str]:
    """The command-line options :func:`start_server` passes (free loopback port, tiny models)."""
    spec = models if isinstance(models, ModelSpec) else tiny_models_in(Path(models))
    args = ["--host", "127.0.0.1", "--port", "0", "--data-dir", str(data_dir), *model_options(spec)]
    if token is not None:
        args += ["--token", token]
    return [*args, *extra_args]


def start_server(data_dir: Path, models: Path | ModelSpec, token: str | None = None,
                 extra_args: Sequence[str] = (), env: dict[str, str] | None = None,
                 timeout: float = START_TIMEOUT_S) -> ServerProcess:
    """Start ``clipasso-server`` with tiny models on a free loopback port; returns once /v1/health answers."""
    return ServerProcess(server_args(Path(data_dir), models, token, extra_args), Path(data_dir), token, env, timeout)


# -- helpers for tests --------------------------------------------------------------------------
def png_bytes(width: int = 64, height: int = 48, seed: int = 0, image_format: str = "PNG") -> bytes:
    """A small picture (a dark disc and a bar on white) as PNG (or another Pillow format) bytes."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    shift = seed % 7
    draw.ellipse((width * 0.2 + shift, height * 0.2, width * 0.6 + shift, height * 0.7), fill=(20, 20, 20))
    draw.rectangle((width * 0.65, height * 0.1, width * 0.75, height * 0.9), fill=(60, 60, 160))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def submit_image(server: ServerProcess, image: bytes, **params: Any) -> tuple[int, Any]:
    """POST /v1/jobs with ``image`` (bytes) and ``params`` (FAST_PARAMS unless given)."""
    body = {"image": base64.b64encode(image).decode("ascii"), "params": {**FAST_PARAMS, **params}}
    return server.request("POST", "/v1/jobs", body)


def wait_for_status(server: ServerProcess, job_id: str, statuses: Sequence[str] = ("succeeded", "failed", "cancelled"),
                    timeout: float = 120.0, interval: float = 0.05) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} until its status is one of ``statuses``; returns that state."""
    deadline = time.monotonic() + timeout
    while True:
        status, state = server.request("GET", f"/v1/jobs/{job_id}")
        assert status == 200, state
        if state["status"] in statuses:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {state['status']} after {timeout} s:\n{server.output()}")
        time.sleep(interval)


def wait_for_progress(server: ServerProcess, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll until the job reports progress with iteration > 0 (or finishes); returns that state."""
    deadline = time.monotonic() + timeout
    while True:
        status, state = server.request("GET", f"/v1/jobs/{job_id}")
        assert status == 200, state
        if (state.get("progress") or {}).get("iteration", 0) > 0 or state["status"] not in ("queued", "running"):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} reported no progress within {timeout} s:\n{server.output()}")
        time.sleep(0.05)



@contextlib.contextmanager
def queue_blocked(server: ServerProcess) -> Iterator[Callable[[], None]]:
    """Keep the server's one worker busy with a long job, so jobs submitted meanwhile stay queued;
    yields the function that cancels it (it is cancelled on the way out in any case)."""
    status, blocker = submit_image(server, png_bytes(seed=5), strokes=[4], iterations=100_000, seed=987)
    assert status == 202, blocker

    def release() -> None:
        server.request("DELETE", f"/v1/jobs/{blocker['id']}")

    try:
        yield release
    finally:
        release()
