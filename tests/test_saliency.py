"""Saliency initialisation: attention × edges, softmax sampling without replacement, seeded random walk."""

import torch
from PIL import Image, ImageDraw

from clipasso_core.image import to_canvas
from clipasso_core.saliency import (WALK_STEP, clip_attention, gaussian_blur, initial_strokes, otsu_threshold,
                                    sampling_distribution, xdog_edges)


def square_image() -> torch.Tensor:
    image = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(image).rectangle((60, 60, 160, 160), outline="black", width=3)
    return to_canvas(image)[0]


def test_xdog_marks_the_drawn_outline_as_edges():
    edges = xdog_edges(square_image())
    assert edges.shape == (224, 224) and set(edges.unique().tolist()) <= {0.0, 1.0}
    edge_pixels = torch.nonzero(edges == 0)
    assert len(edge_pixels) > 100
    # every edge pixel lies near the drawn square's outline, none in the empty corners
    near = ((edge_pixels - 61).abs() <= 6).any(dim=1) | ((edge_pixels - 161).abs() <= 6).any(dim=1)
    assert near.float().mean() > 0.95
    assert xdog_edges(torch.ones(3, 32, 32)).min() == 1.0  # a blank image has no edges


def test_gaussian_blur_and_otsu_behave():
    image = torch.zeros(21, 21)
    image[10, 10] = 1.0
    blurred = gaussian_blur(image, 2.0)
    assert abs(float(blurred.sum()) - 1.0) < 1e-5 and blurred.argmax() == 10 * 21 + 10
    values = torch.cat([torch.full((100,), 0.1), torch.full((100,), 0.9)])
    assert 0.1 < otsu_threshold(values) < 0.9


def test_attention_map_covers_the_canvas(tiny_models):
    attention = clip_attention(tiny_models.saliency, square_image())
    assert attention.shape == (224, 224)
    assert float(attention.min()) == 0.0 and abs(float(attention.max()) - 1.0) < 1e-6


def test_first_points_are_distinct_draws_from_the_distribution():
    probabilities = torch.zeros(224, 224, dtype=torch.float64)
    probabilities[100:110, 30:40] = 1.0  # only this 10×10 patch is salient
    probabilities /= probabilities.sum()
    strokes = initial_strokes(probabilities, 32, seed=5, size=224)
    assert strokes.shape == (32, 4, 2)
    first = strokes[:, 0]
    assert ((first[:, 0] >= 30) & (first[:, 0] <= 40) & (first[:, 1] >= 100) & (first[:, 1] <= 110)).all()
    assert len({tuple(p) for p in first.tolist()}) == 32  # sampled without replacement
    steps = (strokes[:, 1:] - strokes[:, :-1]).abs()
    assert float(steps.max()) <= WALK_STEP / 2 * 224 + 1e-4  # ±2.5 % of the canvas per step
    assert torch.equal(strokes, initial_strokes(probabilities, 32, seed=5, size=224))
    assert not torch.equal(strokes, initial_strokes(probabilities, 32, seed=6, size=224))


def test_softmax_is_restricted_to_salient_edge_pixels():
    attention = torch.linspace(0, 1, 224 * 224).reshape(224, 224)
    edges = torch.ones(224, 224)
    edges[50, 60:70] = 0.0
    probabilities = sampling_distribution(attention, edges, temperature=0.3)
    assert abs(float(probabilities.sum()) - 1.0) < 1e-9
    assert float(probabilities[50, 60:70].sum()) > 1 - 1e-9
    hot = sampling_distribution(attention, torch.zeros(224, 224), temperature=0.01)
    assert hot.flatten().argmax() == 224 * 224 - 1  # a low temperature concentrates on the maximum
