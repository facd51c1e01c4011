"""Tiny CLIP models of the paper's two families (ResNet, ViT) with random weights, saved as real files.

They are loaded through the same code as the OpenAI weights: an open_clip model config ``.json`` plus a
checkpoint passed as ``--loss-weights`` / ``--saliency-weights`` (:func:`model_options` gives those options).
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch

from clipasso_core.models import ModelSpec

_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
TINY_CONFIGS = {
    "tiny-rn": {"embed_dim": 32, "vision_cfg": {"image_size": 224, "layers": [1, 1, 1, 1], "width": 8}, "text_cfg": _TEXT},
    "tiny-vit": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "head_width": 16, "patch_size": 32},
        "text_cfg": _TEXT,
    },
}


def make_tiny_models(directory: Path, seed: int = 0) -> ModelSpec:
    """Write tiny configs and random-weight checkpoints into ``directory``; return the spec that loads them."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    paths = {}
    for name, config in TINY_CONFIGS.items():
        config_path = directory / f"{name}.json"
        config_path.write_text(json.dumps(config))
        open_clip.add_model_config(config_path)
        model = open_clip.create_model(name)
        _calibrate_batch_norm(model.visual)
        weights_path = directory / f"{name}.pt"
        torch.save(model.state_dict(), weights_path)
        paths[name] = (config_path, weights_path)
    return ModelSpec(
        loss_model=str(paths["tiny-rn"][0]),
        saliency_model=str(paths["tiny-vit"][0]),
        loss_weights=paths["tiny-rn"][1],
        saliency_weights=paths["tiny-vit"][1],
    )


def tiny_models_in(folder: Path) -> ModelSpec:
    """The spec of the tiny models in ``folder``, written there first unless all four files are present."""
    names = ("tiny-rn.json", "tiny-rn.pt", "tiny-vit.json", "tiny-vit.pt")
    if not all((folder / name).is_file() for name in names):
        return make_tiny_models(folder)
    return ModelSpec(loss_model=str(folder / "tiny-rn.json"), saliency_model=str(folder / "tiny-vit.json"),
                     loss_weights=folder / "tiny-rn.pt", saliency_weights=folder / "tiny-vit.pt")


def model_options(spec: ModelSpec) -> list[str]:
    """The ``clipasso`` / ``clipasso-server`` options that load the models of ``spec`` on the CPU."""
    return [
        "--device", "cpu",
        "--loss-model", spec.loss_model, "--loss-weights", str(spec.loss_weights),
        "--saliency-model", spec.saliency_model, "--saliency-weights", str(spec.saliency_weights),
    ]


def _calibrate_batch_norm(visual: torch.nn.Module) -> None:
    """Set BatchNorm running statistics from a batch of smooth random images, as training would.

    Random-init statistics (mean 0, variance 1) shrink activations layer after layer; calibrated ones keep
    features at unit scale like a trained CLIP ResNet, so loss differences are well above float noise.
    """
    norms = [m for m in visual.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    images = torch.nn.functional.interpolate(torch.rand(8, 3, 14, 14), size=224, mode="bilinear")
    visual.train()
    with torch.no_grad():
        visual(images)
    visual.eval()


FULL_SIZE = {"loss": "RN101", "saliency": "ViT-B-32"}
"""The paper's two architectures at full size (what ``clipasso sketch`` loads by default)."""


def full_size_models_in(folder: Path, seed: int = 0) -> ModelSpec:
    """The paper's RN101 and ViT-B-32 with random weights as checkpoints in ``folder`` (written once, ~0.6 GB).

    No real CLIP weights are needed: the networks cost what the real ones cost, so a bench times a real job.
    BatchNorm statistics are calibrated as for the tiny models.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = {role: folder / f"{name}-random-{seed}.pt" for role, name in FULL_SIZE.items()}
    for role, name in FULL_SIZE.items():
        if not paths[role].is_file():
            torch.manual_seed(seed)
            model = open_clip.create_model(name)
            _calibrate_batch_norm(model.visual)
            partial = paths[role].with_suffix(".part")
            torch.save(model.state_dict(), partial)
            partial.replace(paths[role])
    return ModelSpec(loss_model=FULL_SIZE["loss"], saliency_model=FULL_SIZE["saliency"],
                     loss_weights=paths["loss"], saliency_weights=paths["saliency"])
