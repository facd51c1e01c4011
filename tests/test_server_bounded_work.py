"""Bounded work per request: submissions are validated off the event loop, at most two at once, while health
keeps answering; a finished job's files (GIF, SVGs) are drawn once and kept on disk with the job, a damaged
kept file is drawn again, and retention deletes them with the job."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from clipasso_core import params as params_module
from clipasso_server import job_files
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from clipasso_server.derived_files import DerivedFiles
from clipasso_server.heavy_work import MAX_PARALLEL_HEAVY
from tests.support.server_process import LOCAL, png_bytes
from tests.support.waiting import wait_until

PARAMS = {"strokes": [2], "seeds": 1, "iterations": 2, "augmentations": 0}
MASK = "M 2 2 H 28 V 18 H 2 Z"


def submit(client: TestClient, seed: int, **extra: Any):
    image = base64.b64encode(png_bytes(30, 20, seed=seed)).decode()
    return client.post("/v1/jobs", json={"image": image, "params": {**PARAMS, "seed": seed, **extra}})


def finished_job(client: TestClient, seed: int = 1) -> str:
    job_id = submit(client, seed).json()["id"]
    wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", what="the job")
    return job_id


def test_uploads_are_validated_off_the_event_loop_two_at_a_time(client, monkeypatch):
    gate = threading.Event()
    lock = threading.Lock()
    validating = most = 0
    real_parse = params_module.parse_path

    def slow_parse(text: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal validating, most
        if text == MASK and not gate.is_set():
            with lock:
                validating += 1
                most = max(most, validating)
            try:
                gate.wait(10)  # a mask of 20,000 nodes takes a while
            finally:
                with lock:
                    validating -= 1
        return real_parse(text, *args, **kwargs)

    monkeypatch.setattr(params_module, "parse_path", slow_parse)
    with ThreadPoolExecutor(5) as pool:
        uploads = [pool.submit(submit, client, seed, mask=MASK) for seed in range(5)]
        try:
            wait_until(lambda: validating == MAX_PARALLEL_HEAVY, what="two uploads validating at once")
            health = client.get("/v1/health")  # answered while the uploads are being validated
            assert health.status_code == 200 and validating == MAX_PARALLEL_HEAVY
            assert health.json()["limits"]["max_parallel_heavy"] == MAX_PARALLEL_HEAVY
        finally:
            gate.set()
        assert [upload.result().status_code for upload in uploads] == [202] * 5
    assert most == MAX_PARALLEL_HEAVY


def test_a_finished_jobs_files_are_drawn_once_and_kept_with_it(client, monkeypatch):
    job_id = finished_job(client)
    drawn: list[str] = []
    for name in ("animation_gif", "animation_svg", "sketch_document"):
        real = getattr(job_files, name)
        monkeypatch.setattr(job_files, name, lambda *a, real=real, name=name, **k: (drawn.append(name), real(*a, **k))[1])
    paths = [f"/v1/jobs/{job_id}/{name}" for name in ("animation.gif", "animation.svg", "result.svg", "preview.svg")]
    with ThreadPoolExecutor(8) as pool:  # eight people open the GIF at once
        first = list(pool.map(client.get, [paths[0]] * 8))
    assert {answer.status_code for answer in first} == {200} and len({answer.content for answer in first}) == 1
    answers = {path: client.get(path) for path in paths}
    again = {path: client.get(path) for path in paths}
    assert all(answers[path].status_code == 200 and answers[path].content == again[path].content for path in paths)
    assert sorted(drawn) == ["animation_gif", "animation_svg", "sketch_document", "sketch_document"], drawn

    derived = client.app.state.derived
    assert DerivedFiles(derived.folder.parent, "another version").read(job_id, "animation.gif") is None
    kept = derived.path(job_id, "animation.gif")
    kept.write_bytes(kept.read_bytes()[:100])  # damaged: drawn again, the same
    assert client.get(paths[0]).content == first[0].content and drawn.count("animation_gif") == 2


def test_a_running_jobs_files_are_not_kept(client, monkeypatch):
    job_id = submit(client, 2).json()["id"]
    store = client.app.state.queue.store
    wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", what="the job")
    with store._lock:  # as if it still ran: nothing kept for a job whose files may still change
        store._db.execute("UPDATE jobs SET status = 'running' WHERE id = ?", (job_id,))
    assert client.get(f"/v1/jobs/{job_id}/animation.svg").status_code == 200
    assert not client.app.state.derived.path(job_id, "animation.svg").exists()


def test_retention_deletes_the_kept_files_with_their_job(tiny_spec, tmp_path):
    data = tmp_path / "data"
    with TestClient(create_app(ServerConfig(data_dir=data, models=tiny_spec)), base_url=LOCAL) as client:
        job_id = finished_job(client)
        assert client.get(f"/v1/jobs/{job_id}/animation.gif").status_code == 200
        kept = client.app.state.derived.path(job_id, "animation.gif")
        assert kept.is_file()
        assert client.app.state.queue.store.purge_finished(time.time() + 1) == 1
        assert not kept.exists()
