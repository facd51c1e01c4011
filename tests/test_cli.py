"""``clipasso sketch`` and ``clipasso score`` as a user runs them."""

import dataclasses
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from clipasso_core.cli import CLI_NAMES, main
from clipasso_core.errors import ClipassoError, ModelError
from clipasso_core.models import load_models, resolve_device
from clipasso_core.svg import parse_path_data, read_sketch_document
from clipasso_core.svg_xml import INKSCAPE_NS, SVG_NS

CLI = [sys.executable, "-m", "clipasso_core.cli"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    wide = Image.new("RGBA", (360, 240), (0, 0, 0, 0))
    draw = ImageDraw.Draw(wide)
    draw.ellipse((80, 40, 280, 220), outline="black", width=6)
    draw.rectangle((150, 100, 210, 160), fill="red")
    wide.save(folder / "cup.png")
    (folder / "notes.png").write_text("not an image")
    data = (folder / "cup.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 3])
    Image.new("L", (7000, 7000)).save(folder / "huge.png")
    return folder


def run_cli(*args, env=None, timeout=300):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def layers_of(svg_text):
    root = ET.fromstring(svg_text)
    return root, [g for g in root.iter(f"{{{SVG_NS}}}g") if g.get(f"{{{INKSCAPE_NS}}}groupmode") == "layer"]


def test_sketch_writes_one_layer_per_level_in_source_pixels(images, tmp_path, tiny_model_args):
    out, preview = tmp_path / "cup.svg", tmp_path / "cup-preview.png"
    done = run_cli("sketch", images / "cup.png", "-o", out, "--strokes", "8,4", "--seeds", "2", "--iterations", "3",
                   "--embed-image", "--preview", preview, *tiny_model_args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "4 strokes" in done.stderr
    root, layers = layers_of(out.read_text())
    assert (root.get("width"), root.get("height")) == ("360", "240")
    assert [g.get(f"{{{INKSCAPE_NS}}}label") for g in layers] == ["Source image", "4 strokes", "8 strokes"]
    assert len(layers[1].findall(f"{{{SVG_NS}}}path")) == 4 and len(layers[2].findall(f"{{{SVG_NS}}}path")) == 8
    assert layers[0].find(f"{{{SVG_NS}}}image") is not None
    for layer in read_sketch_document(out.read_text()).layers:
        points = np.stack([parse_path_data(d) for d in layer.level.paths])
        xs, ys = points[..., 0], points[..., 1]
        assert xs.min() > 40 and xs.max() < 320 and ys.min() > 0 and ys.max() < 260  # on the drawing, not the padding
    sheet = Image.open(preview)
    assert sheet.width > 3 * sheet.height  # source + 2 levels side by side


@pytest.mark.parametrize("args, message", [
    (["missing.png"], "no such file"),
    (["notes.png"], "not a PNG, JPEG, WebP, GIF or TIFF"),
    (["truncated.png"], "truncated"),
    (["huge.png"], "megapixels"),
    (["cup.png", "--strokes", "4,x"], "strokes"),
    (["cup.png", "--seeds", "0"], "seeds"),
    (["cup.png", "--stroke-width", "nan"], "--stroke-width: Input should be a finite number"),
    (["cup.png", "--stroke-width", "inf"], "--stroke-width: "),
    (["cup.png", "--device", "tpu"], "Unknown device"),
])
def test_bad_input_is_one_clear_sentence(images, tmp_path, tiny_model_args, capsys, args, message):
    status = main(["sketch", str(images / args[0]), "-o", str(tmp_path / "x.svg"), *tiny_model_args, *args[1:]])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0
    assert err[-1].startswith("clipasso: error:") and message in err[-1]
    assert not (tmp_path / "x.svg").exists()


def test_unwritable_output_fails_before_any_work(images, tmp_path, tiny_model_args, capsys):
    status = main(["sketch", str(images / "cup.png"), "-o", str(tmp_path / "nowhere" / "x.svg"), *tiny_model_args])
    assert status == 1 and "does not exist" in capsys.readouterr().err


def test_missing_weights_offline_name_what_is_needed(images, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no model cached: the image is checked before any is sought
    assert main(["sketch", str(images / "truncated.png"), "-o", str(tmp_path / "x.svg"), "--device", "cpu"]) != 0
    assert "damaged or truncated" in capsys.readouterr().err
    done = run_cli("sketch", images / "cup.png", "-o", tmp_path / "x.svg", "--device", "cpu",
                   env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert "RN101" in message and "Hugging Face" in message and "as --loss-weights" in message


def test_library_errors_name_parameters_where_the_cli_names_its_options(tiny_spec, tmp_path):
    """A Python caller is told about ``ModelSpec.loss_weights``, never about a command line's flag."""
    (tmp_path / "weights").mkdir()
    spec = dataclasses.replace(tiny_spec, loss_weights=tmp_path / "weights")
    with pytest.raises(ModelError) as caught:
        load_models(spec, torch.device("cpu"))
    assert "give ModelSpec.loss_weights the checkpoint file itself" in str(caught.value)
    assert "--" not in str(caught.value)
    assert "give --loss-weights the checkpoint" in str(caught.value.worded(CLI_NAMES))
    if not torch.cuda.is_available():
        with pytest.raises(ClipassoError, match=r"use resolve_device\('cpu'\)\.$") as caught:
            resolve_device("cuda")
        assert str(caught.value.worded(CLI_NAMES)).endswith("use --device cpu.")


@pytest.mark.parametrize("content, fragment", [
    (b"101", "is not a checkpoint"),
    (b"", "is not a checkpoint"),
    (b'{"not": "weights"}', "is not a checkpoint"),
    ("torch-list", "other names or shapes"),
])
def test_a_weights_file_that_is_no_checkpoint_is_named_plainly(images, tmp_path, tiny_model_args, capsys, content,
                                                               fragment):
    weights = tmp_path / "weights.pt"
    if content == "torch-list":
        torch.save([1, 2, 3], weights)
    else:
        weights.write_bytes(content)
    args = list(tiny_model_args)
    args[args.index("--loss-weights") + 1] = str(weights)
    status = main(["sketch", str(images / "cup.png"), "-o", str(tmp_path / "x.svg"), *args])
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 1 and message.startswith("clipasso: error:")
    assert "weights.pt" in message and fragment in message, message


FOLDER_ARGUMENTS = {
    "image": (["sketch", "{folder}", "-o", "{out}"], "Cannot read '{folder}': it is a folder"),
    "loss weights": (["sketch", "{cup}", "-o", "{out}", "--loss-weights", "{folder}"],
                     "'{folder}' for tiny-rn is a folder; give --loss-weights the checkpoint file itself"),
    "sketch to refine": (["refine", "{cup}", "{folder}", "-o", "{out}"], "sketch '{folder}': it is a folder"),
    "sketch to score": (["score", "{cup}", "{svg_folder}"], "sketch '{svg_folder}': it is a folder"),
    "model config": (["sketch", "{cup}", "-o", "{out}", "--loss-model", "{json_folder}"], "'{json_folder}' is a folder"),
}  # fmt: skip


@pytest.mark.parametrize("case", FOLDER_ARGUMENTS)
def test_a_folder_given_for_a_file_is_named_a_folder(images, tmp_path, tiny_model_args, capsys, case):
    names = {"folder": tmp_path / "photos", "svg_folder": tmp_path / "old.svg", "json_folder": tmp_path / "rn.json",
             "out": tmp_path / "x.svg", "cup": images / "cup.png"}
    for key in ("folder", "svg_folder", "json_folder"):
        names[key].mkdir()
    template, fragment = FOLDER_ARGUMENTS[case]
    args = [part.format(**names) for part in template]
    options = list(tiny_model_args) if args[0] != "score" else ["--device", "cpu"]
    for option in ("--loss-weights", "--loss-model"):
        if option in args:  # the case's own value replaces the tiny model's
            at = options.index(option)
            del options[at:at + 2]
    if args[0] == "score":
        options += ["--loss-model", tiny_model_args[3], "--loss-weights", tiny_model_args[5]]
    assert main([*args, *options]) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("clipasso: error:") and fragment.format(**names) in message, message
    assert not names["out"].exists()


def test_outputs_are_written_through_a_link_with_the_files_mode(images, tmp_path, tiny_model_args):
    real = tmp_path / "kept" / "sketch.svg"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o664)
    (tmp_path / "link.svg").symlink_to(real)
    args = ["--strokes", "2", "--seeds", "1", "--iterations", "1"]
    assert main(["sketch", str(images / "cup.png"), "-o", str(tmp_path / "link.svg"), *tiny_model_args, *args]) == 0
    assert (tmp_path / "link.svg").is_symlink() and real.read_text().startswith("<?xml")
    assert os.stat(real).st_mode & 0o777 == 0o664


def test_a_fifo_given_as_an_output_gets_the_file_and_stays_a_fifo(images, tmp_path, tiny_model_args):
    fifo = tmp_path / "preview-pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    args = ["--strokes", "2", "--seeds", "1", "--iterations", "1", "--preview", str(fifo)]
    assert main(["sketch", str(images / "cup.png"), "-o", str(tmp_path / "out.svg"), *tiny_model_args, *args]) == 0
    reader.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert received and received[0].startswith(b"\x89PNG")


def independent_score(spec, target_path, sketch_path):
    """The paper's eval loss, computed here from scratch with open_clip (no clipasso_core code)."""
    open_clip.add_model_config(spec.loss_model)
    model = open_clip.create_model(os.path.basename(spec.loss_model)[:-5], pretrained=str(spec.loss_weights)).eval()
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)

    def load(path):
        image = Image.open(path).convert("RGBA")
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image).convert("RGB")
        side = max(image.size)
        square = Image.new("RGB", (side, side), "white")
        square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        pixels = torch.from_numpy(np.asarray(square.resize((224, 224), Image.BICUBIC), dtype=np.float32))
        return ((pixels[None].permute(0, 3, 1, 2) / 255) - mean) / std

    def taps(x):
        v = model.visual
        l2 = v.layer2(v.layer1(v.stem(x)))
        l3 = v.layer3(l2)
        return l2, l3, v.attnpool(v.layer4(l3))

    with torch.no_grad():
        (a2, a3, ae), (b2, b3, be) = taps(load(sketch_path)), taps(load(target_path))
    layer2, layer3 = F.mse_loss(a2, b2).item(), F.mse_loss(a3, b3).item()
    fc = 0.1 * (1 - F.cosine_similarity(ae, be).item())
    return {"conv_layer2": layer2, "conv_layer3": layer3, "fc": fc, "total": layer2 + layer3 + fc}


def test_score_matches_the_formula(images, tmp_path, tiny_spec, tiny_model_args):
    sketch = Image.new("RGB", (360, 240), "white")
    ImageDraw.Draw(sketch).line((60, 60, 300, 200), fill="black", width=3)
    sketch.save(tmp_path / "sketch.png")
    done = run_cli("score", images / "cup.png", tmp_path / "sketch.png", "--json", "--precision", "fp32",
                   *tiny_model_args)
    assert done.returncode == 0, done.stderr
    scored = json.loads(done.stdout)
    expected = independent_score(tiny_spec, images / "cup.png", tmp_path / "sketch.png")
    assert scored.pop("precision") == "fp32"
    assert set(scored) == {"conv_layer2", "conv_layer3", "fc", "total"}
    for key, value in expected.items():
        assert scored[key] == pytest.approx(value, rel=1e-3, abs=1e-6)
    assert scored["total"] == pytest.approx(scored["conv_layer2"] + scored["conv_layer3"] + scored["fc"])


def test_score_of_a_written_svg_is_its_reported_loss(images, tmp_path, tiny_model_args, capsys):
    out = tmp_path / "cup.svg"
    assert main(["sketch", str(images / "cup.png"), "-o", str(out), "--strokes", "4,8", "--seeds", "1",
                 "--iterations", "11", *tiny_model_args]) == 0
    reported = float(re.search(r"4 strokes: loss ([0-9.]+)", capsys.readouterr().err).group(1))
    assert main(["score", str(images / "cup.png"), str(out), "--level", "4", "--json", *tiny_model_args]) == 0
    total = json.loads(capsys.readouterr().out)["total"]
    assert total == pytest.approx(reported, rel=2e-3)  # the SVG rounds coordinates to 1/1000 px
    assert main(["score", str(images / "cup.png"), str(out), "--level", "5", *tiny_model_args]) == 1
    assert "no level with 5 strokes" in capsys.readouterr().err


@pytest.mark.parametrize("job_precision", ["fp32", "bf16"])
def test_score_of_an_svg_defaults_to_the_precision_its_job_used(images, tmp_path, tiny_model_args, capsys,
                                                                 job_precision):
    out = tmp_path / "cup.svg"
    assert main(["sketch", str(images / "cup.png"), "-o", str(out), "--strokes", "4", "--seeds", "1",
                 "--iterations", "3", "--precision", job_precision, *tiny_model_args]) == 0
    reported = float(re.search(r"4 strokes: loss ([0-9.]+)", capsys.readouterr().err).group(1))
    assert main(["score", str(images / "cup.png"), str(out), "--json", *tiny_model_args]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["precision"] == job_precision
    assert scored["total"] == pytest.approx(reported, rel=2e-3)
    other = "bf16" if job_precision == "fp32" else "fp32"
    assert main(["score", str(images / "cup.png"), str(out), "--json", "--precision", other, *tiny_model_args]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == other


def test_ctrl_c_stops_cleanly_and_writes_the_best_so_far(images, tmp_path, tiny_model_args):
    out = tmp_path / "stopped.svg"
    process = subprocess.Popen([*CLI, "sketch", str(images / "cup.png"), "-o", str(out), "--strokes", "4,8",
                                "--seeds", "1", "--iterations", "100000", *tiny_model_args],
                               stderr=subprocess.PIPE, text=True)
    seen = ""
    deadline = time.monotonic() + 120
    while "best loss" not in seen and time.monotonic() < deadline:
        seen += process.stderr.read(1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err and "wrote the best sketches so far" in err
    _, layers = layers_of(out.read_text())
    assert [len(g.findall(f"{{{SVG_NS}}}path")) for g in layers] == [4, 8]
