"""The CLIPasso perceptual loss: CLIP ResNet layer2/layer3 feature MSE plus 0.1 × (1 − cos) of the embeddings.

Each step compares a sketch with the target on 1 clean and K augmented pairs; a pair's sketch and target get
the same random perspective + crop. The target side never needs gradients: its clean features are computed
once per job, and its augmented features once per step for every sketch of the job.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .models import ClipEncoder

PERSPECTIVE_DISTORTION = 0.5
CROP_SCALE = 0.8


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three loss terms (the paper: 1, 1, 0.1)."""

    layer2: float = 1.0
    layer3: float = 1.0
    fc: float = 0.1


@dataclass
class Features:
    """Named taps of a CLIP ResNet for a batch: layer2 ``[B, C2, H2, W2]``, layer3 ``[B, C3, H3, W3]``, embedding ``[B, D]``."""

    layer2: torch.Tensor
    layer3: torch.Tensor
    embedding: torch.Tensor


@dataclass(frozen=True)
class Augmentation:
    """One random perspective + crop, applied identically to a sketch and its target."""

    startpoints: list[list[int]]
    endpoints: list[list[int]]
    crop: tuple[int, int, int, int]  # top, left, height, width

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Warp images ``[B, 3, H, W]`` (black fill), crop and resize back to ``H × W``."""
        size = list(images.shape[-2:])
        warped = self._warp(images)
        # Black fill as torchvision's fill=0: scale by the warped in-bounds fraction. Done out of place, because
        # torchvision's own fill path is in place and breaks the gradient through the sketch.
        warped = warped * self._warp(torch.ones_like(images[:1, :1]))
        return TF.resized_crop(warped, *self.crop, size=size, interpolation=InterpolationMode.BILINEAR,
                               antialias=True)


    def _warp(self, images: torch.Tensor) -> torch.Tensor:
        return TF.perspective(images, self.startpoints, self.endpoints, interpolation=InterpolationMode.BILINEAR)


def sample_augmentation(size: int, generator: torch.Generator) -> Augmentation:
    """Draw RandomPerspective(0.5, p=1) and RandomResizedCrop(scale=0.8, ratio=1) parameters for a square image."""
    half = size // 2
    limit = int(PERSPECTIVE_DISTORTION * half) + 1
    inward = torch.randint(0, limit, (4, 2), generator=generator).tolist()
    last = size - 1
    startpoints = [[0, 0], [last, 0], [last, last], [0, last]]
    endpoints = [
        [inward[0][0], inward[0][1]],
        [last - inward[1][0], inward[1][1]],
        [last - inward[2][0], last - inward[2][1]],
        [inward[3][0], last - inward[3][1]],
    ]
    side = int(round((CROP_SCALE * size * size) ** 0.5))
    top, left = torch.randint(0, size - side + 1, (2,), generator=generator).tolist()
    return Augmentation(startpoints, endpoints, (top, left, side, side))


class ClipConvLoss:
    """CLIPasso's loss against one fixed target image, for a batch of sketches at once."""

    def __init__(self, encoder: ClipEncoder, target: torch.Tensor, weights: LossWeights = LossWeights()) -> None:
        """Cache the clean target's features; ``target`` is ``[3, H, W]`` in [0, 1] on the encoder's device."""
        self.encoder = encoder
        self.weights = weights
        self.target = target[None]
        with torch.no_grad():
            self.clean_target = self.features(self.target)

    def features(self, images: torch.Tensor) -> Features:
        """layer2, layer3 and embedding of images ``[B, 3, H, W]`` in [0, 1], in the encoder's precision."""
        visual = self.encoder.visual
        size = self.encoder.image_size
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
        images = self.encoder.normalize(images)
        with self.encoder.autocast():
            layer2 = visual.layer2(visual.layer1(visual.stem(images)))
            layer3 = visual.layer3(layer2)
            embedding = visual.attnpool(visual.layer4(layer3))
        return Features(layer2, layer3, embedding)

    def pair_terms(self, sketches: torch.Tensor, augmentations: list[Augmentation]) -> torch.Tensor:
        """Weighted loss terms per sketch and pair: ``[B, 1 + K, 3]`` (layer2, layer3, fc) for sketches ``[B, 3, H, W]``.

        Pair 0 is the clean pair (the eval loss); pairs 1..K use ``augmentations`` on sketch and target alike.
        """
        count = sketches.shape[0]
        inputs = torch.cat([sketches] + [augment(sketches) for augment in augmentations])
        if augmentations:
            with torch.no_grad():
                augmented_target = self.features(torch.cat([augment(self.target) for augment in augmentations]))
            target = _concat(self.clean_target, augmented_target)
        else:
            target = self.clean_target
        sketch = self.features(inputs)
        pairs = 1 + len(augmentations)
        terms = torch.stack([
            self.weights.layer2 * _pair_mse(sketch.layer2, target.layer2, count, pairs),
            self.weights.layer3 * _pair_mse(sketch.layer3, target.layer3, count, pairs),
            self.weights.fc * _pair_cosine_distance(sketch.embedding, target.embedding, count, pairs),
        ], dim=-1)
        return terms

    def eval_terms(self, sketches: torch.Tensor) -> torch.Tensor:
        """Un-augmented weighted terms ``[B, 3]`` (layer2, layer3, fc) of sketches ``[B, 3, H, W]``, no gradients."""
        with torch.no_grad():
            return self.pair_terms(sketches, [])[:, 0]


def _concat(first: Features, second: Features) -> Features:
    return Features(
        torch.cat([first.layer2, second.layer2]),
        torch.cat([first.layer3, second.layer3]),
        torch.cat([first.embedding, second.embedding]),
    )


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
