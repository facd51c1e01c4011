"""The Ray backend on a local CPU-only Ray cluster: two worker actors, tiny models, the real server process.

Marker ``ray``: excluded from the default run (Ray clusters take a while to start); CI runs them in
their own step (``python3 -m pytest -m ray``).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipasso_core.svg import read_sketch_document
from tests.support.job_views import fetch, layers, wait_for_preview
from tests.support.server_process import (ServerProcess, png_bytes, start_server, submit_image, wait_for_progress,
                                          wait_for_status)

pytestmark = pytest.mark.ray

LONG_JOB = {"strokes": [4], "seeds": 1, "iterations": 100_000, "augmentations": 0}
MEDIUM_JOB = {"strokes": [2], "seeds": 1, "iterations": 400, "augmentations": 0}
"""Long enough to be caught running between two polls also on a quiet machine (40 steps were not: CI's Ray step
failed twice so), short enough to run again to its end after a kill."""
WORKERS_TIMEOUT_S = 120.0


def wait_for_workers(server: ServerProcess, count: int = 2) -> list[dict]:
    """Wait until ``count`` workers are idle (their models loaded); returns /v1/health's workers."""
    deadline = time.monotonic() + WORKERS_TIMEOUT_S
    while True:
        workers = server.request("GET", "/v1/health")[1]["workers"]
        if sum(worker["status"] == "idle" for worker in workers) >= count:
            return workers
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Ray workers did not come up: {workers}\n{server.output()}")
        time.sleep(0.2)


def ray_server(data_dir: Path, models: Path, address: str) -> ServerProcess:
    """A sketch server with two Ray CPU workers, once both are ready."""
    server = start_server(data_dir, models, extra_args=["--ray", address, "--ray-workers", "2"])
    wait_for_workers(server)
    return server


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="module")
def server(ray_cluster: str, models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ray_server(tmp_path_factory.mktemp("data"), models, ray_cluster)
    try:
        yield process
    finally:
        process.stop()


def started_lines(server: ServerProcess, job_id: str) -> list[str]:
    """The workers named in the server's 'job … started on …' lines for ``job_id``."""
    return re.findall(rf"job {job_id} started on (\S+)", server.output())


def test_health_lists_both_workers_and_jobs_spread_over_them(server):
    workers = server.request("GET", "/v1/health")[1]["workers"]
    assert sorted(w["name"] for w in workers) == ["ray-0", "ray-1"]
    assert all(w["device"] == "cpu" and w["host"] and w["pid"] != os.getpid() for w in workers)
    jobs = [submit_image(server, png_bytes(seed=number), seed=number)[1]["id"] for number in range(4)]
    states = [wait_for_status(server, job) for job in jobs]
    assert all(state["status"] == "succeeded" for state in states), states
    assert {state["worker"]["name"] for state in states} == {"ray-0", "ray-1"}
    status, result = server.request("GET", f"/v1/jobs/{jobs[0]}/result")
    assert status == 200 and (result["width"], result["height"]) == (64, 48) and result["levels"][0]["paths"]
    done = {w["name"]: w["jobs_done"] for w in server.request("GET", "/v1/health")[1]["workers"]}
    assert sum(done.values()) >= 4 and all(done.values())


def test_progress_and_preview_of_a_ray_job_are_relayed_while_it_runs(server):
    _, job = submit_image(server, png_bytes(seed=10), **{**LONG_JOB, "strokes": [2, 4], "eval_interval": 2})
    first = wait_for_progress(server, job["id"])
    assert first["status"] == "running" and first["worker"]["name"] in ("ray-0", "ray-1")
    _, preview = wait_for_preview(server, job["id"])
    assert layers(preview) == [("2 strokes", 2, False), ("4 strokes", 4, True)]
    deadline = time.monotonic() + 60
    while (later := server.request("GET", f"/v1/jobs/{job['id']}")[1])["progress"]["iteration"] \
            <= first["progress"]["iteration"] or wait_for_preview(server, job["id"])[1] == preview:
        assert time.monotonic() < deadline, "neither the progress nor the preview moved"
        time.sleep(0.2)
    assert later["progress"]["total"] == LONG_JOB["iterations"] and later["progress"]["best_loss"]
    assert later["progress"]["elapsed_s"] > 0 and later["progress"]["eta_s"] > 0, later["progress"]
    assert server.request("DELETE", f"/v1/jobs/{job['id']}")[1]["status"] == "cancelled"
    server.wait_for_output(rf"job {job['id']} cancelled \(ran", timeout=30)
    assert layers(wait_for_preview(server, job["id"])[1]) == layers(preview), "the best strokes stay viewable"


def test_a_finished_ray_jobs_preview_ends_at_its_result(server):
    _, job = submit_image(server, png_bytes(seed=11), **{**MEDIUM_JOB, "strokes": [2, 4], "eval_interval": 5})
    assert wait_for_status(server, job["id"])["status"] == "succeeded"
    _, _, result = fetch(server, f"/v1/jobs/{job['id']}/result.svg")
    _, preview = wait_for_preview(server, job["id"], timeout=0)
    assert layers(preview) == layers(result)
    for seen, final in zip(read_sketch_document(preview).layers, read_sketch_document(result).layers):
        assert seen.level.paths == final.level.paths


def test_cancel_a_queued_and_a_running_ray_job(server):
    running = [submit_image(server, png_bytes(seed=20 + n), **LONG_JOB)[1]["id"] for n in range(2)]
    for job in running:
        assert wait_for_progress(server, job)["status"] == "running"
    _, queued = submit_image(server, png_bytes(seed=22), **LONG_JOB)
    assert queued["status"] == "queued"
    status, state = server.request("DELETE", f"/v1/jobs/{queued['id']}")
    assert status == 200 and state["status"] == "cancelled" and state["error"]["code"] == "cancelled"

    asked = time.monotonic()
    for job in running:
        assert server.request("DELETE", f"/v1/jobs/{job}")[1]["status"] == "cancelled"
    for job in running:
        server.wait_for_output(rf"job {job} cancelled \(ran", timeout=30)
    print(f"both running jobs stopped {time.monotonic() - asked:.1f} s after the cancel")
    wait_for_workers(server)
    assert started_lines(server, queued["id"]) == [], "the cancelled queued job never ran"
    assert server.request("GET", "/v1/health")[1]["queue_length"] == 0
    status, body = server.request("GET", f"/v1/jobs/{running[0]}/result")
    assert status == 409 and body["error"]["code"] == "job_cancelled"


def test_a_killed_worker_costs_only_time_its_job_finishes_once_on_a_live_worker(server):
    wait_for_workers(server)
    _, job = submit_image(server, png_bytes(seed=30), **MEDIUM_JOB)
    state = wait_for_progress(server, job["id"])
    assert state["status"] == "running"
    victim = state["worker"]
    os.kill(victim["pid"], signal.SIGKILL)
    final = wait_for_status(server, job["id"])
    assert final["status"] == "succeeded", final
    # On the other worker, or on the killed one's restart when Ray brought it back before the job was given again.
    assert final["worker"]["pid"] != victim["pid"]
    assert len(re.findall(rf"job {job['id']} succeeded", server.output())) == 1
    assert started_lines(server, job["id"]) == [victim["name"], final["worker"]["name"]]
    assert f"worker {victim['name']} was lost while running job {job['id']}; the job is queued again" \
        in server.output()
    # Ray restarts the killed worker in a new process; it joins again.
    workers = {w["name"]: w for w in wait_for_workers(server)}
    assert workers[victim["name"]]["pid"] != victim["pid"]


def test_round_robin_between_clients_on_ray_workers(server):
    wait_for_workers(server)
    def submit(client: str, seed: int) -> str:
        body = {"image": _b64(png_bytes(seed=seed)), "params": {**MEDIUM_JOB, "iterations": 60, "seed": seed},
                "client": client}
        status, created = server.request("POST", "/v1/jobs", body)
        assert status == 202 and created["status"] == "queued", created
        return created["id"]

    a = [submit("A", 40 + n) for n in range(6)]
    b = submit("B", 50)
    states = {job: wait_for_status(server, job, timeout=300) for job in [*a, b]}
    started = {job: state["started_at"] for job, state in states.items()}
    assert states[b]["created_at"] < started[a[2]], "B's job came while A's third still waited"
    assert started[b] < started[a[2]], started


def test_a_killed_ray_server_restarts_and_completes_its_job(ray_cluster, models, tmp_path, server):
    server.stop()  # frees the module server's two workers for this test's server
    other = ray_server(tmp_path / "data", models, ray_cluster)
    try:
        _, job = submit_image(other, png_bytes(seed=60), **MEDIUM_JOB)
        assert wait_for_progress(other, job["id"])["status"] == "running"
        other.kill()
        other = other.restart()
        final = wait_for_status(other, job["id"], timeout=300)
        assert final["status"] == "succeeded", final
        assert re.search(rf"job {job['id']} started on \S+ .*run 2\)", other.output())
    finally:
        other.stop()


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
