"""The frozen tower computes the same function after BatchNorm folding and channels_last, and loading applies them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import open_clip
import torch
from torch import nn

from clipasso_core.frozen import freeze_for_inference
from clipasso_core.models import ModelSpec, load_models
from clipasso_core.precision import Precision


def _tiny_resnet(spec: ModelSpec) -> nn.Module:
    """The tiny ResNet image tower as open_clip builds it (BatchNorms with calibrated statistics), in eval mode."""
    model = open_clip.create_model(Path(spec.loss_model).stem, pretrained=str(spec.loss_weights))
    return model.visual.eval().requires_grad_(False)


def _output_and_input_gradient(visual: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    images = images.clone().requires_grad_(True)
    output = visual(images)
    (output * torch.linspace(-1, 1, output.shape[-1])).sum().backward()
    return output.detach(), images.grad


def test_folded_tower_matches_the_original_in_value_and_input_gradient(tiny_spec: ModelSpec) -> None:
    original = _tiny_resnet(tiny_spec)
    norms = sum(isinstance(module, nn.BatchNorm2d) for module in original.modules())
    folded = freeze_for_inference(_tiny_resnet(tiny_spec), torch.device("cpu"))
    assert norms > 0
    assert not any(isinstance(module, nn.BatchNorm2d) for module in folded.modules())
    assert not any(parameter.requires_grad for parameter in folded.parameters())
    images = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    expected_output, expected_gradient = _output_and_input_gradient(original, images)
    output, gradient = _output_and_input_gradient(folded, images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(output, expected_output, rtol=1e-4, atol=1e-4 * expected_output.abs().max().item())
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-3,
                               atol=1e-4 * expected_gradient.abs().max().item())


def test_loaded_loss_network_is_folded_and_channels_last(tiny_spec: ModelSpec) -> None:
    models = load_models(dataclasses.replace(tiny_spec, precision=Precision.FP32), torch.device("cpu"))
    visual = models.loss.visual
    assert not any(isinstance(module, nn.BatchNorm2d) for module in visual.modules())
    assert visual.conv1.weight.is_contiguous(memory_format=torch.channels_last)
