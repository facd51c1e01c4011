"""The server's CLIP models over their life: fetched in the background with progress in ``GET /v1/health``,
loaded by a job, freed after ``--unload-after`` and loaded again; one message when they cannot be had; and
the server ending itself after ``--exit-when-idle``.

The models are the tiny ones (real open_clip configs, random weights) published under an ``openai`` tag on a
stand-in hub, so open_clip downloads and loads them through its own pretrained-tag path, as it does the
paper's models on a designer's machine.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import open_clip
import pytest
import torch
from fastapi.testclient import TestClient
from huggingface_hub import constants as hub_constants
from safetensors.torch import save_file

from clipasso_core.models import ModelSpec
from clipasso_server import cli
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from clipasso_server.idle import IdleWatch
from clipasso_server.model_cache import ModelCache
from tests.support.job_views import finished_state
from tests.support.server_process import FAST_PARAMS, LOCAL, png_bytes, start_server
from tests.support.stand_in_hub import StandInHub
from tests.support.waiting import wait_until


@pytest.fixture
def hub_models(tiny_spec: ModelSpec, monkeypatch, tmp_path) -> Iterator[tuple[ModelSpec, StandInHub]]:
    """The tiny models as ``openai`` weights on a stand-in hub that huggingface_hub (in this process) talks to,
    with an empty hub cache; yields the spec that names them by tag only, and the hub."""
    files = {
        # the loss model only as open_clip's fallback file, the saliency model as its first choice
        ("test/tiny-rn", "open_clip_pytorch_model.bin"): Path(tiny_spec.loss_weights).read_bytes(),
        ("test/tiny-vit", "open_clip_model.safetensors"): _safetensors(tiny_spec.saliency_weights, tmp_path),
    }
    for name in ("tiny-rn", "tiny-vit"):
        monkeypatch.setitem(open_clip.pretrained._PRETRAINED, name, {"openai": {"hf_hub": f"test/{name}/"}})
    with StandInHub(files) as hub:
        monkeypatch.setattr(hub_constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
        yield ModelSpec(loss_model=tiny_spec.loss_model, saliency_model=tiny_spec.saliency_model), hub


def _safetensors(checkpoint: Path, folder: Path) -> bytes:
    path = folder / "tiny-vit.safetensors"
    save_file({key: value.contiguous() for key, value in torch.load(checkpoint).items()}, str(path))
    return path.read_bytes()


def submit(client: TestClient, seed: int = 0) -> str:
    image = base64.b64encode(png_bytes(seed=seed)).decode()  # another seed: another picture, so a new job
    answer = client.post("/v1/jobs", json={"image": image, "params": FAST_PARAMS})
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def test_models_download_in_the_background_load_for_a_job_unload_when_idle_and_load_again(hub_models, tmp_path):
    spec, hub = hub_models
    hub.hold()  # every download pauses after its first chunk until released
    config = ServerConfig(data_dir=tmp_path / "data", models=spec, unload_after_s=0.5)
    now = [0.0]  # the models' idle clock: it moves when the test says so
    models = ModelCache(spec, config.device, clock=lambda: now[0])
    assert models.status().state == "missing"
    app = create_app(config, models)
    with TestClient(app, base_url=LOCAL) as client:
        assert hub.wait_until_held()
        health = wait_until(lambda: (answer := client.get("/v1/health")).json()["models"]["bytes_total"] and answer,
                            120.0)
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "degraded" and body["api_version"] == 3
        assert body["models"]["state"] == "downloading"
        assert 0 <= body["models"]["bytes_done"] < body["models"]["bytes_total"] == sum(map(len, hub.files.values()))
        assert body["error"]["code"] == "models_downloading"
        assert body["error"]["message"].startswith("The sketch server is downloading the CLIP models: ")

        waiting = submit(client)  # a job submitted meanwhile waits for the download
        assert client.get(f"/v1/jobs/{waiting}").json()["status"] in ("queued", "running")
        hub.release()
        assert finished_state(client, waiting)["status"] == "succeeded"
        health = client.get("/v1/health").json()
        assert health["status"] == "ok" and health["models_loaded"] is True
        assert health["models"] == {"state": "ready", "bytes_done": None, "bytes_total": None, "error": None}

        now[0] += 0.4
        time.sleep(10 * app.state.idle_watch.check_every_s)  # the watch looks several times, and waits
        assert client.get("/v1/health").json()["models"]["state"] == "ready"
        now[0] += 0.1  # idle for as long as --unload-after says
        health = wait_until(lambda: (body := client.get("/v1/health").json())["models"]["state"] == "unloaded" and body)
        assert health["status"] == "ok" and health["models_loaded"] is False
        again = submit(client, seed=1)
        assert finished_state(client, again)["status"] == "succeeded"
        assert client.get("/v1/health").json()["models"]["state"] == "ready"  # loaded again
    gets = [path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path]
    assert gets == ["/test/tiny-rn/resolve/main/open_clip_pytorch_model.bin",
                    "/test/tiny-vit/resolve/main/open_clip_model.safetensors"]  # once each: open_clip used the cache


def test_models_that_cannot_be_had_fail_health_and_jobs_with_one_message_for_the_designer(hub_models, tmp_path,
                                                                                          monkeypatch):
    spec, hub = hub_models
    hub.files.clear()  # the hub answers, but has neither file
    config = ServerConfig(data_dir=tmp_path / "data", models=spec)
    with TestClient(create_app(config, ModelCache(spec, config.device, cli.offline_way())), base_url=LOCAL) as client:
        body = wait_until(lambda: (body := client.get("/v1/health").json())["models"]["state"] == "failed" and body)
        message = body["models"]["error"]
        assert body["status"] == "degraded" and body["error"] == {"code": "weights_unavailable", "message": message}
        assert "tiny-rn and tiny-vit" in message and "clipasso download-models" in message
        assert f"loss_weights and saliency_weights in {cli.settings_path()}" in message
        assert "--" not in message  # no command-line flag of the server: a designer reads this in Inkscape
        state = finished_state(client, submit(client))
        assert state["status"] == "failed" and state["error"]["message"] == message


def test_a_server_downloading_its_models_is_not_idle(hub_models, tmp_path):
    spec, hub = hub_models
    hub.hold()
    config = ServerConfig(data_dir=tmp_path / "data", models=spec, exit_when_idle_s=0.2)
    app = create_app(config, ModelCache(spec, config.device))
    exits = []
    app.state.idle_watch.request_exit = lambda: exits.append(time.monotonic())
    with TestClient(app, base_url=LOCAL):
        assert hub.wait_until_held()
        time.sleep(20 * app.state.idle_watch.check_every_s)  # far past the idle time, no request, no job
        assert exits == []
        hub.release()
        wait_until(lambda: exits, 120.0)  # once the download is done, idle time counts


def test_an_idle_watch_frees_the_models_and_asks_to_exit_only_after_the_idle_time():
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731
    busy = [False]
    exits = []

    class Models:
        unloaded = []

        def unload_if_idle(self, idle_s):
            self.unloaded.append(idle_s)

    watch = IdleWatch(Models(), lambda: busy[0], 60.0, 600.0, lambda: exits.append(now[0]), clock)
    now[0] = 500.0
    watch.saw_request()  # a request at 500 s
    now[0] = 900.0
    watch.check()
    assert exits == [] and Models.unloaded == [60.0]
    busy[0] = True  # a job from 900 s to 1000 s
    watch.check()
    now[0] = 1000.0
    watch.check()
    busy[0] = False
    now[0] = 1599.0
    watch.check()
    assert exits == []
    now[0] = 1600.0
    watch.check()
    watch.check()
    assert exits == [1600.0]  # asked once


def test_the_models_a_job_holds_are_never_freed(tiny_spec):
    now = [0.0]
    models = ModelCache(tiny_spec, torch.device("cpu"), clock=lambda: now[0])
    models.get()
    now[0] = 1000.0
    assert not models.unload_if_idle(10.0) and models.loaded  # the job still runs
    models.release()
    assert not models.unload_if_idle(10.0)  # just finished
    now[0] = 1010.0
    assert models.unload_if_idle(10.0) and not models.loaded and models.status().state == "unloaded"


def test_models_two_workers_share_stay_while_either_job_runs(tiny_spec):
    now = [0.0]
    models = ModelCache(tiny_spec, torch.device("cpu"), clock=lambda: now[0])
    models.get()  # the first worker's job
    models.get()  # the second worker's job, on the same models
    models.release()  # the first ends; the second still runs
    now[0] = 1000.0
    assert not models.unload_if_idle(10.0) and models.loaded
    models.release()
    now[0] = 1010.0
    assert models.unload_if_idle(10.0) and not models.loaded


@pytest.mark.slow
def test_a_server_started_with_exit_when_idle_ends_itself(tiny_spec, tmp_path):
    with start_server(tmp_path / "data", tiny_spec, extra_args=["--exit-when-idle", "0.02"]) as server:
        assert server.process.wait(120) == 0
        assert "exiting (--exit-when-idle)" in server.output()
