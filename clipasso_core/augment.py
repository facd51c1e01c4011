"""CLIPasso's paired augmentations as one batched sampling grid: random perspective composed with a random crop.

The distribution is the paper's torchvision pipeline: ``RandomPerspective(distortion_scale=0.5, p=1, fill=0)``
then ``RandomResizedCrop(size, scale=(0.8, 0.8), ratio=(1, 1))``, both bilinear. Each corner moves inward by
a random whole number of pixels (0 … ⌊0.5·size/2⌋ per axis) and the crop is a ⌊√0.8·size⌉ square at a random
whole-pixel offset, resized back to ``size``. Instead of warping, cropping and resizing each pair in turn,
the crop's affine map is composed with the perspective homography (the same coefficients torchvision
computes, in its pixel-centre convention) and every pair is sampled once with ``grid_sample`` (bilinear,
black outside the image, the edge scaled by the in-bounds fraction as torchvision's ``fill=0``). One bilinear sample instead of two makes the result slightly sharper than
torchvision's; the geometry is the same.

Assumes square images. Parameters are drawn on the CPU from the caller's generator (same seed, same
augmentations); they become one ``[K, 3, 3]`` matrix per transform (:class:`Warps`), and the grid is built from
those on the images' device, so a captured CUDA graph can take new transforms by copying in new matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PERSPECTIVE_DISTORTION = 0.5
CROP_SCALE = 0.8


@dataclass(frozen=True)
class Augmentations:
    """K random perspective + crop transforms, applied identically to a sketch batch and its target.

    ``endpoints`` ``[K, 4, 2]``: where the image's corners (top-left, top-right, bottom-right, bottom-left,
    as x, y pixels) move to; ``crops`` ``[K, 2]``: the crop's top, left; ``side``: the crop's side.
    """

    size: int
    endpoints: torch.Tensor
    crops: torch.Tensor
    side: int

    def __len__(self) -> int:
        return self.endpoints.shape[0]

    def __getitem__(self, index: int) -> Augmentations:
        """The ``index``-th transform alone (a batch of one)."""
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return Augmentations(self.size, self.endpoints[index:index + 1], self.crops[index:index + 1], self.side)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Every transform on every image: ``[B, C, S, S]`` → ``[K·B, C, S, S]``, transform-major, differentiable."""
        return Warps(self.matrices().to(images.device))(images)

    def matrices(self) -> torch.Tensor:
        """``[K, 3, 3]`` float32 on the CPU: an output pixel centre (u + ½, v + ½, 1) → where it samples the source."""
        scale = self.side / self.size
        crop = torch.zeros(len(self), 3, 3, dtype=torch.float64)
        crop[:, 0, 0] = crop[:, 1, 1] = scale
        crop[:, 0, 2] = self.crops[:, 1].double()
        crop[:, 1, 2] = self.crops[:, 0].double()
        crop[:, 2, 2] = 1.0
        # the crop's pixel-centre coordinates in the warped image, then the perspective back to the source
        return (homographies(self.endpoints, self.size) @ crop).float()


@dataclass(frozen=True)
class Warps:
    """K transforms of square images as pixel-centre matrices ``[K, 3, 3]`` (float32) on the images' device."""

    matrices: torch.Tensor

    def __len__(self) -> int:
        return self.matrices.shape[0]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Every transform on every image: ``[B, C, S, S]`` → ``[K·B, C, S, S]``, transform-major, differentiable."""
        count, channels, size = images.shape[0], images.shape[1], images.shape[-1]
        grid = self.grid(size, images.dtype)
        # a channel of ones samples the in-bounds fraction, which scales the edge as torchvision's fill=0 does
        stacked = torch.cat([images.reshape(1, count * channels, size, size),
                             torch.ones_like(images[:1, :1])], dim=1).expand(len(self), -1, -1, -1)
        warped = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        warped = warped[:, :-1] * warped[:, -1:]
        return warped.reshape(len(self) * count, channels, size, size)

    def grid(self, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The sampling grid ``[K, S, S, 2]`` of ``grid_sample`` (``align_corners=False``) for ``size``² images."""
        centres = torch.arange(size, device=self.matrices.device, dtype=torch.float32) + 0.5
        y, x = torch.meshgrid(centres, centres, indexing="ij")
        base = torch.stack([x, y, torch.ones_like(x)], dim=-1).reshape(1, size * size, 3)
        mapped = base @ self.matrices.transpose(1, 2)
        points = mapped[..., :2] / mapped[..., 2:]
        return (points / (0.5 * size) - 1.0).reshape(len(self), size, size, 2).to(dtype)


def corner_points(size: int) -> torch.Tensor:
    """The image's corners as torchvision names them: ``[4, 2]`` (top-left, top-right, bottom-right, bottom-left)."""
    last = size - 1
    return torch.tensor([[0, 0], [last, 0], [last, last], [0, last]])


def sample_augmentations(count: int, size: int, generator: torch.Generator) -> Augmentations:
    """Draw ``count`` RandomPerspective(0.5, p=1) + RandomResizedCrop(scale 0.8, ratio 1) transforms for ``size``²."""
    limit = int(PERSPECTIVE_DISTORTION * (size // 2)) + 1
    inward = torch.randint(0, limit, (count, 4, 2), generator=generator)
    toward_centre = torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    endpoints = corner_points(size) + toward_centre * inward
    side = int(round((CROP_SCALE * size * size) ** 0.5))
    crops = torch.randint(0, size - side + 1, (count, 2), generator=generator)
    return Augmentations(size, endpoints, crops, side)


def homographies(endpoints: torch.Tensor, size: int) -> torch.Tensor:
    """Homographies ``[K, 3, 3]`` (float64) taking each moved corner of ``endpoints`` ``[K, 4, 2]`` back to its place.

    They map an output pixel of the warp to where it samples the input, as torchvision's ``perspective``.
    """
    source = corner_points(size).double().expand(endpoints.shape[0], -1, -1)
    target = endpoints.double()
    x, y = target[..., 0], target[..., 1]
    u, v = source[..., 0], source[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], dim=-1)
    system = torch.cat([rows_u, rows_v], dim=1)  # [K, 8, 8]
    coefficients = torch.linalg.solve(system, torch.cat([u, v], dim=1))
    return torch.cat([coefficients, torch.ones_like(coefficients[:, :1])], dim=1).reshape(-1, 3, 3)
