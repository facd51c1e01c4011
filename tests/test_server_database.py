"""The job database as requests meet it. Another program holding a write lock on ``jobs.sqlite3`` (an SQLite
browser, a backup script; here a real second connection): writes answer 503 ``storage_unavailable`` naming the
database within the store's short busy timeout, reads keep answering, and all works again once the lock is gone.
A job's stored parameters are validated once, not at every poll."""

from __future__ import annotations

import base64
import sqlite3

import pytest
from fastapi.testclient import TestClient

from clipasso_core.params import SketchParams

from tests.support.job_views import finished_state
from tests.support.api_client import make_client
from tests.support.server_process import png_bytes

PARAMS = {"strokes": [2], "seeds": 1, "iterations": 1, "augmentations": 0}


def submit(client: TestClient, seed: int):
    image = base64.b64encode(png_bytes(30, 20, seed=seed)).decode()
    return client.post("/v1/jobs", json={"image": image, "params": {**PARAMS, "seed": seed}})


@pytest.mark.parametrize("lock", ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"])
def test_a_locked_database_is_503_for_writes_and_reads_keep_answering(client, lock):
    done = submit(client, 1).json()["id"]
    assert finished_state(client, done)["status"] == "succeeded"
    database = client.app.state.queue.store.data_dir / "jobs.sqlite3"
    other = sqlite3.connect(database, isolation_level=None)
    other.execute(lock)
    other.execute("UPDATE jobs SET runs = runs WHERE id = ?", (done,))  # holds the write lock
    try:
        refused = submit(client, 2)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "storage_unavailable"
        assert "jobs.sqlite3" in refused.json()["error"]["message"] and "lock" in refused.json()["error"]["message"]
        assert client.get(f"/v1/jobs/{done}").json()["status"] == "succeeded"
        assert client.get(f"/v1/jobs/{done}/result").status_code == 200
        assert client.get(f"/v1/jobs/{done}/result.svg").status_code == 200
        assert client.get("/v1/health").json()["queue_length"] == 0
        assert client.get(f"/jobs/{done}").status_code == 200
    finally:
        other.execute("ROLLBACK")
        other.close()
    again = submit(client, 2)
    assert again.status_code == 202, again.text
    assert finished_state(client, again.json()["id"])["status"] == "succeeded"


def test_a_jobs_stored_parameters_are_validated_once_not_at_every_poll(tiny_spec, tmp_path, monkeypatch):
    with make_client(tiny_spec, tmp_path / "data") as client:
        job_id = submit(client, 3).json()["id"]
        finished_state(client, job_id)
    validations = 0
    real = SketchParams.model_validate_json.__func__

    def counting(cls, *args, **kwargs):
        nonlocal validations
        validations += 1
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(SketchParams, "model_validate_json", classmethod(counting))
    with make_client(tiny_spec, tmp_path / "data") as client:  # a restarted server
        for _ in range(5):  # the live page polls the job every second
            assert client.get(f"/v1/jobs/{job_id}").json()["settings"]["strokes"] == [2]
    assert validations == 1
