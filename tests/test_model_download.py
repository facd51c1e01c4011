"""Fetching the CLIP weights: which hub files open_clip uses, ``clipasso download-models`` against a stand-in
hub on 127.0.0.1 (progress, a connection cut halfway and resumed, nothing fetched twice), and the one message
that names every missing model when the hub cannot be reached."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import constants as hub_constants

from clipasso_core import weights
from clipasso_core.download_command import download_with_bar
from clipasso_core.errors import WeightsUnavailableError
from clipasso_core.models import ModelSpec, load_models
from tests.support.stand_in_hub import StandInHub

RN101 = ("timm/resnet101_clip.openai", "open_clip_model.safetensors")
VIT = ("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
BIG = 24 * 1024 * 1024  # more than two of huggingface_hub's 10 MiB read chunks, so a cut one resumes midway


def clipasso(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the ``clipasso`` command in a child process with ``env`` added to this one's environment."""
    return subprocess.run([sys.executable, "-c", "import sys; from clipasso_core.cli import main; sys.exit(main())",
                           *args], env={**os.environ, "HF_HUB_OFFLINE": "0", **env}, capture_output=True, text=True,
                          timeout=timeout)


def test_the_paper_models_come_from_the_timm_repos_open_clip_names():
    """open_clip 3.x takes the OpenAI weights of RN101 and ViT-B-32 from these repos, safetensors first."""
    found = weights.hub_weights("RN101", "ViT-B-32", "openai")
    assert [(item.model, item.role, item.repo_id, item.filenames) for item in found] == [
        ("RN101", "loss", RN101[0], ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")),
        ("ViT-B-32", "saliency", VIT[0], ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")),
    ]
    assert [item.label() for item in found] == ["RN101 (479 MB)", "ViT-B-32 (605 MB)"]
    assert weights.hub_weights("RN101", "ViT-B-32", "openai", loss_file=Path("rn.pt"))[0].model == "ViT-B-32"


@pytest.mark.slow
def test_download_models_shows_progress_resumes_a_cut_connection_and_fetches_nothing_twice(tmp_path):
    rn101, vit = os.urandom(BIG), os.urandom(1_500_000)
    with StandInHub({RN101: rn101, VIT: vit}) as hub:
        hub.cut_once.add(RN101)
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")}
        first = clipasso("download-models", env=env)
        assert first.returncode == 0, first.stderr
        assert "RN101 (479 MB) and ViT-B-32 (605 MB)" in first.stderr
        assert "26.7M/26.7M" in first.stderr and "B/s" in first.stderr  # the size of both files; speed
        resumed = [ranged for ranged in hub.gets(RN101[1]) if ranged]
        assert len(hub.gets(RN101[1])) >= 2 and resumed and not resumed[0].startswith("bytes=0-"), hub.requests
        lines = first.stdout.splitlines()
        assert lines[0].startswith("Downloaded the CLIP models, in " + str(tmp_path / "hf"))
        paths = {line.split(": ")[0].strip(): Path(line.split(": ")[1]) for line in lines[1:]}
        assert paths["RN101"].read_bytes() == rn101 and paths["ViT-B-32"].read_bytes() == vit

        fetched = len(hub.requests)
        again = clipasso("download-models", env=env)
        assert again.returncode == 0 and again.stdout.startswith("Already downloaded"), again.stderr
        assert hub.requests[fetched:] == [] and again.stderr == ""


def test_a_file_the_hub_lacks_falls_back_to_the_next_one_open_clip_tries(tmp_path):
    bin_file = os.urandom(200_000)
    with StandInHub({VIT: b"v", (RN101[0], "open_clip_pytorch_model.bin"): bin_file}) as hub:
        done = clipasso("download-models", env={"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")})
        assert done.returncode == 0, done.stderr
        assert "open_clip_pytorch_model.bin" in done.stdout.splitlines()[1]


def test_offline_the_message_names_both_models_their_sizes_and_the_offline_way(tmp_path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        endpoint = "http://127.0.0.1:%d" % closed.getsockname()[1]
    done = clipasso("download-models", env={"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    message = done.stderr.strip()
    assert message.count("\n") == 0 and message.startswith("clipasso: error: ")
    assert "RN101 (479 MB) and ViT-B-32 (605 MB)" in message
    assert "clipasso download-models" in message and "as --loss-weights and --saliency-weights" in message


def test_the_library_names_every_missing_model_at_once(monkeypatch, tmp_path):
    """Offline, loading fails before any model is built and names both (not one, then the other)."""
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsUnavailableError) as raised:
        load_models(ModelSpec(), __import__("torch").device("cpu"))
    message = str(raised.value)
    assert "RN101 (479 MB) and ViT-B-32 (605 MB)" in message and "HF_HUB_OFFLINE is set" in message
    assert "ModelSpec.loss_weights and ModelSpec.saliency_weights" in message
    assert [item.model for item in raised.value.missing] == ["RN101", "ViT-B-32"]


def test_a_download_asks_whether_the_hub_answers_once_and_shows_no_bar_before_it_starts(monkeypatch, tmp_path,
                                                                                        capsys):
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    asked = []
    monkeypatch.setattr(weights, "hub_reachable", lambda: asked.append(True) or True)

    def broken(item):
        raise ConnectionError("the connection was reset")

    monkeypatch.setattr(weights, "remote_file", broken)
    with pytest.raises(WeightsUnavailableError, match="the connection was reset"):
        download_with_bar(weights.hub_weights("RN101", "ViT-B-32", "openai"))
    assert asked == [True] and capsys.readouterr().err == ""
