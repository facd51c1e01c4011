"""Damaged or missing files of the data directory are treated as absent, never as poison: the result answers
409, the cache does not return the job, and resubmitting the same image and settings sketches it anew."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from clipasso_core.params import SketchParams
from clipasso_server.model_cache import models_identity
from clipasso_server.store import JobStore, cache_key
from tests.support.job_views import finished_state
from tests.support.api_client import make_client
from tests.support.server_process import png_bytes

PARAMS = {"strokes": [2], "seeds": 1, "iterations": 1, "augmentations": 0}


def submit(client: TestClient, image: bytes) -> dict:
    created = client.post("/v1/jobs", json={"image": base64.b64encode(image).decode(), "params": PARAMS})
    assert created.status_code == 202, created.text
    return created.json()


def replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "deleted": lambda path: path.unlink(),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),
    "empty": lambda path: path.write_bytes(b""),
    "not json": lambda path: path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"),
    "a list": lambda path: path.write_text("[]"),
    "no levels": lambda path: path.write_text('{"width": 30, "height": 20, "levels": []}'),
    "zero size": lambda path: path.write_text(path.read_text().replace('"width":30', '"width":0')),
    "paths not path data": lambda path: path.write_text(
        '{"width": 30, "height": 20, "levels": [{"strokes": 2, "stroke_width": 1.0, "paths": [7, null], "loss": 1}]}'),
    "a directory": replace_with_directory,
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_result_is_absent_and_the_image_is_sketched_again(client, damage):
    image = png_bytes(30, 20, seed=5)
    first = submit(client, image)["id"]
    assert finished_state(client, first)["status"] == "succeeded"
    good = client.get(f"/v1/jobs/{first}/result").json()
    DAMAGE[damage](client.app.state.queue.store.results / f"{first}.json")

    answer = client.get(f"/v1/jobs/{first}/result")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "result_missing", answer.text
    assert "submit the image again" in answer.json()["error"]["message"]
    assert client.get(f"/v1/jobs/{first}").status_code == 200

    again = submit(client, image)
    assert again["id"] != first, "the cache returned the job whose result is damaged"
    assert finished_state(client, again["id"])["status"] == "succeeded"
    redone = client.get(f"/v1/jobs/{again['id']}/result")
    assert redone.status_code == 200 and (redone.json()["width"], redone.json()["height"]) == (30, 20)
    assert len(redone.json()["levels"]) == len(good["levels"])
    assert submit(client, image)["id"] == again["id"], "a whole result is still reused"


@pytest.mark.parametrize("damage", ["deleted", "truncated", "empty", "a directory"])
def test_a_damaged_image_of_a_waiting_job_fails_it_and_is_not_reused(tiny_spec, tmp_path, damage):
    data = tmp_path / "data"
    image = png_bytes(30, 20, seed=6)
    params = SketchParams(**PARAMS)
    store = JobStore(data)
    key = cache_key(image, params, models_identity(tiny_spec, torch.device("cpu")))
    job, _ = store.submit(image, params, key)
    assert store.find_reusable(key, image) == job
    DAMAGE[damage](store.image_path(job))
    assert store.find_reusable(key, image) is None, "the cache returned a job whose image is damaged"
    store.close()
    with make_client(tiny_spec, data) as client:
        state = finished_state(client, job.id)
        assert state["status"] == "failed", state
        assert state["error"]["code"] == "image_missing", state
        assert "submit it again" in state["error"]["message"]
        again = submit(client, image)
        assert again["id"] != job.id
        assert finished_state(client, again["id"])["status"] == "succeeded"
        assert client.get("/v1/health").json()["status"] == "ok"


SNAPSHOT_DAMAGE = {
    **{name: DAMAGE[name] for name in ("deleted", "truncated", "empty", "not json", "a list", "a directory")},
    "no snapshots key": lambda path: path.write_text('{"capacity": 3}'),
    "entries not levels": lambda path: path.write_text(path.read_text().replace('"levels":', '"levels_":')),
    "points not numbers": lambda path: path.write_text(path.read_text().replace('"points":[[[', '"points":[[["x",')),
}


@pytest.mark.parametrize("damage", SNAPSHOT_DAMAGE, ids=list(SNAPSHOT_DAMAGE))
def test_a_damaged_snapshot_file_is_absent_for_every_file_drawn_from_it(client, damage):
    job_id = submit(client, png_bytes(30, 20, seed=7))["id"]
    assert finished_state(client, job_id)["status"] == "succeeded"
    snapshots = client.app.state.queue.store.snapshots / f"{job_id}.json"
    SNAPSHOT_DAMAGE[damage](snapshots)
    for name in ("preview.svg", "animation.svg", "animation.gif"):
        answer = client.get(f"/v1/jobs/{job_id}/{name}")
        assert answer.status_code == 409, (name, answer.status_code, answer.text)
        assert answer.json()["error"]["code"] == "no_snapshot_yet"
        assert "missing or damaged" in answer.json()["error"]["message"]
    assert client.get(f"/v1/jobs/{job_id}/result.svg").status_code == 200, "the result does not need the snapshots"
