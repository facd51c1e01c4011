"""Snapshots of a run: handed over every eval step in image pixels, ending at the result, bounded when kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from clipasso_core.params import SketchParams
from clipasso_core.sketch import sketch_image
from clipasso_core.snapshot import SketchSnapshot, SnapshotHistory, SnapshotLevel


def picture(width: int = 120, height: int = 80) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).ellipse((20, 10, 90, 70), outline="black", width=5)
    return image


def fake_snapshot(iteration: int, strokes: tuple[int, ...] = (2, 4)) -> SketchSnapshot:
    rng = np.random.default_rng(iteration)
    levels = tuple(SnapshotLevel(count, rng.uniform(0, 50, (count, 4, 2)), 1.0 / (iteration + 1)) for count in strokes)
    return SketchSnapshot(iteration, 60, 40, 1.5, levels)


@pytest.fixture(scope="module")
def run(tiny_models):
    params = SketchParams(strokes=[2, 4], seeds=2, iterations=7, augmentations=1, eval_interval=2)
    seen: list[SketchSnapshot] = []
    result = sketch_image(picture(), params, tiny_models, snapshot=seen.append)
    return result, seen


def test_a_snapshot_every_eval_step_and_one_at_the_end_equal_to_the_result(run):
    result, seen = run
    assert [s.iteration for s in seen] == [0, 2, 4, 6, 7]
    for snapshot in seen:
        assert (snapshot.width, snapshot.height) == (120, 80)
        assert [level.strokes for level in snapshot.levels] == [2, 4]
        assert [level.points.shape for level in snapshot.levels] == [(2, 4, 2), (4, 4, 2)]
    last = seen[-1]
    for level, outcome in zip(last.levels, result.levels):
        np.testing.assert_allclose(level.points, outcome.points.double().numpy(), atol=1e-4)
        assert level.loss == pytest.approx(outcome.loss)
    assert last.stroke_width == pytest.approx(result.levels[0].stroke_width)
    for index in range(2):  # the best loss never gets worse, and the strokes moved
        losses = [s.levels[index].loss for s in seen]
        assert losses == sorted(losses, reverse=True)
    assert not np.allclose(seen[0].levels[1].points, last.levels[1].points)


def test_snapshots_are_in_image_pixels(run):
    _, seen = run
    points = np.concatenate([level.points.reshape(-1, 2) for level in seen[0].levels])
    # Initial strokes start on the canvas, which covers the whole image (padding is only above/below).
    assert points[:, 0].min() >= -5 and points[:, 0].max() <= 125
    assert points[:, 1].max() > 40  # not squeezed into the 224-px canvas's top part or into [0, 1]


def test_history_stays_bounded_and_evenly_spread_for_a_long_run():
    history = SnapshotHistory(capacity=20)
    for step in range(10_000):  # a 100 000-iteration job at eval interval 10
        history.add(fake_snapshot(step * 10, strokes=(1,)))
    kept = history.snapshots()
    assert len(kept) <= 21
    iterations = [s.iteration for s in kept]
    assert iterations[0] == 0 and iterations[-1] == 99_990
    gaps = np.diff(iterations[:-1])
    assert len(set(gaps.tolist())) == 1  # even spacing except for the always-kept latest one
    assert len(kept) >= 10


def test_history_round_trips_through_json():
    history = SnapshotHistory(capacity=4, total=100)
    for step in range(9):
        history.add(fake_snapshot(step * 10))
    again = SnapshotHistory.from_dict(json.loads(json.dumps(history.to_dict())))
    assert [s.iteration for s in again.snapshots()] == [s.iteration for s in history.snapshots()]
    assert again.total == 100 and again.latest is not None and again.latest.iteration == 80
    for a, b in zip(again.snapshots(), history.snapshots()):
        assert (a.width, a.height, a.stroke_width) == (60, 40, 1.5)
        for level_a, level_b in zip(a.levels, b.levels):
            np.testing.assert_allclose(level_a.points, level_b.points, atol=0.005)
            assert level_a.loss == level_b.loss
    assert SnapshotHistory.from_dict(SnapshotHistory().to_dict()).snapshots() == []


def test_layers_show_only_the_most_detailed_level():
    layers = fake_snapshot(3).layers()
    assert [(layer.label, layer.visible, layer.strokes) for layer in layers] == [
        ("2 strokes", False, 2), ("4 strokes", True, 4)]


def test_no_snapshot_callback_changes_nothing(tiny_models):
    params = SketchParams(strokes=[2], seeds=1, iterations=4, augmentations=1, eval_interval=2)
    plain = sketch_image(picture(), params, tiny_models)
    watched = sketch_image(picture(), params, tiny_models, snapshot=lambda s: None)
    assert torch.equal(plain.levels[0].points, watched.levels[0].points)


def test_snapshots_carry_each_strokes_width_and_ink_when_they_are_optimized(tiny_models):
    params = SketchParams(strokes=[3], seeds=2, iterations=7, augmentations=1, eval_interval=2, optimize_width=True,
                          optimize_opacity=True, width_lr=0.5, opacity_lr=0.05)
    seen: list[SketchSnapshot] = []
    result = sketch_image(picture(), params, tiny_models, snapshot=seen.append)
    (outcome,) = result.levels
    first, last = seen[0].levels[0], seen[-1].levels[0]
    assert first.widths.shape == first.opacities.shape == (3,)
    np.testing.assert_allclose(last.widths, outcome.widths.double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(last.opacities, outcome.opacities.double().numpy(), rtol=1e-6)
    assert not np.allclose(first.widths, last.widths)  # they change during the run, as the points do
    layer = seen[-1].layers()[0]
    assert layer.widths == pytest.approx(tuple(outcome.widths.tolist()))
    history = SnapshotHistory(capacity=4)
    for snapshot in seen:
        history.add(snapshot)
    again = SnapshotHistory.from_dict(json.loads(json.dumps(history.to_dict()))).latest.levels[0]
    np.testing.assert_allclose(again.widths, last.widths, atol=1e-4)
    np.testing.assert_allclose(again.opacities, last.opacities, atol=1e-4)


def test_a_refined_paths_width_is_every_one_of_its_segments_width(tiny_models):
    paths = ["M 10 10 C 20 5 30 5 40 10 C 50 15 60 15 70 10", "M 10 60 L 100 60"]
    params = SketchParams(init_paths=paths, iterations=6, augmentations=1, optimize_width=True, width_lr=0.5)
    seen: list[SketchSnapshot] = []
    result = sketch_image(picture(), params, tiny_models, snapshot=seen.append)
    (level,) = seen[-1].levels
    assert level.points.shape == (3, 4, 2) and level.widths.shape == (3,)  # two segments + one
    widths = result.levels[0].widths.double().numpy()
    np.testing.assert_allclose(level.widths, [widths[0], widths[0], widths[1]], rtol=1e-6)
