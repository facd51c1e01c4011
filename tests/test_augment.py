"""The batched augmentations draw from torchvision's distribution and warp + crop as torchvision does."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.support.augment_reference import torchvision_apply, torchvision_parameters, torchvision_pipeline
from clipasso_core.augment import corner_points, sample_augmentations

SIZE = 224


def _probe_image() -> torch.Tensor:
    """``[1, 3, S, S]``: white (shows where black fill comes in), a left→right ramp, a top→bottom ramp."""
    ramp = torch.linspace(0, 1, SIZE)
    return torch.stack([torch.ones(SIZE, SIZE), ramp.expand(SIZE, SIZE), ramp[:, None].expand(SIZE, SIZE)])[None]


def test_parameters_follow_torchvisions_samplers():
    count = 4000
    mine = sample_augmentations(count, SIZE, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    endpoints, crops = torchvision_parameters(SIZE, count)
    inward = {
        "ours": (mine.endpoints - corner_points(SIZE)).abs().float(),
        "torchvision": (endpoints - corner_points(SIZE)).abs().float(),
    }
    # each corner, each axis: the same support (0..56 px inward) and the same uniform moments
    for name, moves in inward.items():
        assert moves.amin(dim=0).eq(0).all() and moves.amax(dim=0).eq(56).all(), name
    assert (inward["ours"].mean(dim=0) - inward["torchvision"].mean(dim=0)).abs().max() < 1.5
    assert (inward["ours"].std(dim=0) - inward["torchvision"].std(dim=0)).abs().max() < 1.0
    # inward, never outward: the moved corner stays inside the image
    assert ((mine.endpoints >= 0) & (mine.endpoints < SIZE)).all()
    # the crop: torchvision's side (always 200 for scale 0.8) at the same uniform offsets 0..24
    assert crops[:, 2].eq(mine.side).all() and crops[:, 3].eq(mine.side).all()
    ours, theirs = mine.crops.float(), crops[:, :2].float()
    assert ours.amin() == theirs.amin() == 0 and ours.amax() == theirs.amax() == SIZE - mine.side
    assert (ours.mean(dim=0) - theirs.mean(dim=0)).abs().max() < 0.6


def test_each_transform_warps_and_crops_like_torchvision():
    augmentations = sample_augmentations(6, SIZE, torch.Generator().manual_seed(1))
    images = torch.cat([_probe_image(), F.interpolate(torch.rand(1, 3, 14, 14), size=SIZE, mode="bilinear")])
    ours = augmentations(images).unflatten(0, (6, 2))
    for index in range(6):
        top, left = augmentations.crops[index].tolist()
        expected = torchvision_apply(images, augmentations.endpoints[index].tolist(),
                                     (top, left, augmentations.side, augmentations.side))
        # one bilinear sample instead of torchvision's two: equal but for interpolation blur
        assert float((ours[index] - expected).abs().mean()) < 0.01


def test_mean_image_matches_torchvisions_pipeline():
    count = 512
    image = _probe_image()
    torch.manual_seed(2)
    pipeline = torchvision_pipeline(SIZE)
    theirs = torch.stack([pipeline(image[0]) for _ in range(count)]).mean(dim=0)
    ours = sample_augmentations(count, SIZE, torch.Generator().manual_seed(2))(image).mean(dim=0)
    pooled = F.avg_pool2d(ours[None], 28) - F.avg_pool2d(theirs[None], 28)  # 8 × 8 cells: black borders, ramps
    assert float(pooled.abs().max()) < 0.15  # sampling noise ~0.07; a crop without offsets is off by 0.33


def test_the_same_seed_gives_the_same_augmentations_and_gradients_reach_the_images():
    first = sample_augmentations(3, SIZE, torch.Generator().manual_seed(7))
    second = sample_augmentations(3, SIZE, torch.Generator().manual_seed(7))
    other = sample_augmentations(3, SIZE, torch.Generator().manual_seed(8))
    assert torch.equal(first.endpoints, second.endpoints) and torch.equal(first.crops, second.crops)
    assert not torch.equal(first.endpoints, other.endpoints)
    images = torch.rand(2, 3, SIZE, SIZE, requires_grad=True)
    out = first(images)
    assert out.shape == (6, 3, SIZE, SIZE)
    assert torch.equal(out, second(images))
    assert torch.allclose(out[2:4], first[1](images))  # transform-major: pair 1 of both images, as alone
    out.sum().backward()
    assert float(images.grad.abs().sum()) > 0
