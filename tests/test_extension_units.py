"""The extension's .inx files, its installer, and its geometry helpers, tested in-process."""

import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from inkex.inx import InxFile
from inkex.tester.inx import InxMixin

from clipasso_core.params import SketchParams
from inkscape_ext import install
from inkscape_ext.install import default_extensions_dir, install_extension

EXT_DIR = Path(__file__).resolve().parents[1] / "inkscape_ext"
INX_FILES = sorted(EXT_DIR.glob("*.inx"))


@pytest.fixture
def extension_imports(monkeypatch):
    """Import the extension's modules as Inkscape does: flat, from the script's folder."""
    monkeypatch.syspath_prepend(str(EXT_DIR))
    monkeypatch.chdir(EXT_DIR)  # inkex's inx check loads the script by its relative name


class _InxCheck(InxMixin, unittest.TestCase):
    """inkex's own .inx checks (params ↔ argparse, class name ↔ id, RELAX NG + Schematron)."""

    __test__ = False  # a toolbox borrowed from unittest, not a test case of its own

    def runTest(self):  # noqa: N802  (lets unittest.TestCase be instantiated)
        """Unused."""


def test_both_inx_files_exist():
    assert [inx.name for inx in INX_FILES] == ["clipasso.inx", "clipasso_insert.inx", "clipasso_refine.inx"]


@pytest.mark.parametrize("inx", INX_FILES, ids=lambda p: p.name)
def test_inx_passes_inkex_checks(inx, extension_imports):
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
        "org.clipasso.sketch": ["CLIPasso", "Sketch"],
        "org.clipasso.insert": ["CLIPasso", "Insert finished sketches"],
        "org.clipasso.refine": ["CLIPasso", "Refine"],
    }


def test_dialog_defaults_and_limits_are_the_sketch_parameters():
    """The dialog offers what the server accepts, starting from the same published defaults."""
    root = ET.parse(EXT_DIR / "clipasso.inx").getroot()
    params = {p.get("name"): p for p in root.iter("{http://www.inkscape.org/namespace/inkscape/extension}param")}
    defaults = SketchParams()
    assert SketchParams(strokes=params["strokes"].text).strokes == defaults.strokes
    for name in ("iterations", "seeds", "seed", "stroke_width"):
        value = float(params[name].text)
        assert value == getattr(defaults, name), name
        limits = SketchParams.model_fields[name].metadata
        for bound in limits:
            if hasattr(bound, "ge"):
                assert float(params[name].get("min")) >= bound.ge, name
            if hasattr(bound, "gt"):
                assert float(params[name].get("min")) > bound.gt, name
            if hasattr(bound, "le"):
                assert float(params[name].get("max")) <= bound.le, name


def test_install_copies_the_extension_into_a_clipasso_folder(tmp_path):
    stale = tmp_path / "clipasso" / "old_module.py"
    stale.parent.mkdir()
    stale.write_text("# from an older version")
    (stale.parent / "clipasso.inx").write_text("<inkscape-extension/>")
    target = install_extension(tmp_path)
    assert target == tmp_path / "clipasso"
    installed = sorted(p.name for p in target.iterdir())
    assert not stale.exists(), "an older copy is replaced, not merged"
    assert "clipasso.inx" in installed and "clipasso_insert.inx" in installed
    assert not {"install.py", "__init__.py", "__pycache__"} & set(installed)
    assert not [name for name in installed if name.endswith(".pyc")]
    assert installed == sorted(
        p.name for p in EXT_DIR.iterdir() if p.is_file() and p.suffix in (".py", ".inx")
        and p.name not in ("install.py", "__init__.py")
    )
    for inx in target.glob("*.inx"):
        script = InxFile(str(inx)).script
        assert script["location"] == "inx" and (target / script["script"]).is_file()


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


def test_stroke_count_parsing(extension_imports):
    import inkex
    from clipasso_sketch import parse_stroke_counts

    assert parse_stroke_counts("32, 4,8 8 16") == [4, 8, 16, 32]
    for bad in ("", "four", "0,4", "-4"):
        with pytest.raises(inkex.AbortExtension):
            parse_stroke_counts(bad)


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
