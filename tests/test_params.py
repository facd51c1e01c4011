"""Sketch parameters: the paper's defaults, presets, and clear validation messages."""

import pytest
from pydantic import ValidationError

from clipasso_core.params import SketchParams, describe_validation_errors, make_params


def test_defaults_are_the_papers_run():
    params = SketchParams()
    assert params.strokes == [4, 8, 16, 32]
    assert (params.seeds, params.iterations, params.lr) == (3, 2000, 1.0)
    assert params.stroke_width == 3.0  # diffvg half-width 1.5
    assert (params.augmentations, params.eval_interval, params.softmax_temperature) == (4, 10, 0.3)
    assert (params.layer2_weight, params.layer3_weight, params.fc_weight) == (1.0, 1.0, 0.1)
    assert params.sketch_seeds() == [0, 1000, 2000]


def test_draft_preset_is_one_short_seed_and_overrides_win():
    draft = make_params("draft")
    assert draft.seeds == 1 and draft.iterations < 2000
    assert make_params("draft", iterations=50, seed=7, strokes=None).iterations == 50
    assert make_params("paper", seed=7).sketch_seeds() == [7, 1007, 2007]


def test_stroke_list_accepts_text_and_sorts():
    assert SketchParams(strokes="16, 4,8").strokes == [4, 8, 16]


@pytest.mark.parametrize("strokes, fragment", [
    ("4,a", "whole numbers"),
    ("", "at least one"),
    ("0", "between 1 and"),
    ("4,4", "must not repeat"),
    ([1, 2, 3, 4, 5, 6, 7, 8, 9], "at most 8"),
])
def test_invalid_stroke_lists_name_the_field(strokes, fragment):
    with pytest.raises(ValidationError) as caught:
        SketchParams(strokes=strokes)
    message = describe_validation_errors(caught.value.errors())
    assert message.startswith("strokes:") and fragment in message


def test_unknown_keys_and_presets_are_refused():
    with pytest.raises(ValidationError) as caught:
        SketchParams(stroke=4)
    assert "stroke" in describe_validation_errors(caught.value.errors())
    with pytest.raises(ValueError, match="unknown preset"):
        make_params("fast")
