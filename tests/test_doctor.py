"""``clipasso doctor`` finds every broken link between a designer's click and a sketch, says how to fix each,
and exits 0 only when a sketch would work (the real Inkscape of this machine is one of the links)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from huggingface_hub import constants as hub_constants

from clipasso_core.cli import main
from clipasso_core.doctor import DOCTOR_GROUP
from clipasso_server.schemas import API_VERSION

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inkscape_ext"))

from extension_settings import save_settings  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("inkscape") is None, reason="needs Inkscape installed")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A designer's account with nothing set up yet: its own config, data, Inkscape profile and model cache."""
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "INKSCAPE_PROFILE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    (tmp_path / "xdg_config_home" / "clipasso").mkdir(parents=True)
    return tmp_path


def doctor(capsys) -> tuple[int, list[str]]:
    status = main(["doctor"])
    return status, capsys.readouterr().out.splitlines()


def line(lines: list[str], start: str) -> str:
    """The one line that starts with ``start``."""
    found = [text for text in lines if text.startswith(start)]
    assert len(found) == 1, lines
    return found[0]


def test_on_a_fresh_account_each_missing_link_is_a_cross_with_its_fix(machine, capsys):
    status, lines = doctor(capsys)
    assert status == 1 and lines[-1].startswith("A sketch would not work yet")
    assert line(lines, "✓ Python ") and line(lines, "✓ torch ")
    assert line(lines, "✗ loss model RN101 (479 MB): not downloaded yet — run clipasso download-models")
    assert line(lines, "✗ saliency model ViT-B-32 (605 MB): not downloaded yet")
    assert line(lines, "✗ Inkscape extension: not installed").endswith("— run clipasso install-extension")
    assert "clipasso-server service install" in line(lines, "✗ sketch server at http://127.0.0.1:8765: not running")
    assert line(lines, "✓ Inkscape 1.")


def test_with_everything_in_place_a_sketch_would_work(machine, capsys, tiny_spec, live_server):
    (machine / "xdg_config_home" / "clipasso" / "server.toml").write_text(
        f'device = "cpu"\nloss_model = "{tiny_spec.loss_model}"\nloss_weights = "{tiny_spec.loss_weights}"\n'
        f'saliency_model = "{tiny_spec.saliency_model}"\nsaliency_weights = "{tiny_spec.saliency_weights}"\n')
    assert main(["install-extension"]) == 0
    save_settings(server_url=live_server.url)
    status, lines = doctor(capsys)
    assert status == 0, lines
    assert lines[-1].startswith("A sketch would work")
    assert line(lines, "✓ jobs run on the CPU in ")
    assert line(lines, f"✓ loss model {tiny_spec.loss_model}: weights file {tiny_spec.loss_weights}")
    assert line(lines, "✓ Inkscape extension: installed in " + str(machine / "inkscape_profile_dir" / "extensions"))
    assert line(lines, f"✓ server command: Inkscape can start the server with {sys.executable} -m clipasso_server")
    assert line(lines, f"✓ sketch server at {live_server.url}: version ").count(f"API revision {API_VERSION}") == 1
    assert line(lines, "✗ login service: not installed")  # advice only: the exit status is still 0


def test_a_stale_extension_copy_and_a_vanished_interpreter_are_found(machine, capsys, tmp_path):
    assert main(["install-extension"]) == 0
    installed = machine / "inkscape_profile_dir" / "extensions" / "clipasso" / "inkscape_ext" / "sketch_client.py"
    installed.write_text(installed.read_text() + "\n# an older version\n")
    save_settings(server_command=[str(tmp_path / "deleted-venv" / "bin" / "python"), "-m", "clipasso_server"])
    status, lines = doctor(capsys)
    assert status == 1
    assert line(lines, "✗ Inkscape extension: the copy in ").endswith("is not this version's — run clipasso "
                                                                        "install-extension, then restart Inkscape")
    assert line(lines, "✗ server command: ").endswith("that program is gone — run clipasso install-extension again "
                                                      "from the environment that has CLIPasso")
    assert "the Python that starts it" in line(lines, "✗ sketch server at http://127.0.0.1:8765: not running")


def test_the_server_and_the_extension_add_their_checks_through_entry_points():
    from importlib.metadata import entry_points

    assert {entry.value for entry in entry_points(group=DOCTOR_GROUP)} == {
        "clipasso_server.doctor_checks:checks", "inkscape_ext.doctor_checks:checks"}
