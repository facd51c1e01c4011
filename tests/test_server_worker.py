"""The job worker never dies and the server never wedges: faults in every step of a job, in this process."""

from __future__ import annotations

import base64
import errno
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clipasso_core.params import SketchParams
from clipasso_server import dispatcher, runner
from clipasso_server.store import JobStore
from tests.support.api_client import make_client
from tests.support.job_views import finished_state
from tests.support.server_process import png_bytes
from tests.support.waiting import wait_until

PARAMS = {"strokes": [2], "seeds": 1, "iterations": 1, "augmentations": 0}


def submit(client: TestClient, seed: int = 0) -> str:
    image = base64.b64encode(png_bytes(30, 20, seed=seed)).decode()
    created = client.post("/v1/jobs", json={"image": image, "params": PARAMS})
    assert created.status_code == 202, created.text
    return created.json()["id"]


class Faulty:
    """Wraps a store method: raises ``error`` while ``on`` is set (or the first ``times`` calls), then delegates."""

    def __init__(self, method: Callable[..., Any], error: BaseException, times: int | None = None) -> None:
        self.method, self.error, self.times, self.calls = method, error, times, 0
        self.on = threading.Event()
        if times is None:
            self.on.set()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.on.is_set() or (self.times is not None and self.calls <= self.times):
            raise self.error
        return self.method(*args, **kwargs)


@pytest.mark.parametrize("method", ["claim_next", "succeed", "fail"])
def test_errors_in_every_store_call_do_not_end_the_worker(client, monkeypatch, caplog, method):
    store = client.app.state.queue.store
    faulty = Faulty(getattr(store, method), RuntimeError(f"injected fault in {method}"), times=4)
    monkeypatch.setattr(store, method, faulty)
    if method == "fail":  # fail() only runs when a job fails: make the first jobs fail
        monkeypatch.setattr(runner, "sketch_image", _raise(ValueError("sketch broke")))
    job_id = submit(client, seed=1)
    first = finished_state(client, job_id)
    assert faulty.calls >= 1, "the fault was never met"
    monkeypatch.undo()
    # The worker lives on: health is ok, and the next job runs to its end.
    assert finished_state(client, submit(client, seed=2))["status"] == "succeeded"
    health = client.get("/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok", health.json()
    assert health.json()["worker"]["alive"] is True
    assert f"injected fault in {method}" in (health.json()["worker"]["last_error"] or "")
    assert first["status"] in ("succeeded", "failed")
    # One traceback per fault, not one per retry.
    assert caplog.text.count(f"injected fault in {method}") <= 2, caplog.text


def test_a_failure_while_recording_a_failure_does_not_wedge_the_job(client, monkeypatch):
    store = client.app.state.queue.store
    monkeypatch.setattr(runner, "sketch_image", _raise(ValueError("sketch broke")))
    failing = Faulty(store.fail, OSError(errno.ENOSPC, "No space left on device"))
    monkeypatch.setattr(store, "fail", failing)
    job_id = submit(client)
    state = wait_until(lambda: (s := client.get(f"/v1/jobs/{job_id}").json())["error"] and s, what="the error")
    assert state["status"] == "failed" and state["error"]["code"] == "internal_error", "the run's end reads so"
    health = client.get("/v1/health")
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert health.json()["error"]["code"] == "storage_full"
    assert str(store.data_dir) in health.json()["error"]["message"]
    failing.on.clear()  # space is back: the failure is recorded
    assert finished_state(client, job_id)["error"]["code"] == "internal_error"
    assert wait_until(lambda: client.get("/v1/health").status_code == 200, what="health to recover")


def test_a_result_that_cannot_be_saved_is_kept_and_saved_when_space_returns(client, monkeypatch):
    store = client.app.state.queue.store
    full = Faulty(store.succeed, OSError(errno.ENOSPC, "No space left on device"))
    monkeypatch.setattr(store, "succeed", full)
    job_id = submit(client)
    state = wait_until(lambda: (s := client.get(f"/v1/jobs/{job_id}").json())["error"] and s, what="the error")
    assert state["status"] == "succeeded" and state["error"]["code"] == "storage_full", "a finished sketch reads so"
    assert str(store.data_dir) in state["error"]["message"]
    kept = client.get(f"/v1/jobs/{job_id}/result")
    assert kept.status_code == 200 and kept.json()["levels"][0]["strokes"] == 2
    document = client.get(f"/v1/jobs/{job_id}/result.svg")
    assert document.status_code == 200 and document.text.count("<path") == 2, document.text
    assert client.delete(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", "a finished job is left as it is"
    waiting = submit(client, seed=3)  # accepted, and run once the first result is saved
    assert client.get(f"/v1/jobs/{waiting}").json()["status"] == "queued"
    full.on.clear()
    wait_until(lambda: client.get("/v1/health").status_code == 200, what="the result to be saved")
    assert finished_state(client, job_id)["status"] == "succeeded" and store.result_path(store.get(job_id)).is_file()
    assert client.get(f"/v1/jobs/{job_id}/result").json() == kept.json()
    assert finished_state(client, waiting)["status"] == "succeeded"


def test_a_stored_job_that_no_longer_validates_fails_with_a_reason(tiny_spec, tmp_path):
    data = tmp_path / "data"
    store = JobStore(data)
    jobs = [store.submit(png_bytes(30, 20, seed=i), SketchParams(**PARAMS), f"key{i}")[0] for i in range(3)]
    store.close()
    with sqlite3.connect(data / "jobs.sqlite3") as db:  # as another version with other limits would leave them
        db.execute("UPDATE jobs SET params = ? WHERE id = ?", ('{"strokes": [-4], "iterations": "many"}', jobs[0].id))
        db.execute("UPDATE jobs SET params = ?, progress = ? WHERE id = ?", ("not json", "[1,", jobs[1].id))
    with make_client(tiny_spec, data) as client:
        for job in jobs[:2]:
            state = finished_state(client, job.id)
            assert state["status"] == "failed" and state["error"]["code"] == "invalid_stored_job", state
            assert "submit the image again" in state["error"]["message"]
            assert client.delete(f"/v1/jobs/{job.id}").status_code == 200
            assert client.get(f"/v1/jobs/{job.id}/result").status_code == 409
        assert "strokes" in client.get(f"/v1/jobs/{jobs[0].id}").json()["error"]["message"]
        assert finished_state(client, jobs[2].id)["status"] == "succeeded"
        assert client.get("/v1/health").json()["status"] == "ok"


def test_health_turns_degraded_when_the_worker_is_stuck(tiny_spec, tmp_path, monkeypatch):
    release = threading.Event()

    def hang(*args: Any, **kwargs: Any) -> Any:  # a job whose device call never returns
        release.wait(60)
        raise ValueError("released")

    monkeypatch.setattr(runner, "sketch_image", hang)
    with make_client(tiny_spec, tmp_path / "data", stuck_after_s=0.5) as client:
        assert client.get("/v1/health").status_code == 200
        job_id = submit(client)
        answer = wait_until(lambda: (a := client.get("/v1/health")).status_code == 503 and a, what="degraded")
        body = answer.json()
        assert body["status"] == "degraded" and body["error"]["code"] == "worker_stuck"
        assert job_id in body["error"]["message"] and body["worker"]["current_job"] == job_id
        assert body["worker"]["stuck"] is True and body["worker"]["phase"] == "sketching"
        release.set()
        assert finished_state(client, job_id)["status"] == "failed"
        assert client.get("/v1/health").status_code == 200


def test_health_turns_degraded_when_the_worker_thread_is_dead(tiny_spec, tmp_path, monkeypatch):
    def die(self: Any) -> None:  # the thread ends, as if killed by something outside the worker's control
        return None

    monkeypatch.setattr(dispatcher.Dispatcher, "_loop", die)
    with make_client(tiny_spec, tmp_path / "data") as client:
        client.app.state.queue.dispatcher._thread.join(10)
        answer = client.get("/v1/health")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "worker_dead" and answer.json()["worker"]["alive"] is False


def test_a_repeating_worker_error_is_logged_once(client, monkeypatch, caplog):
    store = client.app.state.queue.store
    monkeypatch.setattr(client.app.state.queue.dispatcher, "_backoff_max_s", 0.05)
    faulty = Faulty(store.claim_next, sqlite3.OperationalError("disk I/O error"))
    monkeypatch.setattr(store, "claim_next", faulty)
    with caplog.at_level(logging.INFO, logger="clipasso_server"):
        client.app.state.queue.dispatcher.wake()
        wait_until(lambda: faulty.calls >= 20, what="20 failed claims")
        faulty.on.clear()
        assert finished_state(client, submit(client))["status"] == "succeeded"
    assert caplog.text.count("claiming the next job") == 1, caplog.text
    assert "repeated" in caplog.text


def _raise(error: BaseException) -> Callable[..., Any]:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise error
    return explode
