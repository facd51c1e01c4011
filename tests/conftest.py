"""Fixtures shared by the test modules: tiny CLIP models, the servers the tests talk to, shared targets.

Tests that take ``tiny_models`` (or ``precision``) run twice: in fp32 and in the default precision ``auto``
(bf16 where this machine computes it natively, so both paths are exercised there).

The helpers behind these fixtures are in ``tests/support/`` (test-only) and ``testkit/`` (shared with ``bench/``).
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from clipasso_core.image import to_canvas
from clipasso_core.models import LoadedModels, ModelSpec, load_models
from clipasso_core.precision import Precision
from clipasso_server import cli as server_cli
from testkit import STEADY_ENV
from testkit.ray_cluster import RAY_MISSING, local_ray_cluster, short_temp_dir
from testkit.tiny_models import make_tiny_models, model_options
from tests.support.api_client import make_client
from tests.support.extension_runs import open_browsers
from tests.support.fake_sketch_server import FakeSketchServer
from tests.support.pictures import cup
from tests.support.server_process import ServerProcess, start_server

# One torch thread in this process and in the commands it starts, as in the servers (testkit.STEADY_ENV): the tiny
# models gain little from a second one, and on a busy machine threads that wait for each other cost several
# times the work (a CPU-bound test module took 4 times the CPU and 3 to 4 times as long with two).
os.environ.update(STEADY_ENV)
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def own_config_folders(tmp_path_factory: pytest.TempPathFactory):
    """Settings (server.toml, the extension's settings) and data of the tests, and of every server they start,
    live in folders of the test run, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
            patch.setenv(variable, str(tmp_path_factory.mktemp(variable.lower())))
        patch.delenv("CLIPASSO_SERVER_TOKEN", raising=False)
        yield


# -- tiny models --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    """Tiny ResNet + ViT configs and checkpoints on disk."""
    return make_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session", params=[Precision.FP32, Precision.AUTO], ids=str)
def precision(request: pytest.FixtureRequest) -> Precision:
    """The requested precision of the CLIP networks: fp32 and the default, auto."""
    return request.param


@pytest.fixture(scope="session")
def tiny_models(tiny_spec: ModelSpec, precision: Precision) -> LoadedModels:
    """The tiny models loaded on the CPU through the real loading code, in ``precision``."""
    return load_models(dataclasses.replace(tiny_spec, precision=precision), torch.device("cpu"))


@pytest.fixture(scope="session")
def tiny_model_args(tiny_spec: ModelSpec) -> list[str]:
    """Command-line options that make ``clipasso`` / ``clipasso-server`` load the tiny models."""
    return model_options(tiny_spec)


# -- pictures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def target() -> torch.Tensor:
    """The cup (tests/support/pictures.py) on the square canvas, ``[3, 224, 224]``: what the optimizer tests sketch."""
    return to_canvas(cup())[0]


@pytest.fixture(scope="session")
def score_pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``target.png`` (a ring) and ``sketch.png`` (one line across it), 240 × 240, for score tests."""
    folder = tmp_path_factory.mktemp("score-pictures")
    target = Image.new("RGB", (240, 240), "white")
    ImageDraw.Draw(target).ellipse((40, 40, 200, 200), outline="black", width=6)
    target.save(folder / "target.png")
    sketch = Image.new("RGB", (240, 240), "white")
    ImageDraw.Draw(sketch).line((40, 120, 200, 120), fill="black", width=3)
    sketch.save(folder / "sketch.png")
    return folder


# -- servers ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def live_server(tiny_spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real sketch server (tiny models, no token, default options) for every test that only submits jobs.

    Tests that use it leave it as they found it: they cancel what they leave running and change no setting.
    A test that kills, restarts, fills or locks a server, or needs other options, starts its own.
    """
    with start_server(tmp_path_factory.mktemp("server-data"), tiny_spec) as server:
        yield server


@pytest.fixture(scope="session")
def token_server(tiny_spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real sketch server that wants a token (``token_server.token``), for the tests of that rule."""
    with start_server(tmp_path_factory.mktemp("token-data"), tiny_spec, token="s3cret-token") as server:
        yield server


@pytest.fixture
def client(tiny_spec: ModelSpec, tmp_path: Path) -> Iterator[TestClient]:
    """A fresh sketch server app (tiny models, its own data folder) in this process, through FastAPI's TestClient."""
    with make_client(tiny_spec, tmp_path / "data") as test_client:
        yield test_client


@pytest.fixture
def sketch_server() -> Iterator[FakeSketchServer]:
    """A running fake sketch server (tests/support/fake_sketch_server.py): .url, and the attributes that steer it."""
    with FakeSketchServer() as server:
        yield server


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """The address of a local 4-CPU Ray cluster shared by one test module (skips without Ray installed)."""
    pytest.importorskip("ray", reason=RAY_MISSING)
    with short_temp_dir("ray") as folder, local_ray_cluster(folder, cpus=4) as address:
        yield address


@pytest.fixture
def browsers_ended(tmp_path: Path) -> Iterator[None]:
    """Ends the browser stand-ins (tests/support/extension_runs.py: desktop_browser) a test started in tmp_path."""
    yield
    for pid in open_browsers(tmp_path):
        os.kill(pid, signal.SIGTERM)


@pytest.fixture
def keep_pytest_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """``clipasso-server``'s ``main()`` runs in this process: keep it from replacing pytest's log handlers."""
    monkeypatch.setattr(server_cli, "setup_logging", lambda access_log: None)
