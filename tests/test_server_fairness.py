"""Fairness and visibility: the queue takes turns between clients, and jobs and /v1/health name their workers."""

from __future__ import annotations

import base64
import sqlite3
import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from clipasso_core.params import SketchParams
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from clipasso_server.store import JobStore
from tests.support.job_views import finished_state
from tests.support.server_process import png_bytes

PARAMS = {"strokes": [2], "seeds": 1, "iterations": 1, "augmentations": 0}
OLD_SCHEMA = """
CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
    cache_key TEXT NOT NULL, params TEXT NOT NULL, created_at REAL NOT NULL, started_at REAL, finished_at REAL,
    runs INTEGER NOT NULL DEFAULT 0, progress TEXT, error_code TEXT, error_message TEXT);
"""


def queue_jobs(store: JobStore, clients: str) -> list[str]:
    """Submit one job per letter of ``clients`` (the letter is the client's name); returns the job ids."""
    ids = []
    for number, client in enumerate(clients):
        job, created = store.submit(b"image", SketchParams(seed=number), uuid.uuid4().hex, client=client)
        assert created
        ids.append(job.id)
    return ids


def claim_all(store: JobStore) -> list[str]:
    """Claim (and at once finish) every queued job; returns their ids in the order they were claimed."""
    order = []
    while (job := store.claim_next()) is not None:
        order.append(job.id)
        store.fail(job.id, "test", "done")
    return order


def test_queue_takes_turns_between_clients_and_keeps_each_clients_order(tmp_path):
    store = JobStore(tmp_path)
    a = queue_jobs(store, "AAAAAA")
    b = queue_jobs(store, "B")
    order = claim_all(store)
    assert order.index(b[0]) < order.index(a[2]), "B's one job waits for at most two of A's"
    assert [job for job in order if job in a] == a, "A's jobs run first come first served"
    store.close()


def test_a_client_arriving_while_another_one_runs_goes_next(tmp_path):
    store = JobStore(tmp_path)
    a = queue_jobs(store, "AAAAAA")
    first = store.claim_next()
    assert first is not None and first.id == a[0]
    b = queue_jobs(store, "B")
    store.fail(first.id, "test", "done")
    assert claim_all(store)[0] == b[0]
    store.close()


def test_three_clients_with_many_jobs_alternate(tmp_path):
    store = JobStore(tmp_path)
    ids = queue_jobs(store, "AAAABBBBCCCC")
    clients = {job_id: letter for job_id, letter in zip(ids, "AAAABBBBCCCC")}
    assert "".join(clients[job] for job in claim_all(store)) == "ABCABCABCABC"
    store.close()


def test_turns_survive_a_restart(tmp_path):
    store = JobStore(tmp_path)
    a = queue_jobs(store, "AAA")
    b = queue_jobs(store, "BBB")
    first = store.claim_next()
    assert first is not None and first.id == a[0]
    store.close()
    store = JobStore(tmp_path)
    assert store.recover() == 1
    order = claim_all(store)
    assert order[:2] == [b[0], a[0]], "A was served last, so B goes first after the restart"
    store.close()


def test_a_database_from_before_clients_is_upgraded(tmp_path):
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO jobs (id, status, cache_key, params, created_at) VALUES (?, 'queued', 'k', ?, 1.0)",
                   ("a" * 32, SketchParams().model_dump_json()))
    db.close()
    store = JobStore(tmp_path)
    job = store.claim_next({"name": "w", "host": "h", "pid": 1, "device": "cpu"})
    assert job is not None and job.client == "local" and job.worker == {"name": "w", "host": "h", "pid": 1,
                                                                          "device": "cpu"}
    store.close()


@pytest.fixture
def client(tiny_spec, tmp_path) -> Iterator[TestClient]:
    app = create_app(ServerConfig(data_dir=tmp_path / "data", models=tiny_spec, token="secret-token"))
    with TestClient(app, headers={"Authorization": "Bearer secret-token"}) as test_client:
        yield test_client


def submit(api: TestClient, seed: int, **fields) -> dict:
    image = base64.b64encode(png_bytes(30, 20, seed=seed)).decode()
    answer = api.post("/v1/jobs", json={"image": image, "params": {**PARAMS, "seed": seed}, **fields})
    assert answer.status_code == 202, answer.text
    return answer.json()


def test_a_job_names_its_client_and_the_worker_that_ran_it(client):
    named = finished_state(client, submit(client, 1, client="ana")["id"])
    assert named["status"] == "succeeded" and named["client"] == "ana"
    assert named["worker"]["name"] == "local" and named["worker"]["device"] == "cpu"
    assert named["worker"]["host"] and named["worker"]["pid"] > 0
    unnamed = finished_state(client, submit(client, 2)["id"])
    assert unnamed["client"].startswith("token-") and "secret" not in unnamed["client"]


def test_health_lists_the_worker_and_counts_its_jobs(client):
    workers = client.get("/v1/health").json()["workers"]
    assert [(w["name"], w["status"], w["device"], w["jobs_done"]) for w in workers] == [("local", "idle", "cpu", 0)]
    finished_state(client, submit(client, 3)["id"])
    finished_state(client, submit(client, 4)["id"])
    deadline = time.monotonic() + 10  # the board is updated just after the job is stored as finished
    while (worker := client.get("/v1/health").json()["workers"][0])["status"] != "idle":
        assert time.monotonic() < deadline, worker
        time.sleep(0.02)
    assert len(client.get("/v1/health").json()["workers"]) == 1
    assert worker["jobs_done"] == 2 and worker["status"] == "idle" and worker["job"] is None


@pytest.mark.parametrize("name", ["", "x" * 65, "-starts-with-a-dash", "_underscore", "new\nline", "tab\there",
                                  "zero\u200bwidth", 7])
def test_a_bad_client_name_is_a_422_naming_the_field(client, name):
    image = base64.b64encode(png_bytes(30, 20)).decode()
    answer = client.post("/v1/jobs", json={"image": image, "params": PARAMS, "client": name})
    assert answer.status_code == 422 and "client" in answer.json()["error"]["message"]


@pytest.mark.parametrize("name", ["Zoë", "Łukasz Nowak", "王芳", "anna.b@studio"])
def test_a_name_in_any_script_is_a_client(client, name):
    assert finished_state(client, submit(client, 5, client=name)["id"])["client"] == name


def test_one_designers_burst_does_not_keep_another_waiting(client):
    a = [submit(client, 10 + number, client="A")["id"] for number in range(6)]
    b = submit(client, 20, client="B")["id"]
    started = {job: finished_state(client, job)["started_at"] for job in [*a, b]}
    assert started[b] < started[a[2]], started
    assert [started[job] for job in a] == sorted(started[job] for job in a)


def test_a_queued_jobs_position_is_its_place_in_the_fair_order(tmp_path):
    store = JobStore(tmp_path)
    a = queue_jobs(store, "AAA")
    running = store.claim_next()  # A's first job runs: A's turn is the latest
    b = queue_jobs(store, "BBCA")  # B and C arrive, then more of A's
    queued = [job_id for job_id in a + b if job_id != running.id]
    positions = {job_id: store.queue_position(job_id) for job_id in queued}
    assert store.queue_position(running.id) is None and store.queue_position("no-such-job") is None
    assert sorted(positions.values()) == list(range(len(queued)))
    assert sorted(queued, key=positions.get) == claim_all(store), "the position is where claim_next takes it"
    store.close()
