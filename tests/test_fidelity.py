"""The fidelity control: which CLIP ResNet stages the loss compares, by preset or by explicit weights."""

import json

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from clipasso_core.cli import main
from clipasso_core.augment import sample_augmentations
from clipasso_core.loss import ClipConvLoss, LossWeights
from clipasso_core.params import SketchParams, describe_validation_errors, make_params


def stage_outputs(encoder, images):
    """Every ResNet stage and the embedding (as float32), computed here directly from the open_clip modules.

    The network runs in the encoder's precision, as the loss runs it; the differences are then taken in float32.
    """
    visual = encoder.visual
    out = {}
    with encoder.autocast():
        x = visual.stem(encoder.normalize(images))
        for stage in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(visual, stage)(x)
            out[stage] = x.float()
        out["embedding"] = visual.attnpool(x).float()
    return out


@pytest.mark.parametrize("fidelity, weights", [
    ("precise", (1.0, 1.0, 0.0, 0.0)),
    ("paper", (0.0, 1.0, 1.0, 0.0)),
    ("loose", (0.0, 0.0, 1.0, 1.0)),
])
def test_fidelity_presets_set_the_stated_stage_weights(fidelity, weights):
    params = SketchParams(fidelity=fidelity)
    assert (params.layer1_weight, params.layer2_weight, params.layer3_weight, params.layer4_weight) == weights
    assert params.fc_weight == 0.1
    assert SketchParams(**params.model_dump()) == params  # a stored job re-validates to the same parameters


def test_the_default_is_the_paper_and_explicit_weights_override_the_preset():
    assert SketchParams() == SketchParams(fidelity="paper")
    params = make_params("draft", fidelity="precise", layer3_weight=0.5, layer1_weight=None)
    assert (params.layer1_weight, params.layer2_weight, params.layer3_weight, params.layer4_weight) == (1, 1, 0.5, 0)


@pytest.mark.parametrize("values, field", [
    ({"fidelity": "sharp"}, "fidelity"),
    ({"layer1_weight": -1.0}, "layer1_weight"),
    ({"layer4_weight": -0.5}, "layer4_weight"),
    ({"layer4_weight": 1e9}, "layer4_weight"),
    ({"layer1_weight": float("nan")}, "layer1_weight"),
    ({"layer2_weight": 0, "layer3_weight": 0, "fc_weight": 0}, "at least one loss weight"),
])
def test_bad_fidelity_values_are_refused_with_the_field_named(values, field):
    with pytest.raises(ValidationError) as caught:
        SketchParams(**values)
    assert field in describe_validation_errors(caught.value.errors())


def test_the_papers_loss_is_computed_exactly_as_published_by_default(tiny_models):
    """Bit for bit: layer2 and layer3 MSE plus 0.1 × (1 − cos), nothing else, on every pair."""
    torch.manual_seed(0)
    target, sketches = torch.rand(3, 224, 224), torch.rand(2, 3, 224, 224)
    loss = ClipConvLoss(tiny_models.loss, target, LossWeights.from_params(SketchParams()))
    assert loss.term_names == ("conv_layer2", "conv_layer3", "fc")
    augment = sample_augmentations(1, 224, torch.Generator().manual_seed(0))
    with torch.no_grad():
        terms = loss.pair_terms(sketches, augment)
        for pair, transform in enumerate([lambda x: x, augment]):
            mine, theirs = stage_outputs(tiny_models.loss, transform(sketches)), stage_outputs(
                tiny_models.loss, transform(target[None]))
            for sketch in range(2):
                expected = torch.stack([
                    (mine["layer2"][sketch] - theirs["layer2"][0]).pow(2).mean(),
                    (mine["layer3"][sketch] - theirs["layer3"][0]).pow(2).mean(),
                    0.1 * (1 - F.cosine_similarity(mine["embedding"][sketch:sketch + 1], theirs["embedding"])[0]),
                ])
                assert torch.allclose(terms[sketch, pair], expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fidelity, stages", [("precise", ("layer1", "layer2")), ("loose", ("layer3", "layer4"))])
def test_precise_and_loose_compare_the_stated_stages(tiny_models, fidelity, stages):
    torch.manual_seed(1)
    target, sketch = torch.rand(3, 224, 224), torch.rand(1, 3, 224, 224)
    loss = ClipConvLoss(tiny_models.loss, target, LossWeights.from_params(SketchParams(fidelity=fidelity)))
    assert loss.term_names == (*(f"conv_{stage}" for stage in stages), "fc")
    with torch.no_grad():
        mine, theirs = stage_outputs(tiny_models.loss, sketch), stage_outputs(tiny_models.loss, target[None])
    expected = [F.mse_loss(mine[stage], theirs[stage]).item() for stage in stages]
    expected.append(0.1 * (1 - F.cosine_similarity(mine["embedding"], theirs["embedding"]).item()))
    assert loss.eval_terms(sketch)[0].tolist() == pytest.approx(expected, rel=1e-4)
    paper = ClipConvLoss(tiny_models.loss, target).eval_terms(sketch)[0].sum()
    assert float(loss.eval_terms(sketch)[0].sum()) != pytest.approx(float(paper), rel=1e-3)


def test_unused_stages_are_not_kept(tiny_models):
    loss = ClipConvLoss(tiny_models.loss, torch.rand(3, 224, 224), LossWeights(fc=0.0))
    assert set(loss.clean_target) == {"layer2", "layer3"}  # stops after layer3: no layer4, no attention pool
    explicit = ClipConvLoss(tiny_models.loss, torch.rand(3, 224, 224), LossWeights(layer1=2.0, layer4=0.5))
    assert set(explicit.clean_target) == {"layer1", "layer2", "layer3", "layer4", "embedding"}


def test_score_reports_the_stages_in_use(score_pictures, tiny_model_args, capsys):
    files = [str(score_pictures / "target.png"), str(score_pictures / "sketch.png")]
    assert main(["score", *files, "--json", *tiny_model_args]) == 0
    paper = json.loads(capsys.readouterr().out)
    assert set(paper) == {"conv_layer2", "conv_layer3", "fc", "total", "precision"}
    assert main(["score", *files, "--json", "--fidelity", "loose", *tiny_model_args]) == 0
    loose = json.loads(capsys.readouterr().out)
    assert set(loose) == {"conv_layer2", "conv_layer3", "conv_layer4", "fc", "total", "precision"}
    assert loose["conv_layer2"] == 0 and loose["conv_layer3"] == pytest.approx(paper["conv_layer3"])
    assert loose["total"] == pytest.approx(loose["conv_layer3"] + loose["conv_layer4"] + loose["fc"])
    assert main(["score", *files, "--json", "--fidelity", "precise", "--layer2-weight", "2", *tiny_model_args]) == 0
    precise = json.loads(capsys.readouterr().out)
    assert set(precise) == {"conv_layer1", "conv_layer2", "conv_layer3", "fc", "total", "precision"}
    assert precise["conv_layer2"] == pytest.approx(2 * paper["conv_layer2"], rel=1e-5) and precise["conv_layer3"] == 0


@pytest.mark.parametrize("options, message", [
    (["--layer1-weight", "-1"], "--layer1-weight: "),
    (["--fc-weight", "0", "--layer2-weight", "0", "--layer3-weight", "0"], "at least one loss weight"),
])
def test_bad_weights_are_a_clear_cli_error(score_pictures, tiny_model_args, capsys, options, message):
    files = [str(score_pictures / "target.png"), str(score_pictures / "sketch.png")]
    assert main(["score", *files, *options, *tiny_model_args]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_unknown_fidelity_is_a_usage_error(score_pictures, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["sketch", str(score_pictures / "target.png"), "-o", "x.svg", "--fidelity", "sharp"])
    assert caught.value.code == 2 and "precise" in capsys.readouterr().err


def test_sketch_takes_the_fidelity_option(score_pictures, tmp_path, tiny_model_args, capsys):
    out = tmp_path / "loose.svg"
    assert main(["sketch", str(score_pictures / "target.png"), "-o", str(out), "--strokes", "4", "--seeds", "1",
                 "--iterations", "3", "--fidelity", "loose", *tiny_model_args]) == 0
    assert out.exists() and "4 strokes: loss" in capsys.readouterr().err
