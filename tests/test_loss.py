"""The CLIPasso loss: paired augmentations, per-pair terms, frozen weights, gradients reach the sketch."""

import torch

from clipasso_core.augment import sample_augmentations
from clipasso_core.loss import ClipConvLoss, LossWeights


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
