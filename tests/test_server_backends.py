"""Every backend runs a job the same way: the same fault gives the same outcome, a fault never keeps a worker
busy, and /v1/health sees each backend's worker (the job it runs, stuck, dead).

Each test runs on the in-process worker (default run) and on one Ray worker of a local CPU cluster
(marker ``ray``), through the same app in this process.
"""

from __future__ import annotations

import base64
import errno
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from tests.support.job_views import finished_state
from tests.support.server_process import LOCAL, png_bytes
from tests.support.waiting import wait_until

QUICK = {"strokes": [2], "seeds": 1, "iterations": 1, "augmentations": 0}
ENDLESS = {"strokes": [2], "seeds": 1, "iterations": 100_000, "augmentations": 0}
TIMEOUT_S = 120.0
"""Long enough for a Ray worker to start and load its models on a busy machine."""


@pytest.fixture(scope="module", params=["in-process", pytest.param("ray", marks=pytest.mark.ray)])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The server settings of a backend (for Ray: one CPU worker on a local cluster this process joins)."""
    if request.param == "in-process":
        return {}
    return {"ray_workers": 1, "ray_gpus_per_worker": 0, "address": request.getfixturevalue("ray_cluster")}


@contextmanager
def serving(tiny_spec, data_dir: Path, backend: dict[str, Any], **config: Any) -> Iterator[TestClient]:
    """The app on ``backend`` with its worker running, as a test client."""
    settings = dict(backend)
    address = settings.pop("address", None)
    if address is not None:
        join_cluster(address)  # the app's stop leaves the cluster again
    app = create_app(ServerConfig(data_dir=data_dir, models=tiny_spec, **settings, **config))
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL) as client:
        yield client


def join_cluster(address: str) -> None:
    """Join the test cluster from this process, with its token (Ray read its auth settings when first imported)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    from clipasso_server.ray_backend import connect

    Config.initialize("")  # reread RAY_AUTH_MODE and RAY_AUTH_TOKEN, which the cluster fixture has set
    AuthenticationTokenLoader.instance().reset_cache()
    connect(address)


def submit(client: TestClient, params: dict[str, Any], seed: int) -> str:
    image = base64.b64encode(png_bytes(30, 20, seed=seed)).decode()
    created = client.post("/v1/jobs", json={"image": image, "params": {**params, "seed": seed}})
    assert created.status_code == 202, created.text
    return created.json()["id"]


def state_of(client: TestClient, job_id: str) -> dict[str, Any]:
    return client.get(f"/v1/jobs/{job_id}").json()


def running(client: TestClient, job_id: str) -> dict[str, Any]:
    return wait_until(lambda: (s := state_of(client, job_id))["status"] == "running" and s, TIMEOUT_S,
                      f"{job_id} to run")


class Unreadable:
    """A stored image the server may not read (as a file whose permissions changed under it)."""

    def read_bytes(self) -> bytes:
        raise PermissionError(errno.EACCES, "Permission denied")


def replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "deleted": lambda path: path.unlink(),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:40]),
    "not an image": lambda path: path.write_bytes(b"GIF89a but not really"),
    "a directory": replace_with_directory,
    "no permission": lambda path: None,  # see Unreadable
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_stored_image_damaged_before_its_job_runs_fails_alike_and_frees_the_worker(tiny_spec, tmp_path, backend,
                                                                                     monkeypatch, damage):
    with serving(tiny_spec, tmp_path / "data", backend) as client:
        store = client.app.state.queue.store
        blocker = submit(client, ENDLESS, seed=1)
        running(client, blocker)  # the one worker is busy: the next job waits in the queue
        victim = submit(client, QUICK, seed=2)
        assert state_of(client, victim)["status"] == "queued"
        path = store.image_path(store.get(victim))
        DAMAGE[damage](path)
        if damage == "no permission":
            real = store.image_path
            monkeypatch.setattr(store, "image_path", lambda job: Unreadable() if job.id == victim else real(job))
        assert client.delete(f"/v1/jobs/{blocker}").status_code == 200

        state = finished_state(client, victim, TIMEOUT_S)
        assert state["status"] == "failed", state
        assert state["error"]["code"] == "image_missing" and "submit it again" in state["error"]["message"], state
        after = submit(client, QUICK, seed=3)
        assert finished_state(client, after, TIMEOUT_S)["status"] == "succeeded", "the worker is free for the next job"
        assert client.get("/v1/health").json()["queue_length"] == 0


def test_health_names_the_running_job_and_calls_a_quiet_worker_stuck(tiny_spec, tmp_path, backend):
    with serving(tiny_spec, tmp_path / "data", backend, stuck_after_s=0.0) as client:
        assert client.get("/v1/health").status_code == 200
        job = submit(client, ENDLESS, seed=4)
        running(client, job)
        answer = wait_until(lambda: (a := client.get("/v1/health")).status_code == 503 and a, TIMEOUT_S,
                            "health to degrade")
        body = answer.json()
        assert body["status"] == "degraded" and body["error"]["code"] == "worker_stuck", body
        assert job in body["error"]["message"]
        assert body["worker"]["current_job"] == job and body["worker"]["stuck"] is True
        # "starting" until the dispatcher first polls the worker, which a busy machine can delay
        assert body["worker"]["phase"] in ("starting", "loading_models", "reading_image", "sketching"), body["worker"]
        assert client.delete(f"/v1/jobs/{job}").status_code == 200
        body = wait_until(lambda: (a := client.get("/v1/health")).status_code == 200 and a.json(), TIMEOUT_S,
                          "health to be ok")
        assert body["worker"]["current_job"] is None and body["worker"]["phase"] == "idle", body["worker"]


class Killed(BaseException):
    """Ends the thread it is raised in: no ``except Exception`` catches it."""


def test_health_calls_a_worker_dead_when_its_loop_has_ended(tiny_spec, tmp_path, backend, monkeypatch):
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the end is on purpose: no report
    with serving(tiny_spec, tmp_path / "data", backend) as client:
        store = client.app.state.queue.store

        def killed(*args: Any, **kwargs: Any) -> Any:
            raise Killed()

        monkeypatch.setattr(store, "claim_next", killed)
        submit(client, QUICK, seed=5)
        answer = wait_until(lambda: (a := client.get("/v1/health")).status_code == 503 and a, TIMEOUT_S,
                            "health to degrade")
        body = answer.json()
        assert body["error"]["code"] == "worker_dead" and body["worker"]["alive"] is False, body
        assert body["worker"]["phase"] == "stopped"
