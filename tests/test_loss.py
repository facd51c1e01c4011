"""The CLIPasso loss: paired augmentations, per-pair terms, frozen weights, gradients reach the sketch."""

import torch
import torch.nn.functional as F

from clipasso_core.augment import sample_augmentations
from clipasso_core.loss import ClipConvLoss, LossWeights, attention_pool, resized_positions


def test_a_sketch_identical_to_the_target_has_zero_loss_on_every_pair(tiny_models):
    target = torch.rand(3, 224, 224)
    loss = ClipConvLoss(tiny_models.loss, target)
    generator = torch.Generator().manual_seed(0)
    augmentations = sample_augmentations(4, 224, generator)
    terms = loss.pair_terms(target[None], augmentations)
    assert terms.shape == (1, 5, 3)
    assert float(terms.abs().max()) < 1e-5  # same warp and crop for sketch and target


def test_augmented_pairs_differ_and_gradients_reach_only_the_sketch(tiny_models):
    target = torch.rand(3, 224, 224)
    loss = ClipConvLoss(tiny_models.loss, target, LossWeights(1.0, 1.0, 0.1))
    sketch = torch.ones(2, 3, 224, 224, requires_grad=True)
    generator = torch.Generator().manual_seed(1)
    terms = loss.pair_terms(sketch, sample_augmentations(2, 224, generator))
    assert terms.shape == (2, 3, 3)
    assert not torch.allclose(terms[:, 0], terms[:, 1])
    terms.sum().backward()
    assert sketch.grad is not None and float(sketch.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in tiny_models.loss.visual.parameters())


def test_eval_terms_are_the_clean_pair(tiny_models):
    target = torch.rand(3, 224, 224)
    loss = ClipConvLoss(tiny_models.loss, target)
    sketch = torch.rand(1, 3, 224, 224)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        train = loss.pair_terms(sketch, sample_augmentations(1, 224, generator))
    assert torch.allclose(loss.eval_terms(sketch), train[:, 0], rtol=1e-4, atol=1e-6)


def test_at_a_smaller_size_the_network_sees_the_canvas_averaged_over_pixel_blocks(tiny_models):
    target, sketch = torch.rand(3, 224, 224), torch.rand(2, 3, 224, 224)
    small = ClipConvLoss(tiny_models.loss, target, LossWeights(1.0, 1.0, 0.1), size=112)
    features = small.features(sketch)
    assert features["layer3"].shape[-2:] == (7, 7) and features["embedding"].shape[0] == 2  # 224 px: 14 × 14
    averaged = small.features(F.avg_pool2d(sketch, 2))  # the 2 × 2 blocks, given at 112 px already
    for tap in ("layer2", "layer3", "embedding"):
        assert torch.allclose(features[tap].float(), averaged[tap].float(), rtol=1e-3, atol=1e-4), tap
    terms = small.pair_terms(sketch.requires_grad_(True), sample_augmentations(2, 224, torch.Generator().manual_seed(3)))
    terms.sum().backward()
    assert terms.shape == (2, 3, 3) and torch.isfinite(terms).all() and float(sketch.grad.abs().sum()) > 0
    assert torch.equal(ClipConvLoss(tiny_models.loss, target, size=224).eval_terms(sketch),
                       ClipConvLoss(tiny_models.loss, target).eval_terms(sketch))  # the network's own size: as before


def test_the_attention_pool_of_any_grid_is_open_clips_at_its_own_grid(tiny_models):
    pool = tiny_models.loss.visual.attnpool
    grid = round((pool.positional_embedding.shape[0] - 1) ** 0.5)
    channels = pool.q_proj.weight.shape[1]
    x = torch.randn(3, channels, grid, grid).to(pool.positional_embedding.dtype)
    with torch.no_grad():
        assert torch.allclose(attention_pool(pool, x).float(), pool(x).float(), rtol=1e-2, atol=1e-3)
    positions = pool.positional_embedding
    assert torch.allclose(resized_positions(positions, grid, grid).float(), positions.float(), atol=1e-2)
    resized = resized_positions(positions, 3, 3)
    assert resized.shape == (10, positions.shape[1]) and torch.equal(resized[0], positions[0])  # the class token kept
    assert attention_pool(pool, x[..., :3, :3]).shape == (3, pool.c_proj.weight.shape[0])
