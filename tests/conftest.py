"""Shared fixtures: tiny CLIP models (random weights, real files) and the command line that loads them.

Tests that take ``tiny_models`` (or ``precision``) run twice: in fp32 and in the default precision ``auto``
(bf16 where this machine computes it natively, so both paths are exercised there).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from clipasso_core.models import LoadedModels, ModelSpec, load_models
from clipasso_core.precision import Precision
from tiny_models import make_tiny_models


@pytest.fixture(scope="session", autouse=True)
def own_config_folders(tmp_path_factory: pytest.TempPathFactory):
    """Settings (server.toml, the extension's settings) and data of the tests, and of every server they start,
    live in folders of the test run, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
            patch.setenv(variable, str(tmp_path_factory.mktemp(variable.lower())))
        patch.delenv("CLIPASSO_SERVER_TOKEN", raising=False)
        yield


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
    return [
        "--device", "cpu",
        "--loss-model", tiny_spec.loss_model, "--loss-weights", str(tiny_spec.loss_weights),
        "--saliency-model", tiny_spec.saliency_model, "--saliency-weights", str(tiny_spec.saliency_weights),
    ]



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
