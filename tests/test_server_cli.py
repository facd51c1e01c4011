"""``clipasso-server``'s options: the token rule, refused options, and clear messages for unusable models."""

from __future__ import annotations

import base64
import dataclasses
import json
import urllib.request

import pytest
from fastapi.testclient import TestClient

from clipasso_server import cli
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from tests.support.job_views import finished_state
from tests.support.server_process import LOCAL, png_bytes

TOKEN = "s3cret-token"
pytestmark = pytest.mark.usefixtures("keep_pytest_logging")  # main() runs in this process here


def test_with_a_token_every_request_needs_it(token_server):
    server = token_server
    for token, expected in ((None, 401), ("wrong", 401), (server.token, 200)):
        status, body = server.request("GET", "/v1/health", token=token)
        assert status == expected, body
        if expected == 401:
            assert body["error"]["code"] == "unauthorized"
    status, body = server.request("POST", "/v1/jobs", {"image": ""}, token=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert server.request("GET", "/v1/nothing", token=None)[0] == 401
    assert server.request("GET", "/openapi.json", token=None)[0] == 401
    request = urllib.request.Request(server.url + "/v1/health", headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["device"] == "cpu"


def test_a_second_server_on_the_same_data_dir_is_refused(token_server, capsys):
    assert cli.main(["--port", "0", "--data-dir", str(token_server.data_dir), "--device", "cpu"]) == 1
    assert "already using the data directory" in capsys.readouterr().err
    assert token_server.request("GET", "/v1/health")[0] == 200


@pytest.mark.parametrize("args, mentions", [
    (["--host", "0.0.0.0"], "--token"),
    (["--host", "::"], "--token"),
    (["--port", "70000"], "--port"),
    (["--max-pixels", "0"], "--max-pixels"),
    (["--max-body-mb", "-1"], "--max-body-mb"),
    (["--token", " "], "--token"),
    (["--token", "clé-secrète"], "--token must be ASCII"),
    (["--keep-days", "-1"], "--keep-days"),
    (["--keep-days", "nan"], "--keep-days"),
])
def test_refused_options_exit_with_one_sentence(args, mentions, tmp_path, capsys):
    assert cli.main([*args, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clipasso-server: error: ") and mentions in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir()), "nothing is created before the options are checked"


def test_unparsable_option_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--port", "eighty", "--data-dir", str(tmp_path)])
    assert stopped.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_non_loopback_host_is_allowed_with_a_token(monkeypatch, tmp_path):
    served = []
    monkeypatch.setattr(cli, "serve", lambda args: served.append(args.host) or 0)
    assert cli.main(["--host", "0.0.0.0", "--token", TOKEN, "--data-dir", str(tmp_path)]) == 0
    assert served == ["0.0.0.0"]


def test_loopback_names():
    assert cli.is_loopback("127.0.0.1") and cli.is_loopback("::1") and cli.is_loopback("localhost")
    assert not cli.is_loopback("0.0.0.0") and not cli.is_loopback("::") and not cli.is_loopback("192.168.1.10")


def test_preload_with_a_missing_weights_file_exits_with_a_clear_message(tiny_spec, tmp_path, capsys):
    status = cli.main([
        "--port", "0", "--data-dir", str(tmp_path / "data"), "--preload", "--device", "cpu",
        "--loss-model", tiny_spec.loss_model, "--loss-weights", str(tmp_path / "missing-rn.pt"),
        "--saliency-model", tiny_spec.saliency_model, "--saliency-weights", str(tiny_spec.saliency_weights),
    ])
    err = capsys.readouterr().err
    assert status == 1
    assert "missing-rn.pt" in err and "does not exist" in err and "Traceback" not in err


def test_a_model_error_names_the_servers_option(tiny_spec, tmp_path, capsys):
    """The library names its parameter (ModelSpec.loss_weights); the server says it as its settings file's key."""
    (tmp_path / "weights").mkdir()
    status = cli.main([
        "--port", "0", "--data-dir", str(tmp_path / "data"), "--preload", "--device", "cpu",
        "--loss-model", tiny_spec.loss_model, "--loss-weights", str(tmp_path / "weights"),
        "--saliency-model", tiny_spec.saliency_model, "--saliency-weights", str(tiny_spec.saliency_weights),
    ])
    err = capsys.readouterr().err
    assert status == 1 and "give loss_weights in " in err and "server.toml the checkpoint file itself" in err
    assert "ModelSpec" not in err


def test_cuda_without_a_gpu_is_refused(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert cli.main(["--device", "cuda", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "CUDA" in err and "use --device cpu" in err


def test_unusable_models_fail_the_job_and_show_in_health(tiny_spec, tmp_path):
    broken = tmp_path / "broken-rn.pt"
    broken.write_bytes(b"this is not a checkpoint")
    config = ServerConfig(data_dir=tmp_path / "data", models=dataclasses.replace(tiny_spec, loss_weights=broken))
    with TestClient(create_app(config), base_url=LOCAL) as client:  # the app in this process, worker thread included
        health = client.get("/v1/health").json()
        assert health["models_loaded"] is False and health["models_error"] is None
        image = base64.b64encode(png_bytes()).decode()
        created = client.post("/v1/jobs", json={"image": image, "params": {"iterations": 1}})
        assert created.status_code == 202
        job_id = created.json()["id"]
        state = finished_state(client, job_id)
        assert state["status"] == "failed"
        assert state["error"]["code"] == "invalid_model"
        assert "broken-rn.pt" in state["error"]["message"] and "Traceback" not in state["error"]["message"]
        health = client.get("/v1/health").json()
        assert health["models_loaded"] is False and health["models_error"] == state["error"]["message"]
        answer = client.get(f"/v1/jobs/{job_id}/result")
        assert answer.status_code == 409
        assert answer.json()["error"] == {"code": "job_failed", "message": state["error"]["message"]}
        # A failed job is not a stored answer: the same submission makes a new job.
        again = client.post("/v1/jobs", json={"image": image, "params": {"iterations": 1}})
        assert again.status_code == 202 and again.json()["id"] != job_id
