"""The sketch server's app in this process: how library and unexpected errors reach the client."""

from __future__ import annotations

import base64
import dataclasses
import time

import pytest
from fastapi.testclient import TestClient

from clipasso_core.errors import ImageError
from clipasso_core.params import SketchParams
from clipasso_core.precision import Precision
from clipasso_server import runner
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from clipasso_server.store import JobStore, is_job_id
from tests.support.job_views import finished_state
from tests.support.server_process import LOCAL, png_bytes

PARAMS = {"strokes": [2], "seeds": 1, "iterations": 1, "augmentations": 0}


def run_job(client: TestClient, seed: int = 0) -> dict:
    image = base64.b64encode(png_bytes(30, 20, seed=seed)).decode()
    created = client.post("/v1/jobs", json={"image": image, "params": PARAMS})
    assert created.status_code == 202, created.text
    return finished_state(client, created.json()["id"])


@pytest.mark.parametrize("raised, code, message", [
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out_of_memory", "ran out of memory"),
    (MemoryError(), "out_of_memory", "ran out of memory"),
    (ImageError("The uploaded image is damaged or truncated (broken data stream)."), "invalid_image", "damaged"),
    (ValueError("secret detail at /home/someone/file.py line 3"), "internal_error", "unexpected error"),
])
def test_job_errors_become_a_clear_job_error(client, monkeypatch, caplog, raised, code, message):
    def explode(*args, **kwargs):
        raise raised

    monkeypatch.setattr(runner, "sketch_image", explode)
    state = run_job(client)
    assert state["status"] == "failed"
    assert state["error"]["code"] == code and message in state["error"]["message"]
    assert "secret" not in state["error"]["message"] and "Traceback" not in state["error"]["message"]
    if code == "internal_error":
        assert "secret detail" in caplog.text, "the details stay in the server's log"
    # The worker survives and runs the next job.
    monkeypatch.undo()
    assert run_job(client, seed=1)["status"] == "succeeded"


def test_unexpected_error_in_a_route_is_a_json_500_without_details(client, monkeypatch):
    def explode() -> int:
        raise RuntimeError("secret internal state")

    monkeypatch.setattr(client.app.state.queue, "queue_length", explode)
    answer = client.get("/v1/health")
    assert answer.status_code == 500
    assert answer.json() == {"error": {"code": "internal_error",
                                       "message": "The sketch server hit an unexpected error; see its log."}}


def test_store_never_builds_a_path_from_a_strange_id(tmp_path):
    store = JobStore(tmp_path)
    for strange in ("../jobs", "/etc/passwd", "A" * 32, "0" * 31, "0" * 33, ""):
        assert store.get(strange) is None
    job, created = store.submit(b"image bytes", SketchParams(), "key")
    assert created and is_job_id(job.id)
    assert store.image_path(job) == tmp_path / "images" / f"{job.id}.image"
    assert store.submit(b"image bytes", SketchParams(), "key") == (job, False)
    with pytest.raises(ValueError):
        store.result_path(dataclasses.replace(job, id="../../escape"))
    store.close()


def test_a_job_in_another_precision_is_not_served_from_the_cache(tiny_spec, tmp_path):
    keys = {}
    for precision in ("fp32", "bf16"):
        spec = dataclasses.replace(tiny_spec, precision=Precision(precision))
        app = create_app(ServerConfig(data_dir=tmp_path / precision, models=spec))
        with TestClient(app, base_url=LOCAL) as test_client:
            assert test_client.get("/v1/health").json()["precision"] == precision
            keys[precision] = test_client.app.state.queue.cache_key(png_bytes(), SketchParams())
    assert keys["fp32"] != keys["bf16"]


def test_uploads_are_decoded_at_most_two_at_a_time(client, monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from clipasso_server import heavy_work, job_routes

    decoding, most = 0, 0
    lock = threading.Lock()
    real_check = job_routes.check_image

    def counting_check(data: bytes, max_pixels: int) -> None:
        nonlocal decoding, most
        with lock:
            decoding += 1
            most = max(most, decoding)
        try:
            time.sleep(0.05)  # hold the decode so that parallel submissions overlap
            real_check(data, max_pixels)
        finally:
            with lock:
                decoding -= 1

    monkeypatch.setattr(job_routes, "check_image", counting_check)

    def submit(seed: int) -> int:
        image = base64.b64encode(png_bytes(30, 20, seed=seed)).decode()
        return client.post("/v1/jobs", json={"image": image, "params": {**PARAMS, "seed": seed}}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(submit, range(8)))
    assert statuses == [202] * 8
    assert most == heavy_work.MAX_PARALLEL_HEAVY == 2


def test_a_phone_photo_turned_by_exif_is_sketched_as_shown(client):
    import io

    from PIL import Image

    stored = Image.open(io.BytesIO(png_bytes(40, 24))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: 24 wide, 40 high
    buffer = io.BytesIO()
    stored.save(buffer, format="MPO", save_all=True, append_images=[stored], exif=exif.tobytes(), quality=90)
    created = client.post("/v1/jobs", json={"image": base64.b64encode(buffer.getvalue()).decode(), "params": PARAMS})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    finished_state(client, job_id)
    result = client.get(f"/v1/jobs/{job_id}/result").json()
    assert (result["width"], result["height"]) == (24, 40)
