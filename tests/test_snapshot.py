"""Snapshots of a run: handed over every eval step in image pixels, ending at the result, bounded when kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clipasso_core.level import StrokeLevel
from clipasso_core.params import SketchParams
from clipasso_core.sketch import sketch_image
from clipasso_core.snapshot import SketchSnapshot, SnapshotHistory
from clipasso_core.svg import parse_path_data, stroke_paths


def picture(width: int = 120, height: int = 80) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).ellipse((20, 10, 90, 70), outline="black", width=5)
    return image


def fake_snapshot(iteration: int, strokes: tuple[int, ...] = (2, 4)) -> SketchSnapshot:
    rng = np.random.default_rng(iteration)
    levels = tuple(StrokeLevel(stroke_paths(rng.uniform(0, 50, (count, 4, 2))), 1.5, loss=1.0 / (iteration + 1))
                   for count in strokes)
    return SketchSnapshot(iteration, 60, 40, levels)


def points_of(level: StrokeLevel) -> np.ndarray:
    """The control points ``[S, 4, 2]`` of a level of single cubic strokes."""
    return np.stack([parse_path_data(d) for d in level.paths])


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
        assert all(level.single_cubics for level in snapshot.levels)
    last = seen[-1]
    for level, outcome in zip(last.levels, result.levels):
        assert level.paths == outcome.paths
        assert level.loss == pytest.approx(outcome.loss)
    assert last.stroke_width == pytest.approx(result.levels[0].stroke_width)
    for index in range(2):  # the best loss never gets worse, and the strokes moved
        losses = [s.levels[index].loss for s in seen]
        assert losses == sorted(losses, reverse=True)
    assert not np.allclose(points_of(seen[0].levels[1]), points_of(last.levels[1]))


def test_snapshots_are_in_image_pixels(run):
    _, seen = run
    points = np.concatenate([points_of(level).reshape(-1, 2) for level in seen[0].levels])
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
        assert a.levels == b.levels
    assert SnapshotHistory.from_dict(SnapshotHistory().to_dict()).snapshots() == []


def test_no_snapshot_callback_changes_nothing(tiny_models):
    params = SketchParams(strokes=[2], seeds=1, iterations=4, augmentations=1, eval_interval=2)
    plain = sketch_image(picture(), params, tiny_models)
    watched = sketch_image(picture(), params, tiny_models, snapshot=lambda s: None)
    assert plain.levels[0] == watched.levels[0]


def test_snapshots_carry_each_strokes_width_and_ink_when_they_are_optimized(tiny_models):
    params = SketchParams(strokes=[3], seeds=2, iterations=7, augmentations=1, eval_interval=2, optimize_width=True,
                          optimize_opacity=True, width_lr=0.5, opacity_lr=0.05)
    seen: list[SketchSnapshot] = []
    result = sketch_image(picture(), params, tiny_models, snapshot=seen.append)
    (outcome,) = result.levels
    first, last = seen[0].levels[0], seen[-1].levels[0]
    assert len(first.widths) == len(first.opacities) == 3
    assert last.widths == pytest.approx(outcome.widths, rel=1e-6)
    assert last.opacities == pytest.approx(outcome.opacities, rel=1e-6)
    assert not np.allclose(first.widths, last.widths)  # they change during the run, as the points do
    history = SnapshotHistory(capacity=4)
    for snapshot in seen:
        history.add(snapshot)
    again = SnapshotHistory.from_dict(json.loads(json.dumps(history.to_dict()))).latest.levels[0]
    np.testing.assert_allclose(again.widths, last.widths, atol=1e-4)
    np.testing.assert_allclose(again.opacities, last.opacities, atol=1e-4)


def test_a_refines_snapshots_hold_its_paths_as_the_result_does_and_keep_them_through_json(tiny_models):
    paths = ["M 10 10 C 20 5 30 5 40 10 C 50 15 60 15 70 10", "M 10 60 L 100 60", "M 20 20 L 60 20 L 40 50 Z"]
    params = SketchParams(init_paths=paths, locked=[1], iterations=6, augmentations=1, optimize_width=True,
                          width_lr=0.5)
    seen: list[SketchSnapshot] = []
    result = sketch_image(picture(), params, tiny_models, snapshot=seen.append)
    (level,) = seen[-1].levels
    (outcome,) = result.levels
    assert level.strokes == 3 and [len(level.segments(index)) for index in range(3)] == [2, 1, 3]
    assert level.paths == outcome.paths and level.paths[1] == paths[1]  # the locked path, verbatim
    assert level.paths[2].endswith("Z") and not level.single_cubics
    assert level.widths == pytest.approx(outcome.widths, rel=1e-6)
    history = SnapshotHistory()
    history.add(seen[-1])
    stored = json.loads(json.dumps(history.to_dict()))
    assert "paths" in stored["snapshots"][0]["levels"][0]
    again = SnapshotHistory.from_dict(stored).latest.levels[0]
    assert again.paths == level.paths and again.widths == pytest.approx(level.widths, abs=1e-4)


def test_snapshots_stored_by_earlier_versions_still_read():
    """A history as the server wrote it before levels were path data: control points, one pen for all levels."""
    stored = {"width": 60, "height": 40, "stroke_width": 1.5, "total": 100, "capacity": 4, "stride": 1, "offered": 1,
              "snapshots": [{"iteration": 10, "levels": [
                  {"strokes": 1, "loss": 0.5, "points": [[[1.5, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.125]]]},
                  {"strokes": 2, "loss": None, "points": [[[0, 0], [1, 1], [2, 2], [3, 3]], [[4, 4], [5, 5], [6, 6],
                                                                                            [7, 7]]],
                   "widths": [1.25, 2.5], "opacities": [1.0, 0.5]}]}]}
    latest = SnapshotHistory.from_dict(stored).latest
    assert (latest.iteration, latest.width, latest.height, latest.stroke_width) == (10, 60, 40, 1.5)
    first, second = latest.levels
    assert first == StrokeLevel(("M 1.5 2 C 3 4 5 6 7 8.125",), 1.5, loss=0.5)
    assert second.paths == ("M 0 0 C 1 1 2 2 3 3", "M 4 4 C 5 5 6 6 7 7")
    assert (second.widths, second.opacities, second.loss) == ((1.25, 2.5), (1.0, 0.5), None)
    again = SnapshotHistory.from_dict(json.loads(json.dumps(SnapshotHistory.from_dict(stored).to_dict())))
    assert again.to_dict() == stored  # written back in the same form
