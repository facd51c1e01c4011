"""CLIP image encoders from open_clip: the loss network (a CLIP ResNet) and the saliency network (a CLIP ViT).

Weights come from open_clip's pretrained tags (the paper's OpenAI weights are fetched from the Hugging
Face hub and cached there) or from a local checkpoint file. A model name may also be the path of an
open_clip model config ``.json`` (a custom architecture, registered under the file's stem).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .weights import (LIBRARY_WAY, HubWeights, OfflineWay, check_reachable, for_model, hub_weights, missing,
                      unavailable)
from .errors import ClipassoError, ModelError
from .frozen import freeze_for_inference
from .precision import Precision, autocast, resolve_precision

DEFAULT_LOSS_MODEL = "RN101"
DEFAULT_SALIENCY_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
CPU_DEVICE = "resolve_device('cpu')"
"""How the library tells a caller to use the CPU (a command line says it with its device option)."""


@dataclass(frozen=True)
class ModelSpec:
    """Which CLIP encoders to use, where their weights come from, and the precision they compute in."""

    loss_model: str = DEFAULT_LOSS_MODEL
    saliency_model: str = DEFAULT_SALIENCY_MODEL
    pretrained: str = DEFAULT_PRETRAINED
    loss_weights: Path | None = None
    saliency_weights: Path | None = None
    precision: Precision = Precision.AUTO


@dataclass(frozen=True)
class TextSource:
    """Where the text tower of a loaded CLIP model comes from: the same open_clip model and weights."""

    model_name: str
    source: str | None
    quick_gelu: bool


@dataclass
class ClipEncoder:
    """A frozen CLIP image tower with the input size and normalisation it was trained with, and its precision.

    ``text`` says where its text tower lives; the tower itself is loaded only to encode a prompt.
    """

    visual: nn.Module
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: Precision = Precision.FP32
    text: TextSource | None = None
    _moments: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        """The device the weights live on."""
        return next(self.visual.parameters()).device

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The context to run this tower in: autocast to its precision (none for fp32)."""
        return autocast(self.precision, self.device)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP-normalise images ``[B, 3, H, W]`` in [0, 1] (the constants are copied to a device once)."""
        key = (images.device, images.dtype)
        if key not in self._moments:
            self._moments[key] = tuple(torch.tensor(values, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
                                       for values in (self.mean, self.std))
        mean, std = self._moments[key]
        return (images - mean) / std


@dataclass
class LoadedModels:
    """The two encoders a sketch job needs, on one device."""

    loss: ClipEncoder
    saliency: ClipEncoder
    device: torch.device


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when PyTorch sees a GPU, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ClipassoError("CUDA was requested but PyTorch sees no CUDA GPU on this machine; use "
                            f"{CPU_DEVICE}.", [CPU_DEVICE])
    try:
        return torch.device(name)
    except RuntimeError:
        raise ClipassoError(f"Unknown device {name!r}; use auto, cpu or cuda.") from None


def load_models(spec: ModelSpec, device: torch.device) -> LoadedModels:
    """Load both encoders of ``spec`` onto ``device``, frozen and in eval mode, computing in ``spec.precision``.

    Weights that are neither cached nor downloadable fail at once, with every missing model named.
    """
    needed = missing(hub_weights(spec.loss_model, spec.saliency_model, spec.pretrained, spec.loss_weights,
                                 spec.saliency_weights))
    check_reachable(needed)
    loss = load_encoder(spec.loss_model, spec.pretrained, spec.loss_weights, device, LIBRARY_WAY.loss,
                        spec.precision)
    if not all(hasattr(loss.visual, stage) for stage in ("stem", "layer2", "layer3", "attnpool")):
        raise ModelError(
            f"The loss model must be a CLIP ResNet (RN50, RN101, …) with layer2/layer3 stages; "
            f"{spec.loss_model!r} is not."
        )
    saliency = load_encoder(spec.saliency_model, spec.pretrained, spec.saliency_weights, device,
                            LIBRARY_WAY.saliency, spec.precision)
    if not hasattr(getattr(saliency.visual, "transformer", None), "resblocks"):
        raise ModelError(f"The saliency model must be a CLIP ViT (ViT-B-32, …); {spec.saliency_model!r} is not.")
    return LoadedModels(loss=loss, saliency=saliency, device=device)


def load_encoder(name: str, pretrained: str | None, weights: Path | None, device: torch.device,
                 weights_parameter: str, precision: Precision | str = Precision.AUTO) -> ClipEncoder:
    """Build open_clip model ``name`` with ``weights`` (a file) or the ``pretrained`` tag; keep its image tower.

    ``precision`` is resolved for ``device`` (``auto`` → bf16 where it is native, else fp32). Errors name the
    caller's parameter for ``weights`` as ``weights_parameter`` (e.g. ``ModelSpec.loss_weights``).
    """
    import open_clip  # where a model is built: it brings torchvision and timm (about 2.5 s)

    model_name = _register_config(name)
    if weights is not None:
        weights = Path(weights)
        if weights.is_dir():
            raise ModelError(f"The weights file {str(weights)!r} for {model_name} is a folder; give "
                             f"{weights_parameter} the checkpoint file itself.", [weights_parameter])
        if not weights.is_file():
            raise ModelError(f"The weights file {str(weights)!r} for {model_name} does not exist.")
        if not is_checkpoint_file(weights):
            raise ModelError(f"The weights file {str(weights)!r} is not a checkpoint (a PyTorch .pt/.bin or a "
                             f".safetensors file); give {weights_parameter} the weights of {model_name}.",
                             [weights_parameter])
        source = str(weights)
        quick_gelu = False
    else:
        source = pretrained
        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained) if pretrained else {}
        if pretrained and not tag_cfg:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
            raise ModelError(
                f"open_clip has no {pretrained!r} weights for {model_name} (known tags: {tags}); "
                f"give a checkpoint file as {weights_parameter}.", [weights_parameter]
            )
        quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        check_reachable(missing(for_model(model_name, pretrained)), _one_way(weights_parameter))
    try:
        model = _create_model(model_name, source, quick_gelu)
    except Exception as error:  # open_clip reports download, config and checkpoint problems as assorted errors
        raise _explain_load_failure(model_name, pretrained, weights, weights_parameter, error) from None
    visual = freeze_for_inference(model.visual, device)  # channels_last (the loss's batches too); cuDNN tuned
    has_text = callable(getattr(model, "encode_text", None))
    del model
    config = getattr(visual, "preprocess_cfg", {})
    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    return ClipEncoder(
        visual=visual,
        image_size=int(size),
        mean=tuple(config.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(config.get("std", open_clip.OPENAI_DATASET_STD)),
        text=TextSource(model_name, source, quick_gelu) if has_text else None,
        precision=resolve_precision(precision, device),
    )


def encode_prompt(encoder: ClipEncoder, prompt: str, device: torch.device) -> torch.Tensor:
    """The CLIP text embedding ``[D]`` of ``prompt`` from ``encoder``'s own text tower, loaded for this call only.

    The tower (with its tokenizer) is built on the CPU from the same weights as the image tower, used once
    and freed, so it never takes memory on the device between jobs.
    """
    if encoder.text is None:
        raise ModelError("The loss model has no text tower, so it cannot be steered by a text prompt.")
    text = encoder.text
    import open_clip

    try:
        model = _create_model(text.model_name, text.source, text.quick_gelu)
        tokenizer = open_clip.get_tokenizer(text.model_name)
    except Exception as error:  # the same weights loaded a moment ago; say so plainly if they no longer do
        raise ModelError(f"Cannot load the text tower of {text.model_name}: {_first_line(error)}.") from None
    model.visual = None
    model.eval().requires_grad_(False)
    with torch.no_grad():
        embedding = model.encode_text(tokenizer([prompt]))[0].float()
    del model
    return embedding.to(device)


def _create_model(model_name: str, source: str | None, quick_gelu: bool) -> nn.Module:
    """The whole open_clip model (image and text towers) on the CPU, quietly."""
    import open_clip

    with _quiet():
        return open_clip.create_model(model_name, pretrained=source, force_quick_gelu=quick_gelu, device="cpu")


def _register_config(name: str) -> str:
    """Register a ``.json`` model config path with open_clip and return the model name to use."""
    import open_clip

    if not name.endswith(".json"):
        if name.replace("/", "-") not in open_clip.list_models():
            raise ModelError(
                f"Unknown CLIP model {name!r}. Use an open_clip name such as RN101, RN50 or ViT-B-32, "
                "or the path of an open_clip model config .json."
            )
        return name
    path = Path(name)
    if path.is_dir():
        raise ModelError(f"The model config file {name!r} is a folder; give the path of the .json file itself.")
    if not path.is_file():
        raise ModelError(f"The model config file {name!r} does not exist.")
    open_clip.add_model_config(path)
    return path.stem


def is_checkpoint_file(path: Path) -> bool:
    """Whether ``path`` starts like a checkpoint: a PyTorch zip or pickle, or a safetensors header."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(9)
    except OSError:
        return False
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save's zip, or a legacy pickle
        return True
    return len(head) == 9 and head[8:9] == b"{"  # safetensors: 8-byte header length, then its JSON


def _explain_load_failure(model_name: str, pretrained: str | None, weights: Path | None, weights_parameter: str,
                          error: Exception) -> ClipassoError:
    if weights is not None:
        reason = _first_line(error)
        if "state_dict" in reason or isinstance(error, (AttributeError, KeyError, TypeError, IndexError)):
            reason = "its tensors have other names or shapes than this architecture needs"
        return ModelError(f"The checkpoint {str(weights)!r} cannot be loaded as {model_name}: {reason}.")
    hub = for_model(model_name, pretrained) or [HubWeights(model_name, "loss", "", ())]
    return unavailable(hub, _one_way(weights_parameter), _first_line(error))


def _one_way(weights_parameter: str) -> OfflineWay:
    """How a caller that names one weights parameter (e.g. ``ModelSpec.loss_weights``) gives a checkpoint file."""
    return OfflineWay(weights_parameter, weights_parameter)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


@contextlib.contextmanager
def _quiet():
    """Silence open_clip's and the hub's logging, warnings and prints while a model loads."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
