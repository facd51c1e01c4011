"""The extension's .inx files, its installer, and its geometry helpers, tested in-process."""

import gc
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List

import pytest
from inkex.inx import InxFile
from inkex.tester.inx import InxMixin

from clipasso_core.params import FIDELITY_PRESETS, REFINE_ITERATIONS, SketchParams
from inkscape_ext import install
from inkscape_ext.install import default_extensions_dir, install_extension

ROOT = Path(__file__).resolve().parents[1]
EXT_DIR = ROOT / "inkscape_ext"
SKETCH_INX = ROOT / "clipasso.inx"  # at the top level, as the user's card draws the house
INX_FILES = [SKETCH_INX, *sorted(EXT_DIR.glob("*.inx"))]


@pytest.fixture
def extension_imports(monkeypatch):
    """Import the extension's modules as Inkscape does: flat, from the script's folder."""
    monkeypatch.syspath_prepend(str(EXT_DIR))


@pytest.fixture
def inx_folder(inx, monkeypatch):
    """inkex's inx check loads the script by its path relative to the .inx, so run it from there."""
    monkeypatch.chdir(inx.parent)


class _InxCheck(InxMixin, unittest.TestCase):
    """inkex's own .inx checks (params ↔ argparse, class name ↔ id, RELAX NG + Schematron)."""

    __test__ = False  # a toolbox borrowed from unittest, not a test case of its own

    def runTest(self):  # noqa: N802  (lets unittest.TestCase be instantiated)
        """Unused."""


def test_both_inx_files_exist():
    assert [inx.name for inx in INX_FILES] == ["clipasso.inx", "clipasso_insert.inx", "clipasso_refine.inx"]


@pytest.mark.parametrize("inx", INX_FILES, ids=lambda p: p.name)
def test_inx_passes_inkex_checks(inx, extension_imports, inx_folder):
    check = _InxCheck()
    check.assertInxIsGood(str(inx))
    check.assertInxSchemaValid(str(inx))
    parsed = InxFile(str(inx))
    assert parsed.extension_class is not None
    assert parsed.menu[0] == "CLIPasso"
    assert parsed.metadata["preview"] is False, "no live preview for a minutes-long GPU job"
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789.-" for c in parsed.ident)


def test_menu_entries_and_ids():
    entries = {InxFile(str(inx)).ident: InxFile(str(inx)).menu for inx in INX_FILES}
    assert entries == {
        "org.clipasso.sketch": ["CLIPasso", "New sketch"],
        "org.clipasso.refine": ["CLIPasso", "Refine"],
        "org.clipasso.insert": ["CLIPasso", "Update waiting sketches"],
    }


def test_the_menu_lists_the_entries_in_the_order_of_the_work():
    """Inkscape sorts a submenu's entries by name: 1.2 with the locale's collation (Glib::ustring's <), 1.3 and
    later by bytes. Names whose first letters rise in the alphabet keep the order sketch, refine, insert in both."""
    names = [InxFile(str(inx)).menu[-1] for inx in (SKETCH_INX, EXT_DIR / "clipasso_refine.inx",
                                                   EXT_DIR / "clipasso_insert.inx")]
    assert sorted(names) == names
    assert sorted(names, key=lambda name: [c for c in name.casefold() if c.isalnum()]) == names
    assert len({name[0].casefold() for name in names}) == len(names), "the first letters alone decide"


def _inx_params(inx: Path) -> dict:
    ns = "{http://www.inkscape.org/namespace/inkscape/extension}"
    return {p.get("name"): p for p in ET.parse(inx).getroot().iter(f"{ns}param")}


def _options(param) -> List[str]:
    return [option.get("value") for option in param.iter("{http://www.inkscape.org/namespace/inkscape/extension}option")]


def test_dialog_defaults_and_limits_are_the_sketch_parameters():
    """The dialog offers what the server accepts: its levels and its Custom steps and attempts start from the
    published defaults, and the quality starts on Automatic."""
    params = _inx_params(SKETCH_INX)
    defaults = SketchParams()
    assert [count for count in (4, 8, 16, 32) if params[f"level_{count}"].text == "true"] == defaults.strokes
    assert _options(params["quality"]) == ["auto", "quick", "balanced", "paper", "custom"]
    assert all(SketchParams(preset=preset).preset == preset for preset in _options(params["quality"])[1:4])
    assert float(params["pen_width"].text) == 0.0, "0 is the paper's pen"
    for name in ("iterations", "seeds", "seed"):
        value = float(params[name].text)
        assert value == getattr(defaults, name), name
        limits = SketchParams.model_fields[name].metadata
        for bound in limits:
            if hasattr(bound, "ge"):
                assert float(params[name].get("min")) >= bound.ge, name
            if hasattr(bound, "le"):
                assert float(params[name].get("max")) <= bound.le, name


def test_refine_dialog_offers_the_same_quality_and_the_refine_defaults():
    params = _inx_params(EXT_DIR / "clipasso_refine.inx")
    assert _options(params["quality"]) == _options(_inx_params(SKETCH_INX)["quality"])
    assert params["live_view"].text == "true"
    assert (int(params["iterations"].text), int(params["seeds"].text)) == (REFINE_ITERATIONS, 1)


def test_every_dialog_has_the_same_server_fields():
    servers = [{name: (p.text or "") for name, p in _inx_params(inx).items() if name in ("url", "token")}
               for inx in INX_FILES]
    assert servers == [{"url": "http://127.0.0.1:8765", "token": ""}] * 3


def test_steer_tab_starts_from_the_papers_run(extension_imports):
    """Every Steer control starts off (or at the parameter's default), so an untouched dialog runs the paper."""
    from dialog_params import PROMPT_WEIGHTS

    params = _inx_params(SKETCH_INX)
    defaults = SketchParams()
    assert (params["text"].text or "") == ""
    assert PROMPT_WEIGHTS[_options(params["prompt_strength"])[0]] == defaults.text_weight
    assert all(0 < weight <= 1000 for weight in PROMPT_WEIGHTS.values())
    options = _options(params["fidelity"])
    assert options[0] == defaults.fidelity and set(options) == set(FIDELITY_PRESETS)
    for name in ("optimize_width", "optimize_opacity"):
        assert params[name].text == "false" and getattr(defaults, name) is False, name


def test_steer_params_send_only_what_departs_from_the_paper(extension_imports):
    from argparse import Namespace

    from clipasso_sketch import steer_params

    untouched = Namespace(text="  ", prompt_strength="gentle", fidelity="paper", optimize_width=False,
                          optimize_opacity=False)
    assert steer_params(untouched) == {}
    steered = Namespace(text=" a cup ", prompt_strength="strong", fidelity="loose", optimize_width=True,
                        optimize_opacity=True)
    sent = steer_params(steered)
    assert sent == {"text": "a cup", "text_weight": 1.0, "fidelity": "loose", "optimize_width": True,
                    "optimize_opacity": True}
    SketchParams(**sent)  # the server accepts it


def test_install_copies_the_extension_into_a_clipasso_folder(tmp_path):
    stale = tmp_path / "clipasso" / "old_module.py"
    stale.parent.mkdir()
    stale.write_text("# from an older version")
    (stale.parent / "clipasso.inx").write_text("<inkscape-extension/>")
    target = install_extension(tmp_path)
    assert target == tmp_path / "clipasso"
    assert not stale.exists(), "an older copy is replaced, not merged"
    assert sorted(p.name for p in target.iterdir()) == ["clipasso.inx", "inkscape_ext"]  # laid out as a checkout
    assert (target / "clipasso.inx").read_bytes() == SKETCH_INX.read_bytes()
    installed = sorted(p.name for p in (target / "inkscape_ext").iterdir())
    assert "clipasso_insert.inx" in installed and "clipasso_sketch.py" in installed
    assert not {"install.py", "__init__.py", "__pycache__", "clipasso.inx"} & set(installed)
    assert not [name for name in installed if name.endswith(".pyc")]
    assert installed == sorted(
        p.name for p in EXT_DIR.iterdir() if p.is_file() and p.suffix in (".py", ".inx")
        and p.name not in ("install.py", "__init__.py")
    )
    inx_files = sorted(target.rglob("*.inx"))
    assert len(inx_files) == len(INX_FILES)
    for inx in inx_files:
        script = InxFile(str(inx)).script
        assert script["location"] == "inx" and (inx.parent / script["script"]).is_file()


def test_inx_scripts_exist_in_the_checkout():
    """An Inkscape extensions folder pointing at the repository runs the same files as an installed copy."""
    for inx in INX_FILES:
        script = InxFile(str(inx)).script
        assert script["location"] == "inx" and (inx.parent / script["script"]).is_file(), inx.name


def test_install_never_touches_what_it_did_not_install(tmp_path):
    precious = tmp_path / "clipasso" / "drawing.svg"
    precious.parent.mkdir()
    precious.write_text("<svg/>")
    with pytest.raises(install.InstallError, match="is not the CLIPasso extension"):
        install_extension(tmp_path)
    assert precious.read_text() == "<svg/>"
    with pytest.raises(install.InstallError, match="does not exist"):
        install_extension(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_install_defaults_to_the_profile_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INKSCAPE_PROFILE_DIR", str(tmp_path / "profile"))
    assert install_extension() == tmp_path / "profile" / "extensions" / "clipasso"


@pytest.mark.parametrize(
    "platform, env, expected",
    [
        ("linux", {}, "HOME/.config/inkscape/extensions"),
        ("linux", {"XDG_CONFIG_HOME": "/xdg"}, "/xdg/inkscape/extensions"),
        ("linux", {"INKSCAPE_PROFILE_DIR": "/profile"}, "/profile/extensions"),
        ("darwin", {}, "HOME/Library/Application Support/org.inkscape.Inkscape/config/inkscape/extensions"),
        ("win32", {"APPDATA": "/appdata"}, "/appdata/inkscape/extensions"),
        ("win32", {"INKSCAPE_PROFILE_DIR": "/profile"}, "/profile/extensions"),
    ],
)
def test_default_extensions_dir(monkeypatch, tmp_path, platform, env, expected):
    for name in ("INKSCAPE_PROFILE_DIR", "XDG_CONFIG_HOME", "APPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(install.sys, "platform", platform)
    assert default_extensions_dir() == Path(expected.replace("HOME", str(tmp_path)))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", ("xMidYMid", "meet")),
        ("none", ("none", "meet")),
        ("xMinYMax slice", ("xMinYMax", "slice")),
        ("defer xMaxYMin", ("xMaxYMin", "meet")),
        ("xMidYMid bogus", ("xMidYMid", "meet")),
        ("xmidymid", ("xMidYMid", "meet")),
    ],
)
def test_preserve_aspect_ratio_parsing(extension_imports, value, expected):
    from placement import parse_preserve_aspect_ratio

    assert parse_preserve_aspect_ratio(value) == expected


def test_levels_are_the_ticked_ones_and_the_other_counts(extension_imports):
    import inkex
    from dialog_params import stroke_counts

    assert stroke_counts([4, 8, 16, 32], "") == [4, 8, 16, 32]
    assert stroke_counts([16, 4], "64, 2 16") == [2, 4, 16, 64]
    assert stroke_counts([], "12") == [12]
    for ticked, others in (([], ""), ([4], "four"), ([4], "0"), ([4], "-4")):
        with pytest.raises(inkex.AbortExtension):
            stroke_counts(ticked, others)


@pytest.mark.parametrize("health, expected", [
    ({"recommended_preset": "balanced", "device": "cpu"}, "balanced"),
    ({"recommended_preset": "paper", "device": "cpu"}, "paper"),
    ({"device": "cpu"}, "quick"),
    ({"device": "cuda:0"}, "paper"),
    ({"recommended_preset": "warp", "device": "mps"}, "paper"),
    ({}, "paper"),
])
def test_automatic_quality_is_the_servers_recommendation(extension_imports, health, expected):
    from dialog_params import quality_params

    assert quality_params("auto", health, 2000, 3) == {"preset": expected}
    assert quality_params("balanced", health, 2000, 3) == {"preset": "balanced"}
    assert quality_params("custom", health, 50, 2) == {"iterations": 50, "seeds": 2}


def test_expected_time_is_stated_only_when_the_server_says_it(extension_imports):
    from dialog_params import expected_time

    health = {"preset_seconds": {"quick": 150, "balanced": None, "paper": 7300}}
    assert expected_time(health, "quick") == "a four-level sketch at Quick look quality takes about 2 min on this server"
    assert expected_time(health, "paper").endswith("about 2 h 02 min on this server")
    for unknown in ({}, {"preset_seconds": None}, {"preset_seconds": {"quick": "soon"}}, health):
        assert expected_time(unknown, "balanced") is None
    assert expected_time(health, None) is None


def test_job_failure_sentences_end_with_one_full_stop(extension_imports):
    from clipasso_sketch import sentence

    assert sentence("The weights file 'x.pt' does not exist.") == "The weights file 'x.pt' does not exist."
    assert sentence("loss became NaN ") == "loss became NaN."
    assert sentence("Really?") == "Really?"


def test_png_exif_is_removed_before_upload_and_nothing_else(extension_imports):
    import io

    from PIL import Image

    from clipasso_core.image import read_image
    from image_source import raster_format, without_png_exif

    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif.tobytes(), dpi=(300, 300))
    png = buffer.getvalue()
    assert read_image(png).size == (20, 40)  # the server turns it by its EXIF tag …
    sent = without_png_exif(png)
    assert b"eXIf" in png and b"eXIf" not in sent and len(sent) < len(png)
    assert read_image(sent).tobytes() == stored.tobytes()  # … so the extension sends it as Inkscape shows it
    assert Image.open(io.BytesIO(sent)).info["dpi"] == Image.open(io.BytesIO(png)).info["dpi"]  # other chunks stay
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif.tobytes())
    assert without_png_exif(buffer.getvalue()) == buffer.getvalue()  # Inkscape turns JPEGs itself
    assert without_png_exif(png[:60]).startswith(png[:33])  # damaged files pass through for the server to judge
    assert [raster_format(data) for data in (b"GIF89a...", b"II*\x00....", b"BM....")] == ["gif", "tiff", None]


@pytest.mark.parametrize(
    "url, why",
    [
        ("localhost:8765", "does not start with http"),
        ("http://[::1", "host or port cannot be read"),
        ("http://127.0.0.1:abc", "host or port cannot be read"),
        ("http://127.0.0.1:99999", "host or port cannot be read"),
        ("http://127.0.0.1:0", "port is not a number from 1 to 65535"),
        ("http://127.0.0.1:", "port is not a number from 1 to 65535"),
        ("http://", "names no host"),
        ("http://:8765", "names no host"),
        ("http://exa mple.org", "blank or a control character"),
        ("http://127.0.0.1:8765\x01", "blank or a control character"),
        ("http://me@127.0.0.1:8765", "user name"),
        ("http://127.0.0.1:8765/?x=1", "query or fragment"),
        ("http://a..b:8765", "not a host name or IP address"),
        ("http://-a-:8765", "not a host name or IP address"),
    ],
)
def test_malformed_server_urls_get_one_sentence_before_any_request(extension_imports, url, why):
    from sketch_client import ServerError, SketchClient

    with pytest.raises(ServerError) as raised:
        SketchClient(url)
    message = str(raised.value)
    assert why in message and "is not a web address" in message and "as the Server URL." in message
    assert message.count(". ") == 0 and "\n" not in message


def test_well_formed_server_urls_are_kept(extension_imports):
    from sketch_client import SketchClient

    for url, kept in [(" http://127.0.0.1:8765/ ", "http://127.0.0.1:8765"), ("http://[::1]:9000", "http://[::1]:9000"),
                      ("https://sketch.example.org/clipasso/", "https://sketch.example.org/clipasso"),
                      ("HTTP://LocalHost", "HTTP://LocalHost")]:
        assert SketchClient(url).url == kept


def _sound_result() -> dict:
    """A result as the server writes it, with path data from the core's own writer."""
    from clipasso_core.svg import path_data

    strokes = [[[1.5, 2.0], [10.0, 3.25], [-4.0, 20.0], [30.0, 1e-5]], [[0, 0], [1, 1], [2, 2], [3, 3]]]
    return {"width": 40, "height": 30,
            "levels": [{"strokes": 2, "stroke_width": 3.0, "paths": [path_data(s) for s in strokes], "loss": 0.25},
                       {"strokes": 1, "stroke_width": 1.5, "paths": ["M 1 2 C 3 4 5 6 7 8 C 9 10 11 12 13 14"],
                        "loss": None}]}


def test_a_sound_result_is_accepted(extension_imports):
    from sketch_client import result_problem

    assert result_problem(_sound_result()) is None
    styled = _sound_result()
    styled["levels"][0].update(widths=[2.5, 4], opacities=[0.0, 1])
    assert result_problem(styled) is None


MALFORMED_RESULTS = {
    "no levels": (lambda r: r.update(levels=[]), "no levels"),
    "levels not a list": (lambda r: r.update(levels={"4": []}), "no levels"),
    "width zero": (lambda r: r.update(width=0), "width and height"),
    "height a string": (lambda r: r.update(height="30"), "width and height"),
    "width true": (lambda r: r.update(width=True), "width and height"),
    "width fractional": (lambda r: r.update(width=40.5), "width and height"),
    "level not an object": (lambda r: r["levels"].append(4), "level 3 is not an object"),
    "strokes missing": (lambda r: r["levels"][0].pop("strokes"), "level 1 has no positive whole stroke count"),
    "strokes true": (lambda r: r["levels"][1].update(strokes=True), "level 2 has no positive whole stroke count"),
    "pen width NaN": (lambda r: r["levels"][0].update(stroke_width=float("nan")), "level 1 has no positive pen width"),
    "pen width infinite": (lambda r: r["levels"][0].update(stroke_width=float("inf")), "no positive pen width"),
    "pen width negative": (lambda r: r["levels"][0].update(stroke_width=-3), "no positive pen width"),
    "a stroke missing": (lambda r: r["levels"][0]["paths"].pop(), "level 1 does not hold 2 strokes"),
    "empty path": (lambda r: r["levels"][0]["paths"].__setitem__(1, ""), "stroke 2 of level 1 is not path data"),
    "words": (lambda r: r["levels"][0]["paths"].__setitem__(0, "garbage"), "stroke 1 of level 1"),
    "only a move": (lambda r: r["levels"][1]["paths"].__setitem__(0, "M 1 2"), "stroke 1 of level 2"),
    "short curve": (lambda r: r["levels"][1]["paths"].__setitem__(0, "M 1 2 C 3 4 5 6 7"), "stroke 1 of level 2"),
    "run-together numbers": (lambda r: r["levels"][1]["paths"].__setitem__(0, "M 12 C 3 4 5 6 7 8"), "level 2"),
    "lines": (lambda r: r["levels"][1]["paths"].__setitem__(0, "M 1 2 L 3 4"), "stroke 1 of level 2"),
    "infinite number": (lambda r: r["levels"][1]["paths"].__setitem__(0, "M 1e999 2 C 3 4 5 6 7 8"), "finite"),
    "trailing garbage": (lambda r: r["levels"][1]["paths"].__setitem__(0, "M 1 2 C 3 4 5 6 7 8 x"), "level 2"),
    "path not a string": (lambda r: r["levels"][1]["paths"].__setitem__(0, [1, 2]), "stroke 1 of level 2"),
    "a width missing": (lambda r: r["levels"][0].update(widths=[2.0]), "level 1 does not give 2 positive stroke widths"),
    "a width zero": (lambda r: r["levels"][0].update(widths=[2.0, 0]), "positive stroke widths"),
    "an opacity above 1": (lambda r: r["levels"][1].update(opacities=[1.5]), "level 2 does not give 1 stroke opacities"),
    "opacities not a list": (lambda r: r["levels"][1].update(opacities=0.5), "stroke opacities between 0 and 1"),
}  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED_RESULTS)
def test_malformed_results_are_refused_with_what_is_wrong(extension_imports, case):
    from sketch_client import result_problem

    damage, why = MALFORMED_RESULTS[case]
    result = _sound_result()
    damage(result)
    problem = result_problem(result)
    assert problem is not None and why in problem


def test_a_result_with_other_levels_than_asked_for_is_refused(extension_imports):
    from sketch_client import result_problem

    assert result_problem(_sound_result(), [1, 2]) is None
    assert "[1, 2] strokes where [2, 4] were asked for" in result_problem(_sound_result(), [4, 2])
    assert "where [1] were asked for" in result_problem(_sound_result(), [1])


def test_clipasso_install_extension_comes_from_the_extension(tmp_path, capsys, monkeypatch):
    """``clipasso install-extension`` is the extension's subcommand (an entry point), not the core's."""
    from importlib.metadata import entry_points

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    from clipasso_core.cli import PLUGIN_GROUP, main

    registered = {entry.name for entry in entry_points(group=PLUGIN_GROUP)}
    assert "install-extension" in registered, "stale package metadata: run pip install --no-deps -e . again"
    assert main(["install-extension", "--dest", str(tmp_path)]) == 0
    assert (tmp_path / "clipasso" / "clipasso.inx").is_file()
    assert str(tmp_path / "clipasso") in capsys.readouterr().out
    assert main(["install-extension", "--dest", str(tmp_path / "typo")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("clipasso: error: The folder") and err.count("\n") == 1


def test_install_extension_sets_the_server_of_every_dialog(tmp_path, capsys, monkeypatch):
    import json

    from clipasso_core.cli import main
    from inkscape_ext.extension_settings import server_choice, settings_path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "extensions").mkdir()
    dest = ["--dest", str(tmp_path / "extensions")]
    assert main(["install-extension", *dest]) == 0
    assert json.loads(settings_path().read_text()) == {"server_url": "http://127.0.0.1:8765"}
    assert "its dialogs use the sketch server at http://127.0.0.1:8765" in capsys.readouterr().out
    assert main(["install-extension", *dest, "--server-url", "http://gpu-box:9000/", "--token", "s3cret"]) == 0
    for dialog in ("org.clipasso.sketch", "org.clipasso.refine", "org.clipasso.insert"):  # untouched dialogs
        choice = server_choice(dialog, "http://127.0.0.1:8765", "")
        assert (choice.url, choice.token) == ("http://gpu-box:9000", "s3cret")
    assert main(["install-extension", *dest]) == 0, "an upgrade keeps the server set before"
    assert json.loads(settings_path().read_text()) == {"server_url": "http://gpu-box:9000", "token": "s3cret"}
    assert main(["install-extension", *dest, "--token", ""]) == 0
    assert "token" not in json.loads(settings_path().read_text())
    capsys.readouterr()
    for bad in ("gpu-box:9000", "http://", "ftp://gpu-box", "http://gpu-box:99999"):
        assert main(["install-extension", *dest, "--server-url", bad]) == 1, bad
        err = capsys.readouterr().err
        assert "is not a web address like http://127.0.0.1:8765" in err and err.count("\n") == 1


def test_a_built_package_carries_the_top_level_inx_and_installs_it(tmp_path):
    """After ``pip install`` (a wheel holds what build_py builds) the installer still finds the top-level .inx."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "clipasso.inx"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("clipasso_core", "server", "inkscape_ext"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    lib = tmp_path / "lib"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(lib)], cwd=source, check=True,
                   capture_output=True)
    assert (lib / "inkscape_ext" / "clipasso.inx").read_bytes() == SKETCH_INX.read_bytes()
    assert not (lib / "clipasso.inx").exists()
    extensions = tmp_path / "extensions"
    extensions.mkdir()
    code = "import sys; from inkscape_ext.install import install_extension; print(install_extension(sys.argv[1]))"
    subprocess.run([sys.executable, "-S", "-c", code, str(extensions)], cwd=tmp_path, check=True,
                   env={"PYTHONPATH": str(lib)})  # -S: no site-packages, so not this checkout's editable install
    assert (extensions / "clipasso" / "clipasso.inx").read_bytes() == SKETCH_INX.read_bytes()
    assert (extensions / "clipasso" / "inkscape_ext" / "clipasso_sketch.py").is_file()
    assert not (extensions / "clipasso" / "inkscape_ext" / "clipasso.inx").exists()


def test_same_server_compares_scheme_host_port_and_path(extension_imports):
    from clipasso_insert import same_server

    same = [("http://127.0.0.1:8765", "http://localhost:8765/"), ("http://[::1]:8765", "HTTP://LOCALHOST:8765"),
            ("http://example.org", "http://Example.org:80/"), ("https://example.org/x/", "https://example.org:443/x")]
    other = [("http://127.0.0.1:8765", "http://127.0.0.1:8766"), ("http://127.0.0.1:8765", "https://127.0.0.1:8765"),
             ("http://127.0.0.1:8765", "http://127.0.0.2:8765"), ("http://example.org", "http://example.org.evil"),
             ("http://example.org/a", "http://example.org/b"), ("http://[::1", "http://[::1")]
    assert all(same_server(a, b) and same_server(b, a) for a, b in same)
    assert not any(same_server(a, b) or same_server(b, a) for a, b in other)


def _browser_stand_in(folder: Path, name: str) -> Path:
    """A program called name in folder that records its arguments, its standard streams, its session and its
    process id in name.log, then stays open for a minute like a browser."""
    program = folder / name
    program.write_text(
        "#!/bin/sh\n"
        f'log="{folder}/{name}.log"\n'
        'echo "args $*" >>"$log"\n'
        'for fd in 0 1 2; do echo "fd$fd $(readlink /proc/$$/fd/$fd)" >>"$log"; done\n'
        'echo "session $(ps -o sid= -p $$ | tr -d " ")" >>"$log"\n'
        'echo "pid $$" >>"$log"\n'
        "exec sleep 60\n"
    )
    program.chmod(0o755)
    return program


def _stand_in_log(folder: Path, name: str) -> dict:
    """What the stand-in recorded, once it has (it starts in the background): {"args": ..., "fd0": ..., ...}."""
    log = folder / f"{name}.log"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "pid " not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    return dict(line.split(" ", 1) for line in log.read_text().splitlines())


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads the stand-in's streams from /proc")
def test_live_view_starts_the_desktops_browser_detached_and_leaves_nothing_to_warn_about(
        extension_imports, monkeypatch, tmp_path):
    import live_view

    _browser_stand_in(tmp_path, "xdg-open")
    monkeypatch.setattr(live_view.sys, "platform", "linux")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("BROWSER", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as inkex does (it shows them); an unreaped Popen would warn on collection
        assert live_view.open_live_view("http://127.0.0.1:8765/", "0123abcd")
        gc.collect()
    seen = _stand_in_log(tmp_path, "xdg-open")
    try:
        assert seen["args"] == "http://127.0.0.1:8765/jobs/0123abcd"
        assert [seen[f"fd{fd}"] for fd in range(3)] == ["/dev/null"] * 3, "Inkscape waits for its pipes to close"
        assert seen["session"] != str(os.getsid(0)), "the browser runs in a session of its own"
        os.kill(int(seen["pid"]), 0)  # still open: nothing waited for it
    finally:
        os.kill(int(seen["pid"]), signal.SIGTERM)


def test_live_view_honours_browser_then_the_platforms_opener(extension_imports, monkeypatch, tmp_path):
    import live_view

    _browser_stand_in(tmp_path, "my-browser")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    url = "http://h:1/jobs/j"
    monkeypatch.setenv("BROWSER", f"no-such-browser-here{os.pathsep}my-browser --new-tab %s --x")
    assert live_view.browser_command(url) == ["my-browser", "--new-tab", url, "--x"]
    monkeypatch.setenv("BROWSER", "my-browser")
    assert live_view.browser_command(url) == ["my-browser", url]
    monkeypatch.setenv("BROWSER", "")
    monkeypatch.setattr(live_view.sys, "platform", "darwin")
    assert live_view.browser_command(url) == ["open", url]
    monkeypatch.setattr(live_view.sys, "platform", "linux")
    monkeypatch.setattr(live_view, "OPENERS", (["no-such-opener"], ["my-browser", "open"]))
    assert live_view.browser_command(url) == ["my-browser", "open", url]
    assert live_view.live_view_url("http://h:1", "a/b?c") == "http://h:1/jobs/a%2Fb%3Fc"


def test_live_view_on_windows_hands_the_url_to_the_shell(extension_imports, monkeypatch):
    import live_view

    opened = []
    monkeypatch.setattr(live_view.sys, "platform", "win32")
    monkeypatch.setattr(live_view.os, "startfile", opened.append, raising=False)
    assert live_view.open_live_view("http://127.0.0.1:8765", "job")
    assert opened == ["http://127.0.0.1:8765/jobs/job"]


def test_live_view_without_a_graphical_session_or_browser_opens_nothing(extension_imports, monkeypatch, tmp_path):
    import live_view

    _browser_stand_in(tmp_path, "xdg-open")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(live_view.sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    assert not live_view.open_live_view("http://127.0.0.1:8765", "job")  # a console browser would block Inkscape
    assert not (tmp_path / "xdg-open.log").exists()

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not live_view.open_live_view("http://127.0.0.1:8765", "job")


def _saved(image, image_format: str, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


PICTURE_HEADERS = {
    "png": ("RGB", "PNG", {}), "png 16-bit grey": ("I;16", "PNG", {}), "gif": ("P", "GIF", {}),
    "jpeg": ("RGB", "JPEG", {}), "progressive jpeg": ("RGB", "JPEG", {"progressive": True}),
    "cmyk jpeg": ("CMYK", "JPEG", {}), "mpo": ("RGB", "MPO", {"save_all": True, "append_images": "twice"}),
    "lossy webp": ("RGB", "WEBP", {"quality": 80}), "lossless webp": ("RGBA", "WEBP", {"lossless": True}),
    "animated webp": ("RGBA", "WEBP", {"save_all": True, "append_images": "twice"}),
    "apng": ("RGBA", "PNG", {"save_all": True, "append_images": "twice"}),
    "tiff": ("RGB", "TIFF", {}), "lzw tiff": ("RGB", "TIFF", {"compression": "tiff_lzw"}),
    "16-bit tiff": ("I;16", "TIFF", {}),
}  # fmt: skip


@pytest.mark.parametrize("case", PICTURE_HEADERS)
def test_picture_size_is_read_from_the_header_as_pillow_reads_it(extension_imports, case):
    import io

    from PIL import Image
    from picture_size import picture_size

    mode, image_format, options = PICTURE_HEADERS[case]
    image = Image.new(mode, (123, 45))
    if options.get("append_images") == "twice":
        options = {**options, "append_images": [Image.new(mode, (123, 45), 1)]}
    data = _saved(image, image_format, **options)
    assert picture_size(data) == Image.open(io.BytesIO(data)).size == (123, 45)
    assert picture_size(data[:9]) is None  # a header cut short is unknown, not an error


def test_the_pixel_limit_is_checked_before_sending(extension_imports):
    from PIL import Image
    from sketch_client import ServerError, SketchClient

    client = SketchClient("http://127.0.0.1:1")  # nothing listens: check_upload must not connect
    client.max_pixels = 5000
    client.check_upload(_saved(Image.new("RGB", (100, 50)), "PNG"), {}, "The picture")  # exactly the limit
    with pytest.raises(ServerError, match=r"The picture is 101 × 50 pixels, .*\(5,000 pixels, its --max-pixels\)"):
        client.check_upload(_saved(Image.new("RGB", (101, 50)), "PNG"), {}, "The picture")
    client.check_upload(b"\xff\xd8\xff" + b"\x00" * 40, {}, "The picture")  # size unknown: the server judges
