"""Workers that cannot be reached any more (a lost Ray head), with the in-process stand-in for Ray's pool: health
says so at once in a sentence, reads keep answering, and after the grace time the server stops saying why."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from clipasso_server import app as app_module
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from clipasso_server.worker import LocalWorkers
from tests.support.server_process import LOCAL, png_bytes
from tests.support.waiting import wait_until

PARAMS = {"strokes": [2], "seeds": 1, "iterations": 1, "augmentations": 0}
LOST = "The head of the Ray cluster at '10.0.0.1:6379' cannot be reached (Connection refused): it stopped."


class LosableWorkers(LocalWorkers):
    """In-process workers whose cluster a test can lose."""

    lost = False

    def problem(self) -> str | None:
        return LOST if LosableWorkers.lost else None


def test_a_lost_cluster_is_degraded_at_once_reads_answer_and_the_server_stops_saying_why(tiny_spec, tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setattr(app_module, "LocalWorkers", LosableWorkers)
    monkeypatch.setattr(LosableWorkers, "lost", False)
    app = create_app(ServerConfig(data_dir=tmp_path / "data", models=tiny_spec))
    app.state.queue.dispatcher.lost_grace_s = 3.0
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL) as client:
        image = base64.b64encode(png_bytes(30, 20, seed=1)).decode()
        job_id = client.post("/v1/jobs", json={"image": image, "params": PARAMS}).json()["id"]
        wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", what="the job")
        assert client.get("/v1/health").json()["status"] == "ok"

        LosableWorkers.lost = True
        health = wait_until(lambda: (a := client.get("/v1/health")).status_code == 503 and a.json(), 10, "degraded")
        assert health["status"] == "degraded" and health["error"] == {"code": "workers_unreachable", "message": LOST}
        assert health["worker"]["unreachable"] == LOST
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
        assert client.get(f"/v1/jobs/{job_id}/result").status_code == 200
        assert app.state.exit_message is None, "the head may come back within the grace time"

        message = wait_until(lambda: app.state.exit_message, 20, "the server to give up")
        assert message.startswith(LOST) and "clipasso-server stops" in message
        assert "unfinished jobs run again at its next start" in message


def test_a_cluster_back_within_the_grace_time_is_ok_again(tiny_spec, tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "LocalWorkers", LosableWorkers)
    monkeypatch.setattr(LosableWorkers, "lost", True)
    app = create_app(ServerConfig(data_dir=tmp_path / "data", models=tiny_spec))
    app.state.queue.dispatcher.lost_grace_s = 60.0
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL) as client:
        wait_until(lambda: client.get("/v1/health").status_code == 503, 10, "degraded")
        LosableWorkers.lost = False
        wait_until(lambda: client.get("/v1/health").status_code == 200, 10, "ok again")
        assert app.state.exit_message is None
