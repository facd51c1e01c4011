"""The quality guard of the quick preset: from random strokes it puts at least the old draft's share of ink on the
object, on the same seeds (testkit/ink_guard.py; ``bench/presets.py --guard`` gives the full-size figure).

The comparison with the draft runs the draft's 300 steps × 4 pairs and quick's run on every level and six seeds
(a single sketch's share varies by a few hundredths from seed to seed, and with the rounding of a single
operation, more than a preset's effect): it has its own marker and CI step (``-m guard``). The default set checks the measure and that quick does move the ink.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from clipasso_core.models import LoadedModels, load_models
from clipasso_core.params import make_params
from clipasso_core.precision import Precision
from testkit.ink_guard import DRAFT, guard_shares, ink_on_object, mean_share, object_picture, start_shares

GUARD_SEEDS = (0, 1, 2, 3, 4, 5)
"""A level's share moves by up to 0.08 when only the rounding of one operation changes (the runs are chaotic):
the mean over six seeds × four levels is what a preset's effect shows in."""


@pytest.fixture(scope="module")
def fp32_models(tiny_spec) -> LoadedModels:
    """The tiny models in fp32 (the guard compares presets, not precisions)."""
    return load_models(dataclasses.replace(tiny_spec, precision=Precision.FP32), torch.device("cpu"))


def test_ink_on_the_object_counts_where_the_strokes_lie():
    _, mask = object_picture()
    on_body = torch.tensor([[[80.0, 80.0], [95.0, 100.0], [110.0, 120.0], [125.0, 150.0]]])
    in_the_corner = on_body - 75.0  # the same stroke, moved to the top left, off the mug
    assert ink_on_object(on_body, mask, 3.0) == pytest.approx(1.0)
    assert ink_on_object(in_the_corner, mask, 3.0) == 0.0
    assert ink_on_object(torch.cat([on_body, in_the_corner]), mask, 3.0) == pytest.approx(0.5, abs=0.01)
    shares = start_shares(make_params("quick", strokes=[32, 64], attention_init=False))
    assert all(0.05 < share < 0.5 for share in shares.values()), shares  # random strokes: about the object's area


def test_quick_brings_random_strokes_onto_the_object(fp32_models):
    # A third of quick's steps shows it (a share of about 0.1 becomes about 0.9 with the tiny models) at a third of
    # the cost; its whole run is held against the old draft's in the guard step (-m guard).
    quick = make_params("quick", strokes=[8], attention_init=False, iterations=100)
    start, end = mean_share(start_shares(quick)), mean_share(guard_shares(fp32_models.loss, quick))
    assert end > start + 0.4, (start, end)


@pytest.mark.guard
def test_quick_puts_at_least_the_old_drafts_ink_on_the_object(fp32_models):
    def share(params: dict) -> float:
        runs = [make_params(**params, seed=seed, attention_init=False) for seed in GUARD_SEEDS]
        return sum(mean_share(guard_shares(fp32_models.loss, run)) for run in runs) / len(runs)

    drafted, quickly = share(DRAFT), share({"preset": "quick"})
    assert quickly >= drafted, (quickly, drafted)
