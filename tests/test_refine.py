"""Refining a designer's strokes: joined multi-segment paths, locked paths that never move, the loss going down."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from pydantic import ValidationError

from clipasso_core.joined_paths import join_paths, read_paths
from clipasso_core.params import REFINE_ITERATIONS, SketchParams, make_params
from clipasso_core.path_data import parse_path
from clipasso_core.sketch import sketch_image
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from tests.support.job_views import finished_result
from tests.support.pictures import CLOSED, CURVE, EDITED, LOCKED, picture
from tests.support.server_process import LOCAL

def test_relative_line_and_quadratic_commands_become_joined_cubic_segments():
    subpaths = read_paths([CURVE, EDITED, CLOSED])
    assert [len(s.segments) for s in subpaths] == [2, 6, 3]
    # Relative commands land where their absolute equivalent would: l 40 -10 from (30, 150) ends at (70, 140).
    assert np.array_equal(subpaths[1].segments[0, 3], [70, 140])
    assert np.array_equal(subpaths[1].segments[2, 3], [90, 110])  # after h 20 and v -30
    joined = join_paths(subpaths, locked=[1])
    # Shared end points are stored once: 3n+1 points per open path, 3n for a closed one.
    assert joined.free.shape == (3 * 2 + 1 + 3 * 3, 2) and joined.fixed.shape == (3 * 6 + 1, 2)
    segments = joined.segments(joined.free).numpy()
    assert np.array_equal(segments, np.concatenate([s.segments for s in subpaths]))
    assert joined.shape.segments == (2, 6, 3) and joined.shape.closed == (False, False, True)


def test_moving_a_shared_point_moves_both_segments():
    joined = join_paths(read_paths([CURVE]))
    free = joined.free.clone()
    free[3] += torch.tensor([5.0, -7.0])  # the point where the two segments meet
    segments = joined.segments(free)
    assert torch.equal(segments[0, 3], segments[1, 0]) and torch.equal(segments[0, 3], torch.tensor([85.0, 23.0],
                                                                                                     dtype=torch.float64))


def test_a_refine_job_defaults_to_one_seed_and_fewer_steps_unless_given():
    params = SketchParams(init_paths=[CURVE, EDITED], locked=[1])
    assert (params.strokes, params.seeds, params.iterations) == ([2], 1, REFINE_ITERATIONS)
    given = make_params("paper", init_paths=[CURVE], iterations=50, seeds=2)
    assert (given.iterations, given.seeds) == (50, 2)
    assert SketchParams().iterations == 2000 and SketchParams().seeds == 3  # plain sketches keep the paper's run


@pytest.mark.parametrize("values, field, mentions", [
    ({"init_paths": []}, "init_paths", "at least 1"),
    ({"init_paths": ["M 0 0"]}, "init_paths", "draws nothing"),
    ({"init_paths": ["C 1 1 2 2 3 3"]}, "init_paths", "must start with a move"),
    ({"init_paths": ["M 0 0 L 1 1 M 5 5 L 6 6"]}, "init_paths", "2 subpaths"),
    ({"init_paths": ["M 0 0 L 1e9 1"]}, "init_paths", "coordinate"),
    ({"locked": [0]}, "locked", "needs init_paths"),
    ({"init_paths": [CURVE, EDITED], "locked": [2]}, "locked", "not a path"),
    ({"init_paths": [CURVE, EDITED], "locked": [-1]}, "locked.0", "greater than or equal to 0"),
    ({"init_paths": [CURVE, EDITED], "locked": [1, 1]}, "locked", "repeat"),
    ({"init_paths": [CURVE, EDITED], "locked": [0, 1]}, "locked", "every path is locked"),
    ({"init_paths": [CURVE], "strokes": [4]}, "", "one stroke per path"),
])
def test_bad_init_paths_or_locked_are_named(values, field, mentions):
    with pytest.raises(ValidationError) as caught:
        SketchParams(**values)
    error = caught.value.errors()[0]
    assert ".".join(map(str, error["loc"])) == field and mentions in error["msg"]


@pytest.fixture(scope="module")
def refined(tiny_models):
    params = SketchParams(init_paths=[CURVE, EDITED, LOCKED, CLOSED], locked=[2], iterations=30)
    history: list[float] = []
    result = sketch_image(picture(), params, tiny_models, progress=lambda p: history.append(p.best_loss[4]))
    return params, result, history


def test_locked_paths_come_back_bit_identical(refined):
    params, result, _ = refined
    level = result.levels[0]
    assert level.paths[2] == LOCKED


def test_unlocked_paths_move_and_the_loss_goes_down(refined):
    params, result, history = refined
    level = result.levels[0]
    start = np.concatenate([s.segments for s in read_paths(params.init_paths)])
    moved = np.abs(np.concatenate([level.segments(index) for index in range(4)]) - start).max(axis=(1, 2))
    assert (moved[:8] > 0.5).all() and (moved[10:] > 0.5).all()
    assert level.loss < history[0] and history == sorted(history, reverse=True)


def test_each_path_stays_one_joined_path_with_its_segment_count(refined):
    params, result, _ = refined
    paths = result.levels[0].paths
    assert len(paths) == 4
    for d, original in zip(paths, params.init_paths):
        (subpath,) = parse_path(d)
        (before,) = parse_path(original)
        assert len(subpath.segments) == len(before.segments) and subpath.closed == before.closed
    (closed,) = parse_path(paths[3])
    assert np.array_equal(closed.segments[-1, 3], closed.segments[0, 0]), "a closed path ends where it starts"


@pytest.fixture
def client(tiny_spec, tmp_path):
    with TestClient(create_app(ServerConfig(data_dir=tmp_path / "data", models=tiny_spec)),
                    base_url=LOCAL) as test_client:
        yield test_client


def _image_b64() -> str:
    buffer = io.BytesIO()
    picture().save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_api_refines_paths_and_returns_them_as_joined_path_data(client):
    params = {"init_paths": [EDITED, LOCKED], "locked": [1], "iterations": 3, "augmentations": 0}
    (level,) = finished_result(client, _image_b64(), params)["levels"]
    assert level["strokes"] == 2 and level["paths"][1] == LOCKED
    (refined_path,) = parse_path(level["paths"][0])
    assert len(refined_path.segments) == 6 and level["paths"][0].startswith("M ") and "m" not in level["paths"][0]


@pytest.mark.parametrize("params, mentions", [
    ({"init_paths": ["M 0 0 X 1 1"]}, "params.init_paths"),
    ({"init_paths": [CURVE], "locked": [3]}, "params.locked"),
    ({"init_paths": "M 0 0 L 1 1"}, "params.init_paths"),
])
def test_bad_init_paths_or_locked_are_a_422(client, params, mentions):
    answer = client.post("/v1/jobs", json={"image": _image_b64(), "params": params})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_params"
    assert mentions in answer.json()["error"]["message"]


def test_the_api_completes_a_drawing_and_says_what_it_added_and_left_out(client):
    params = {"init_paths": [CURVE, LOCKED], "locked": [1], "add_strokes": 4, "tidy": True, "iterations": 3,
              "augmentations": 0}
    (level,) = finished_result(client, _image_b64(), params)["levels"]
    assert level["paths"][1] == LOCKED and level["strokes"] == len(level["paths"])
    assert level["strokes"] + level["left_out"] == 6 and level["added"] == level["strokes"] - 2
    plain_params = {"init_paths": [CURVE, LOCKED], "locked": [1], "iterations": 2}
    (plain,) = finished_result(client, _image_b64(), plain_params)["levels"]
    assert plain.get("added") is None and plain.get("left_out") is None, "a plain refine adds and tidies nothing"


def test_the_api_refuses_add_strokes_without_a_drawing(client):
    answer = client.post("/v1/jobs", json={"image": "aGk=", "params": {"add_strokes": 3}})
    assert answer.status_code == 422 and "add_strokes needs init_paths" in answer.json()["error"]["message"]
