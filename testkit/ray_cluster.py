"""A local Ray cluster for tests and benchmarks: ``ray start --head --block`` on this machine, CPUs only, ended by its pid.

The cluster uses Ray's token authentication with a token of its own (``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN``, set in this process's environment while it runs, so servers started by the tests
join it the way the README tells a studio to); a ``~/.ray/auth_token`` left on the machine plays no part.

``local_ray_cluster(tmp_dir, cpus)`` is a context manager yielding the cluster's address
(``127.0.0.1:PORT``); the tests' ``ray_cluster`` fixture (``tests/conftest.py``) and ``bench/studio.py`` use it.
Without Ray installed (``pip install -e '.[ray]'``) it raises a RuntimeError saying so; the fixture skips first.
"""

from __future__ import annotations

import importlib.util
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

from testkit import STEADY_ENV

START_TIMEOUT_S = 120.0
RAY_MISSING = "Ray is not installed (pip install -e '.[ray]')"


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def short_temp_dir(prefix: str) -> Iterator[Path]:
    """A new folder directly under /tmp (Ray's socket paths must stay short), removed with its contents afterwards."""
    folder = Path(f"/tmp/{prefix}-{os.getpid()}-{free_port()}")
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def local_ray_cluster(temp_dir: Path, cpus: int, token: str | None = None) -> Iterator[str]:
    """Start a one-node Ray cluster with ``cpus`` CPUs and no GPUs; yields its address, then ends it.

    ``token``: the cluster's auth token (default: a new one). A process that joins the cluster itself must
    have ``RAY_AUTH_MODE=token`` and this token in its environment before it imports Ray.
    """
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token or secrets.token_hex(32)}
    if importlib.util.find_spec("ray") is None:
        raise RuntimeError(RAY_MISSING)
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

