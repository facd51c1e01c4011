"""The paper's augmentation pipeline as torchvision implements it: the reference for clipasso_core.augment.

``RandomPerspective(distortion_scale=0.5, p=1, fill=0)`` then ``RandomResizedCrop(size, scale=(0.8, 0.8),
ratio=(1, 1))``, both bilinear, as in the original CLIPasso code; torchvision draws from the global RNG.
"""

from __future__ import annotations

import torch
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF


def torchvision_pipeline(size: int) -> transforms.Compose:
    """The original code's transform of a (sketch, target) batch: both images get the same draw."""
    return transforms.Compose([
        transforms.RandomPerspective(distortion_scale=0.5, p=1.0, interpolation=InterpolationMode.BILINEAR, fill=0),
        transforms.RandomResizedCrop(size, scale=(0.8, 0.8), ratio=(1.0, 1.0),
                                     interpolation=InterpolationMode.BILINEAR, antialias=True),
    ])


def torchvision_parameters(size: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` draws of torchvision's own parameter samplers: endpoints ``[N, 4, 2]`` and crops ``[N, 4]``."""
    image = torch.zeros(3, size, size)
    endpoints, crops = [], []
    for _ in range(count):
        endpoints.append(transforms.RandomPerspective.get_params(size, size, 0.5)[1])
        crops.append(transforms.RandomResizedCrop.get_params(image, scale=[0.8, 0.8], ratio=[1.0, 1.0]))
    return torch.tensor(endpoints), torch.tensor(crops)


def torchvision_apply(images: torch.Tensor, endpoints: list[list[int]], crop: tuple[int, int, int, int]) -> torch.Tensor:
    """Warp images ``[B, C, S, S]`` to ``endpoints`` (black fill), then crop ``(top, left, h, w)`` and resize to S."""
    size = images.shape[-1]
    last = size - 1
    start = [[0, 0], [last, 0], [last, last], [0, last]]
    warped = TF.perspective(images, start, endpoints, interpolation=InterpolationMode.BILINEAR, fill=0)
    return TF.resized_crop(warped, *crop, size=[size, size], interpolation=InterpolationMode.BILINEAR,
                           antialias=True)
