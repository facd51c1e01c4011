"""The extension's shared settings file: where it lives, what a broken one means, and that it keeps the token private."""

import json
import os
import stat
import sys
from pathlib import Path

import platformdirs
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inkscape_ext"))

from extension_settings import config_dir, load_settings, save_settings, server_choice, settings_path  # noqa: E402


@pytest.fixture()
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    return tmp_path


def test_the_folder_is_the_one_the_server_reads_its_settings_from(config_home):
    assert config_dir() == Path(platformdirs.user_config_dir("clipasso"))
    assert settings_path().parent == config_dir()


def test_settings_round_trip_and_none_removes_a_key(config_home):
    assert load_settings() == {}
    save_settings(server_url="http://127.0.0.1:9000", token="secret", server_command=["/usr/bin/python3", "-m", "x"])
    save_settings(token=None)
    assert load_settings() == {"server_url": "http://127.0.0.1:9000", "server_command": ["/usr/bin/python3", "-m", "x"]}


def test_the_file_is_private_since_it_may_hold_the_token(config_home):
    path = save_settings(token="secret")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_a_broken_file_means_the_defaults(config_home, content):
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text(content)
    assert load_settings() == {}
    save_settings(token="t")
    assert json.loads(settings_path().read_text()) == {"token": "t"}


SKETCH, REFINE, INSERT = "org.clipasso.sketch", "org.clipasso.refine", "org.clipasso.insert"
DEFAULT = "http://127.0.0.1:8765"


def run_dialog(dialog: str, url: str = DEFAULT, token: str = "") -> tuple:
    """What one dialog run with these Server tab values talks to, remembered as a run does."""
    choice = server_choice(dialog, url, token)
    choice.remember()
    return choice.url, choice.token


def test_a_fresh_dialog_uses_what_install_extension_wrote(config_home):
    assert run_dialog(SKETCH) == (DEFAULT, "")
    save_settings(server_url="http://studio:9000", token="t1")  # clipasso install-extension --server-url --token
    assert run_dialog(SKETCH) == ("http://studio:9000", "t1")
    assert run_dialog(INSERT) == ("http://studio:9000", "t1")


def test_a_change_typed_in_one_dialog_is_not_undone_by_anothers_remembered_value(config_home):
    # Each dialog shows what Inkscape remembered for it: Sketch keeps showing the default URL.
    assert run_dialog(REFINE, "http://gpu:8765") == ("http://gpu:8765", "")
    assert run_dialog(SKETCH, DEFAULT) == ("http://gpu:8765", "")
    assert run_dialog(INSERT, DEFAULT) == ("http://gpu:8765", "")
    # Later Sketch's field is changed; Refine still shows its own old value, which is no change.
    assert run_dialog(SKETCH, "http://other:8765") == ("http://other:8765", "")
    assert run_dialog(REFINE, "http://gpu:8765") == ("http://other:8765", "")
    assert run_dialog(REFINE, "http://gpu:8765") == ("http://other:8765", "")
    # Typing Refine's old value again is a change of Refine's field only after it showed something else.
    assert run_dialog(REFINE, "http://third:1") == ("http://third:1", "")
    assert run_dialog(REFINE, "http://gpu:8765") == ("http://gpu:8765", "")
    assert load_settings()["server_url"] == "http://gpu:8765"


def test_a_token_set_in_one_dialog_and_cleared_in_another(config_home):
    assert run_dialog(INSERT, token="secret") == (DEFAULT, "secret")
    assert run_dialog(SKETCH) == (DEFAULT, "secret")
    assert run_dialog(SKETCH, token="secret") == (DEFAULT, "secret")  # typed the same: no change
    assert run_dialog(SKETCH, token="") == (DEFAULT, "")  # cleared where it was shown: removed for all
    assert run_dialog(INSERT, token="secret") == (DEFAULT, "")  # Insert still shows it: no change
    assert "token" not in load_settings()
    assert "secret" not in settings_path().read_text(), "a dialog's remembered token is kept only as a digest"


def test_an_emptied_url_means_the_default_and_nothing_is_saved_before_remember(config_home):
    save_settings(server_url="http://studio:9000")
    choice = server_choice(SKETCH, "http://typo", "")
    assert choice.url == "http://typo"
    assert load_settings()["server_url"] == "http://studio:9000", "a URL found malformed is never saved"
    assert run_dialog(SKETCH, "") == (DEFAULT, "")
    assert "server_url" not in load_settings()
