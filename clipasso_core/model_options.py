"""Command-line options that choose the CLIP models, their weights, the device and the networks' precision.

Shared by ``clipasso`` and ``clipasso-server`` so that both spell them the same way; argparse only.
:data:`OPTION_NAMES` says how these options name the library parameters that errors speak of.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from .models import CPU_DEVICE, DEFAULT_LOSS_MODEL, DEFAULT_PRETRAINED, DEFAULT_SALIENCY_MODEL, ModelSpec
from .precision import PRECISION_CHOICES, Precision


def long_option(name: str) -> str:
    """How the command line spells the option of a parameter or argparse ``dest``: ``max_body_mb`` → ``--max-body-mb``."""
    return "--" + name.replace("_", "-")


OPTION_NAMES = {CPU_DEVICE: "--device cpu", **{f"ModelSpec.{field.name}": long_option(field.name)
                                                for field in dataclasses.fields(ModelSpec)}}
"""A library parameter as an error names it (``ModelSpec.loss_weights``) → the option that sets it (``--loss-weights``)."""


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add the options choosing CLIP models, weights, device and precision to ``parser``."""
    group = parser.add_argument_group("models")
    group.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda (default: auto)")
    group.add_argument("--precision", choices=PRECISION_CHOICES,
                       help="precision of the CLIP networks: auto (bf16 on GPUs and on CPUs with native bf16, "
                            "else fp32), fp32, bf16 or fp16 (default: auto)")
    group.add_argument("--loss-model", default=DEFAULT_LOSS_MODEL,
                       help=f"open_clip ResNet for the loss, or a model config .json (default: {DEFAULT_LOSS_MODEL})")
    group.add_argument("--saliency-model", default=DEFAULT_SALIENCY_MODEL,
                       help=f"open_clip ViT for the initial strokes, or a config .json (default: {DEFAULT_SALIENCY_MODEL})")
    group.add_argument("--pretrained", default=DEFAULT_PRETRAINED,
                       help=f"open_clip pretrained tag of both models (default: {DEFAULT_PRETRAINED})")
    group.add_argument("--loss-weights", type=Path, metavar="FILE", help="local checkpoint for the loss model")
    group.add_argument("--saliency-weights", type=Path, metavar="FILE", help="local checkpoint for the saliency model")


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The :class:`ModelSpec` named by :func:`add_model_options`' options."""
    return ModelSpec(
        loss_model=args.loss_model,
        saliency_model=args.saliency_model,
        pretrained=args.pretrained,
        loss_weights=args.loss_weights,
        saliency_weights=args.saliency_weights,
        precision=Precision(args.precision or Precision.AUTO),
    )
