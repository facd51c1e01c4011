"""The text prompt: a CLIP text term from the loss model's own text tower, encoded once per job."""

import json
import os

import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from pydantic import ValidationError

from clipasso_core import sketch as sketch_module
from clipasso_core.cli import main
from clipasso_core.image import to_canvas
from clipasso_core.augment import sample_augmentations
from clipasso_core.loss import ClipConvLoss, LossWeights
from clipasso_core.models import encode_prompt
from clipasso_core.optimize import render
from clipasso_core.params import SketchParams, describe_validation_errors
from clipasso_core.precision import Precision


@pytest.fixture(scope="module")
def open_clip_model(tiny_spec):
    """The tiny loss model built directly with open_clip (no clipasso_core code), with its tokenizer."""
    open_clip.add_model_config(tiny_spec.loss_model)
    name = os.path.basename(tiny_spec.loss_model)[:-5]
    model = open_clip.create_model(name, pretrained=str(tiny_spec.loss_weights)).eval()
    return model, open_clip.get_tokenizer(name)


def test_the_text_term_is_one_minus_cos_of_open_clips_embeddings_on_every_pair(tiny_models, open_clip_model):
    model, tokenizer = open_clip_model
    torch.manual_seed(0)
    target, sketches = torch.rand(3, 224, 224), torch.rand(2, 3, 224, 224)
    prompt = encode_prompt(tiny_models.loss, "a cat", tiny_models.device)
    loss = ClipConvLoss(tiny_models.loss, target, LossWeights(text=0.3), prompt)
    assert loss.term_names == ("conv_layer2", "conv_layer3", "fc", "text")
    tolerance = 1e-3 if tiny_models.loss.precision is Precision.FP32 else 3e-2  # reduced precision: bf16's 8 bits
    generator = torch.Generator().manual_seed(0)
    augmentations = sample_augmentations(2, 224, generator)
    with torch.no_grad():
        terms = loss.pair_terms(sketches, augmentations)
        text = model.encode_text(tokenizer(["a cat"]))
        mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
        for pair, transform in enumerate([lambda x: x, *augmentations]):
            images = model.encode_image((transform(sketches) - mean) / std)
            expected = 0.3 * (1 - F.cosine_similarity(images, text))
            assert torch.allclose(terms[:, pair, 3], expected, rtol=tolerance, atol=1e-6)


def test_the_prompt_is_encoded_once_per_job_and_steers_the_sketch(tiny_models, monkeypatch):
    calls = []

    def counting(*args):
        calls.append(args[1])
        return encode_prompt(*args)

    monkeypatch.setattr(sketch_module, "encode_prompt", counting)
    image = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(image).ellipse((40, 40, 160, 160), outline="black", width=5)
    params = SketchParams(strokes=[4], seeds=2, iterations=12, text="a cat", text_weight=20.0,
                          layer2_weight=0.0, layer3_weight=0.0, fc_weight=0.0)
    result = sketch_module.sketch_image(image, params, tiny_models)
    assert calls == ["a cat"]
    prompt = encode_prompt(tiny_models.loss, "a cat", tiny_models.device)
    target = to_canvas(image)[0]
    initial = sketch_module.initial_points(target, params, tiny_models)
    loss = ClipConvLoss(tiny_models.loss, target, LossWeights.from_params(params), prompt)
    assert loss.term_names == ("text",)
    for level in result.levels:
        seed = params.sketch_seeds().index(level.seed)
        start = loss.eval_terms(render([initial[level.strokes][seed:seed + 1]], params.stroke_width, 224))
        assert level.loss < float(start[0, 0])  # the sketch moved towards the prompt


def test_a_job_without_text_never_loads_the_text_tower(tiny_models, monkeypatch):
    def refuse(*args):
        raise AssertionError("the text tower was loaded")

    monkeypatch.setattr(sketch_module, "encode_prompt", refuse)
    image = Image.new("RGB", (64, 64), "white")
    sketch_module.sketch_image(image, SketchParams(strokes=[2], seeds=1, iterations=1), tiny_models)


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_prompt_is_refused(text):
    with pytest.raises(ValidationError) as caught:
        SketchParams(text=text)
    assert describe_validation_errors(caught.value.errors()).startswith("text: give a prompt")


def test_a_prompt_alone_may_carry_the_loss():
    assert SketchParams(text="a cat", layer2_weight=0, layer3_weight=0, fc_weight=0).text == "a cat"
    with pytest.raises(ValidationError):
        SketchParams(text="a cat", text_weight=0, layer2_weight=0, layer3_weight=0, fc_weight=0)


def test_score_with_text_reports_and_counts_the_text_term(score_pictures, tiny_model_args, capsys):
    files = [str(score_pictures / "target.png"), str(score_pictures / "sketch.png")]
    assert main(["score", *files, "--json", *tiny_model_args]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "text" not in plain
    assert main(["score", *files, "--json", "--text", "a cat", *tiny_model_args]) == 0
    steered = json.loads(capsys.readouterr().out)
    assert steered["text"] > 0 and steered["total"] == pytest.approx(plain["total"] + steered["text"])
    assert main(["score", *files, "--json", "--text", "a cat", "--text-weight", "0.2", *tiny_model_args]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == pytest.approx(2 * steered["text"], rel=1e-5)


def test_an_empty_prompt_is_a_clear_cli_error(score_pictures, tmp_path, capsys):
    assert main(["sketch", str(score_pictures / "target.png"), "-o", str(tmp_path / "x.svg"), "--text", ""]) == 2
    error = capsys.readouterr().err
    assert "text: give a prompt" in error and "Traceback" not in error
