"""A Ray cluster that refuses the server's token, and one whose head is lost under a running server: each is said
in a sentence. Uses its own local CPU-only Ray cluster (the head is killed), marker ``ray``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.server_process import png_bytes, start_server, submit_image, wait_for_status

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from testkit.ray_cluster import local_ray_cluster, short_temp_dir  # noqa: E402
from testkit.tiny_models import model_options, tiny_models_in  # noqa: E402

QUICK = {"strokes": [2], "seeds": 1, "iterations": 2, "augmentations": 0}


def gcs_process_group(port: str) -> int:
    """The process group of the Ray head whose GCS listens on ``port``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"gcs_server") for part in command[:1]) and f"--gcs_server_port={port}".encode() in command:
            return os.getpgid(int(pid))
    raise AssertionError(f"no GCS server on port {port}")


def server_alone(address: str, data_dir: Path, models: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``clipasso-server --ray ADDRESS`` run to its end with ``env``."""
    command = [sys.executable, "-m", "clipasso_server", "--port", "0", "--data-dir", str(data_dir), "--ray", address,
               "--ray-workers", "1", *model_options(tiny_models_in(models))]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


def test_a_refused_token_is_named_and_a_lost_head_is_said_in_a_sentence(tmp_path):
    models = tmp_path / "models"
    with short_temp_dir("ray") as folder, local_ray_cluster(folder, cpus=2) as address:
        without = {name: value for name, value in os.environ.items() if not name.startswith("RAY_AUTH")}
        for env in (without, {**os.environ, "RAY_AUTH_TOKEN": "0" * 64}):
            done = server_alone(address, tmp_path / "refused", models, env)
            assert done.returncode == 1, done.stderr
            last = done.stderr.strip().splitlines()[-1]
            assert last.startswith("clipasso-server: error: the Ray cluster at") and "RAY_AUTH_TOKEN" in last, last
            assert "RAY_AUTH_MODE=token" in last and "ray start --head" not in last

        server = start_server(tmp_path / "data", models, extra_args=["--ray", address, "--ray-workers", "1"])
        try:
            _, created = submit_image(server, png_bytes(30, 20, seed=2), **QUICK)
            assert wait_for_status(server, created["id"], timeout=300)["status"] == "succeeded"
            os.killpg(gcs_process_group(address.rpartition(":")[2]), signal.SIGKILL)  # the head's machine is gone

            deadline = time.monotonic() + 10
            while (health := server.request("GET", "/v1/health"))[0] != 503:
                assert time.monotonic() < deadline, health
                time.sleep(0.2)
            assert health[1]["error"]["code"] == "workers_unreachable", health
            message = health[1]["error"]["message"]
            assert f":{address.rpartition(':')[2]}'" in message and "ray start --head" in message, message
            assert server.request("GET", f"/v1/jobs/{created['id']}")[1]["status"] == "succeeded"
            assert server.request("GET", f"/v1/jobs/{created['id']}/result")[0] == 200

            assert server.process.wait(120) == 1
            output = server.output()
            assert "clipasso-server: error: The head of the Ray cluster" in output, output[-3000:]
            assert "clipasso-server stops; unfinished jobs run again at its next start" in output
        finally:
            server.stop()
