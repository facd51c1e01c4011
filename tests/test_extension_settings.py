"""The extension's shared settings file: where it lives, what a broken one means, and that it keeps the token private."""

import json
import os
import stat
import sys
from pathlib import Path

import platformdirs
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inkscape_ext"))

from extension_settings import config_dir, load_settings, save_settings, settings_path  # noqa: E402


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
