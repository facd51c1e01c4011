"""A local Ray cluster for tests: ``ray start --head --block`` on this machine, CPUs only, ended by its pid.

The cluster uses Ray's token authentication with a token of its own (``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN``, set in this process's environment while it runs, so servers started by the tests
join it the way the README tells a studio to); a ``~/.ray/auth_token`` left on the machine plays no part.

``local_ray_cluster(tmp_dir, cpus)`` is a context manager yielding the cluster's address
(``127.0.0.1:PORT``); the ``ray_cluster`` fixture (one per test module) uses it. Tests that need it
skip with the reason when Ray is not installed (``pip install -e '.[ray]'``); CI installs it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from server_process import STEADY_ENV

START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_ray_cluster(temp_dir: Path, cpus: int, token: str | None = None) -> Iterator[str]:
    """Start a one-node Ray cluster with ``cpus`` CPUs and no GPUs; yields its address, then ends it.

    ``token``: the cluster's auth token (default: a new one). A process that joins the cluster itself must
    have ``RAY_AUTH_MODE=token`` and this token in its environment before it imports Ray.
    """
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token or secrets.token_hex(32)}
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    port = free_port()
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
               "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", str(cpus), "--num-gpus", "0",
               "--include-dashboard", "false", "--object-store-memory", str(100 * 1024 * 1024),
               "--temp-dir", str(temp_dir), "--disable-usage-stats"]
    log = open(temp_dir.parent / f"ray-head-{port}.log", "w+")
    head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, **STEADY_ENV, **auth, "RAY_USAGE_STATS_ENABLED": "0"})
    saved = {name: os.environ.get(name) for name in auth}
    os.environ.update(auth)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ray runtime started" not in Path(log.name).read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start:\n{Path(log.name).read_text()}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)
            try:
                head.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever the head started and left behind is in its own process group
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait(30)
        log.close()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a local 4-CPU Ray cluster shared by one test module."""
    folder = Path(f"/tmp/ray-{os.getpid()}-{free_port()}")  # Ray's socket paths must stay short
    folder.mkdir()
    try:
        with local_ray_cluster(folder, cpus=4) as address:
            yield address
    finally:
        shutil.rmtree(folder, ignore_errors=True)
