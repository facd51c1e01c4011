"""An identical job asked for by two clients runs once, and a cancel withdraws only the canceller's interest:
the other client's job goes on, the canceller sees its job cancelled, and the job stops when no client wants it."""

from __future__ import annotations

import base64
import time

from fastapi.testclient import TestClient

from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from tests.support.server_process import LOCAL, png_bytes
from tests.support.waiting import wait_until

ENDLESS = {"strokes": [2], "seeds": 1, "iterations": 100_000, "augmentations": 0}


def submit(client: TestClient, name: str | None, headers: dict[str, str] | None = None) -> str:
    body = {"image": base64.b64encode(png_bytes(30, 20, seed=8)).decode(), "params": ENDLESS}
    if name is not None:
        body["client"] = name
    created = client.post("/v1/jobs", json=body, headers=headers)
    assert created.status_code == 202, created.text
    return created.json()["id"]


def status(client: TestClient, job_id: str, name: str | None = None) -> dict:
    return client.get(f"/v1/jobs/{job_id}", params={"client": name} if name else None).json()


def wait_for(client: TestClient, job_id: str, wanted: str) -> dict:
    return wait_until(lambda: (state := status(client, job_id))["status"] == wanted and state, 60.0,
                      f"job {job_id} to be {wanted}")


def test_one_clients_cancel_leaves_the_job_running_for_the_other(client):
    job_id = submit(client, "anna")
    assert submit(client, "ben") == job_id, "the identical job is shared"
    wait_for(client, job_id, "running")
    stranger = client.delete(f"/v1/jobs/{job_id}")  # neither anna nor ben: may not stop their job
    assert stranger.status_code == 409 and stranger.json()["error"]["code"] == "job_shared", stranger.text

    cancelled = client.delete(f"/v1/jobs/{job_id}", params={"client": "anna"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    assert "goes on for 1 other client" in cancelled.json()["error"]["message"]
    assert status(client, job_id, "anna")["status"] == "cancelled", "the canceller sees its job cancelled"
    time.sleep(0.3)
    assert status(client, job_id, "ben")["status"] == "running", "the other client's job goes on"
    assert status(client, job_id)["status"] == "running"

    last = client.delete(f"/v1/jobs/{job_id}", params={"client": "ben"})
    assert last.status_code == 200 and last.json()["status"] == "cancelled"
    assert wait_for(client, job_id, "cancelled")["error"]["code"] == "cancelled"
    assert status(client, job_id, "anna")["status"] == "cancelled"


def test_clients_told_apart_by_their_tokens_identity(tiny_spec, tmp_path):
    app = create_app(ServerConfig(data_dir=tmp_path / "data", models=tiny_spec, token="studio"))
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL) as token_client:
        anna, ben = {"Authorization": "Bearer studio"}, {"Authorization": "Bearer studio"}
        job_id = submit(token_client, None, anna)
        assert submit(token_client, "ben", ben) == job_id
        gone = token_client.delete(f"/v1/jobs/{job_id}", headers=anna)  # the token's identity: anna's submission
        assert gone.json()["status"] == "cancelled"
        time.sleep(0.3)
        assert token_client.get(f"/v1/jobs/{job_id}", params={"client": "ben"}, headers=ben).json()["status"] in (
            "queued", "running")


def test_the_same_client_asking_twice_still_cancels_with_one_request(client):
    job_id = submit(client, None)
    assert submit(client, None) == job_id  # a retry, or a probe for the id: not a second client
    wait_for(client, job_id, "running")
    assert client.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert wait_for(client, job_id, "cancelled")["error"]["message"] == "The job was cancelled."


def test_a_job_of_one_client_is_cancelled_by_any_request_as_before(client):
    job_id = submit(client, "anna")
    wait_for(client, job_id, "running")
    answer = client.delete(f"/v1/jobs/{job_id}")  # the live page names no client
    assert answer.status_code == 200
    assert wait_for(client, job_id, "cancelled")["error"]["message"] == "The job was cancelled."
