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


def _numeric_schemas(schema: object, where: str = "") -> list[tuple[str, dict]]:
    """Every (location, sub-schema) of type integer or number in a JSON schema, however deeply nested."""
    found = []
    if isinstance(schema, dict):
        if schema.get("type") in ("integer", "number"):
            found.append((where, schema))
        for key, value in schema.items():
            found.extend(_numeric_schemas(value, f"{where}/{key}"))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found.extend(_numeric_schemas(value, f"{where}/{index}"))
    return found


def test_every_numeric_parameter_has_both_bounds_in_the_schema():
    numeric = _numeric_schemas(SketchParams.model_json_schema())
    assert len(numeric) >= 12  # the walk sees the fields (and the stroke list's items)
    for where, schema in numeric:
        assert {"minimum", "exclusiveMinimum"} & set(schema), f"{where} has no lower bound"
        assert {"maximum", "exclusiveMaximum"} & set(schema), f"{where} has no upper bound"


@pytest.mark.parametrize("field, value", [
    ("fc_weight", float("inf")), ("layer2_weight", float("-inf")), ("lr", float("nan")),
    ("stroke_width", float("nan")), ("softmax_temperature", float("inf")),
    ("fc_weight", 1e9), ("layer3_weight", 1e6),
    ("strokes", [True]), ("strokes", [4.0]), ("seeds", True), ("iterations", "300"), ("iterations", 3.0),
    ("seed", 2**63), ("attention_init", 1), ("attention_init", "yes"),
])
def test_non_finite_unbounded_or_wrongly_typed_values_are_refused_by_name(field, value):
    with pytest.raises(ValidationError) as caught:
        SketchParams(**{field: value})
    message = describe_validation_errors(caught.value.errors())
    assert message.startswith(f"{field}"), message


def test_integers_are_fine_where_a_number_is_asked_and_json_infinity_is_refused():
    assert SketchParams(stroke_width=3, fc_weight=0).stroke_width == 3.0
    with pytest.raises(ValidationError) as caught:
        SketchParams.model_validate_json('{"fc_weight": 1e999}')
    assert "fc_weight" in describe_validation_errors(caught.value.errors())


@pytest.mark.parametrize("name, seeds, iterations, pick, loss_size", [
    ("quick", 1, 440, None, 112), ("draft", 1, 440, None, 112), ("balanced", 3, 1000, 250, None),
    ("paper", 3, 2000, None, None),
])
def test_quality_presets_fill_what_is_not_given(name, seeds, iterations, pick, loss_size):
    params = SketchParams(preset=name)
    assert (params.seeds, params.iterations, params.pick_seed_at, params.loss_size) == (seeds, iterations, pick,
                                                                                        loss_size)
    assert params.preset == ("quick" if name == "draft" else name)
    assert SketchParams(preset=name, iterations=40, seeds=2).model_dump(include={"iterations", "seeds"}) == {
        "iterations": 40, "seeds": 2}
    assert SketchParams(**params.model_dump()) == params  # a stored job reads back the same


def test_a_preset_sets_a_refines_attempts_and_steps_too():
    refine = SketchParams(init_paths=["M 1 1 L 9 9"])
    assert (refine.seeds, refine.iterations, refine.preset) == (1, 300, None)
    paper = SketchParams(init_paths=["M 1 1 L 9 9"], preset="paper")
    assert (paper.seeds, paper.iterations, paper.strokes) == (3, 2000, [1])


@pytest.mark.parametrize("values, fragment", [
    ({"preset": "fast"}, "preset: Input should be 'quick', 'balanced' or 'paper'"),
    ({"pick_seed_at": 25}, "multiple of eval_interval (10)"),
    ({"pick_seed_at": 0}, "pick_seed_at: Input should be greater than or equal to 1"),
])
def test_bad_presets_and_picks_are_refused_in_words(values, fragment):
    with pytest.raises(ValidationError) as caught:
        SketchParams(**values)
    assert fragment in describe_validation_errors(caught.value.errors())


@pytest.mark.parametrize("text", ["\x00", "\u200b", " \u200b\t", "\u2060\ufeff"])
def test_a_prompt_without_a_visible_character_is_refused_like_an_empty_one(text):
    with pytest.raises(ValidationError) as caught:
        SketchParams(text=text)
    assert describe_validation_errors(caught.value.errors()).startswith("text: give a prompt of at least one word")


def test_a_prompt_clip_would_cut_is_refused_in_words_and_one_it_reads_whole_is_kept():
    kept = " ".join(["cat"] * 75)
    assert SketchParams(text=kept).text == kept
    with pytest.raises(ValidationError) as caught:
        SketchParams(text=kept + " cat")
    message = describe_validation_errors(caught.value.errors())
    assert message.startswith("text: the prompt is 76 CLIP tokens long and CLIP reads at most 75")


@pytest.mark.parametrize("name", ["layer1_weight", "layer3_weight", "fc_weight"])
def test_a_weight_too_small_to_move_a_stroke_counts_as_zero(name):
    others = {weight: 0.0 for weight in ("layer1_weight", "layer2_weight", "layer3_weight", "layer4_weight",
                                         "fc_weight")}
    with pytest.raises(ValidationError) as caught:
        SketchParams(**{**others, name: 1e-300})
    assert "must be at least 1e-06" in describe_validation_errors(caught.value.errors())
    assert getattr(SketchParams(**{name: 1e-300}), name) == 0.0
    assert getattr(SketchParams(**{**others, name: 1e-6}), name) == 1e-6
