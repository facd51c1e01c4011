"""The CLIPasso perceptual loss: CLIP ResNet layer2/layer3 feature MSE plus 0.1 × (1 − cos) of the embeddings.

Other stages (layer1, layer4) join with their own weights when asked for (the fidelity control), and so does
a text prompt (weight × (1 − cos) between the sketch's embedding and the prompt's, on the same pairs); a term
with weight 0 is not computed at all, so the paper's loss is computed exactly as before.

Each step compares a sketch with the target on 1 clean and K augmented pairs; a pair's sketch and target get
the same random perspective + crop. The target side never needs gradients: its clean features are computed
once per job, and its augmented features once per step for every sketch of the job.

The network sees sketch and target at its own input size (224 for the paper's RN101) or at a smaller ``size``
(the quick preset's 112: about a quarter of the work): each block of pixels is averaged (a thin stroke keeps
its ink), and the attention pool's positional embedding is resized to the smaller grid (bicubic, as open_clip
resizes a ViT's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .augment import Augmentations, Warps
from .models import ClipEncoder
from .params import SketchParams

@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (the paper: layer2 1, layer3 1, fc 0.1; layer1 and layer4 off)."""

    layer2: float = 1.0
    layer3: float = 1.0
    fc: float = 0.1
    layer1: float = 0.0
    layer4: float = 0.0
    text: float = 0.0

    @classmethod
    def from_params(cls, params: SketchParams) -> LossWeights:
        """The weights a job's parameters ask for (the text term only when there is a prompt)."""
        return cls(layer2=params.layer2_weight, layer3=params.layer3_weight, fc=params.fc_weight,
                   layer1=params.layer1_weight, layer4=params.layer4_weight,
                   text=params.text_weight if params.text else 0.0)

    def active(self) -> tuple[str, ...]:
        """Names of the terms with a non-zero weight, in :data:`TERM_ORDER`."""
        weights = {"conv_layer1": self.layer1, "conv_layer2": self.layer2, "conv_layer3": self.layer3,
                   "conv_layer4": self.layer4, "fc": self.fc, "text": self.text}
        return tuple(name for name in TERM_ORDER if weights[name] != 0)


TERM_ORDER = ("conv_layer1", "conv_layer2", "conv_layer3", "conv_layer4", "fc", "text")
"""Every loss term, in the order the term vectors list them (only the active ones are present)."""

_TAPS = {"conv_layer1": "layer1", "conv_layer2": "layer2", "conv_layer3": "layer3", "conv_layer4": "layer4",
         "fc": "embedding", "text": "embedding"}


Features = dict[str, torch.Tensor]
"""Named taps of a CLIP ResNet for a batch ``[B, …]``: ``layer1`` … ``layer4`` feature maps and ``embedding`` ``[B, D]``."""


class ClipConvLoss:
    """CLIPasso's loss against one fixed target image, for a batch of sketches at once."""

    def __init__(self, encoder: ClipEncoder, target: torch.Tensor, weights: LossWeights = LossWeights(),
                 text_embedding: torch.Tensor | None = None, size: int | None = None) -> None:
        """Cache the clean target's features; ``target`` is ``[3, H, W]`` in [0, 1] on the encoder's device.

        ``text_embedding`` ``[D]`` (the prompt's CLIP text embedding) is needed when ``weights.text`` is non-zero.
        ``size`` is the side the network sees images at (None: its own input size).
        """
        self.encoder = encoder
        self.size = size or encoder.image_size
        self.weights = weights
        self.term_names = weights.active()
        if not self.term_names:
            raise ValueError("at least one loss weight must be non-zero")
        if "text" in self.term_names and text_embedding is None:
            raise ValueError("a text weight needs the prompt's text embedding")
        self.text_embedding = None if text_embedding is None else text_embedding.reshape(1, -1)
        self._taps = {_TAPS[name] for name in self.term_names}
        self.target = target[None]
        with torch.no_grad():
            self.clean_target = self.features(self.target)

    def features(self, images: torch.Tensor) -> Features:
        """The taps this loss compares, of images ``[B, 3, H, W]`` in [0, 1], in the encoder's precision.

        Stops at the deepest tap needed.
        """
        visual = self.encoder.visual
        size = self.size
        if images.shape[-1] > size and images.shape[-2] > size:
            images = F.interpolate(images, size=(size, size), mode="area")
        elif images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
        taps: Features = {}
        with self.encoder.autocast():
            x = visual.stem(self.encoder.normalize(images).contiguous(memory_format=torch.channels_last))
            for stage in ("layer1", "layer2", "layer3", "layer4"):
                if not self._taps - taps.keys():
                    return taps
                x = getattr(visual, stage)(x)
                if stage in self._taps:
                    taps[stage] = x
            if "embedding" in self._taps:
                pool = visual.attnpool
                grid = _grid_side(pool.positional_embedding)
                taps["embedding"] = pool(x) if x.shape[-2:] == (grid, grid) else attention_pool(pool, x)
        return taps

    def pair_terms(self, sketches: torch.Tensor, augmentations: Augmentations | Warps | None = None) -> torch.Tensor:
        """Weighted loss terms per sketch and pair: ``[B, 1 + K, T]`` for sketches ``[B, 3, H, W]``.

        The T terms are :attr:`term_names` (the paper's: conv_layer2, conv_layer3, fc). Pair 0 is the clean pair
        (the eval loss); pairs 1..K use the K ``augmentations`` on sketch and target alike.
        """
        count = sketches.shape[0]
        if augmentations:
            # sketches and target through the same grids in one call: [K, B + 1, 3, H, W]
            augmented = augmentations(torch.cat([sketches, self.target])).unflatten(0, (len(augmentations), count + 1))
            inputs = torch.cat([sketches, augmented[:, :count].flatten(0, 1)])
            with torch.no_grad():
                augmented_target = self.features(augmented[:, count].detach())
            target = {tap: torch.cat([self.clean_target[tap], augmented_target[tap]]) for tap in self._taps}
        else:
            inputs, target = sketches, self.clean_target
        sketch = self.features(inputs)
        pairs = 1 + (len(augmentations) if augmentations else 0)
        terms = []
        for name in self.term_names:
            tap = _TAPS[name]
            if name == "fc":
                terms.append(self.weights.fc * _pair_cosine_distance(sketch[tap], target[tap], count, pairs))
            elif name == "text":
                prompt = self.text_embedding.expand(pairs, -1)
                terms.append(self.weights.text * _pair_cosine_distance(sketch[tap], prompt, count, pairs))
            else:
                weight = getattr(self.weights, tap)
                terms.append(weight * _pair_mse(sketch[tap], target[tap], count, pairs))
        return torch.stack(terms, dim=-1)

    def eval_terms(self, sketches: torch.Tensor) -> torch.Tensor:
        """Un-augmented weighted terms ``[B, T]`` (:attr:`term_names`) of sketches ``[B, 3, H, W]``, no gradients."""
        with torch.no_grad():
            return self.pair_terms(sketches)[:, 0]


def attention_pool(pool: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A CLIP ResNet's attention pool (open_clip's ``AttentionPool2d``, computed as it does) over feature maps
    ``[B, C, h, w]`` of any grid: its positional embedding resized to ``h × w`` (bicubic) → embeddings ``[B, D]``."""
    batch, channels, height, width = x.shape
    tokens = x.reshape(batch, channels, height * width).permute(2, 0, 1)  # [hw, B, C]
    tokens = torch.cat([tokens.mean(dim=0, keepdim=True), tokens])
    tokens = tokens + resized_positions(pool.positional_embedding, height, width)[:, None, :].to(tokens.dtype)
    pooled, _ = F.multi_head_attention_forward(
        query=tokens, key=tokens, value=tokens, embed_dim_to_check=channels, num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None, in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=pool.c_proj.weight,
        out_proj_bias=pool.c_proj.bias, use_separate_proj_weight=True, training=False, need_weights=False)
    return pooled[0]


def resized_positions(positions: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A positional embedding ``[1 + g², C]`` (the class token, then a g × g grid) for an ``height × width`` grid:
    ``[1 + height·width, C]``, the grid resized bicubically."""
    side = _grid_side(positions)
    grid = positions[1:].float().reshape(side, side, -1).permute(2, 0, 1)[None]
    grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
    return torch.cat([positions[:1], grid[0].permute(1, 2, 0).reshape(height * width, -1).to(positions.dtype)])


def _grid_side(positions: torch.Tensor) -> int:
    """The side g of the square grid of a positional embedding ``[1 + g², C]``."""
    return round((positions.shape[0] - 1) ** 0.5)


def _pair_mse(sketch: torch.Tensor, target: torch.Tensor, count: int, pairs: int) -> torch.Tensor:
    """Mean squared difference per (sketch, pair): sketch ``[P·B, …]`` (pair-major) vs target ``[P, …]`` → ``[B, P]``."""
    sketch = sketch.float().reshape(pairs, count, -1)
    target = target.float().reshape(pairs, 1, -1)
    return (sketch - target).pow(2).mean(dim=-1).transpose(0, 1)


def _pair_cosine_distance(sketch: torch.Tensor, target: torch.Tensor, count: int, pairs: int) -> torch.Tensor:
    """1 − cos of embeddings per (sketch, pair): ``[P·B, D]`` vs ``[P, D]`` → ``[B, P]``."""
    sketch = sketch.float().reshape(pairs, count, -1)
    target = target.float().reshape(pairs, 1, -1)
    return (1.0 - F.cosine_similarity(sketch, target, dim=-1)).transpose(0, 1)
