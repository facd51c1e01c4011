"""``server.toml``: clipasso-server's options from a file in the user's config folder, the command line winning,
one clear sentence for a bad file, and ``--print-config`` saying what is in force and where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipasso_server import cli


@pytest.fixture
def settings(monkeypatch, tmp_path):
    """Write ``server.toml`` (its text) in a config folder of this test; returns the file's path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(cli, "setup_logging", lambda access_log: None)
    path = tmp_path / "config" / "clipasso" / "server.toml"
    path.parent.mkdir(parents=True)

    def write(text: str) -> Path:
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def served(monkeypatch):
    """The options ``serve`` was called with (it is not run)."""
    calls = []
    monkeypatch.setattr(cli, "serve", lambda args: calls.append(args) or 0)
    return calls


def test_the_file_sets_options_and_the_command_line_wins(settings, served, tmp_path):
    settings('port = 9123\nhost = "localhost"\nunload_after = 2.5\naccess_log = true\n'
             'loss_weights = "~/weights/rn101.pt"\nprecision = "fp32"\n')
    assert cli.main([]) == 0
    args = served[-1]
    assert (args.port, args.host, args.unload_after, args.access_log, args.precision) == (9123, "localhost", 2.5,
                                                                                          True, "fp32")
    assert args.loss_weights == Path.home() / "weights" / "rn101.pt"
    assert cli.main(["--port", "9200", "--unload-after", "0"]) == 0
    assert (served[-1].port, served[-1].unload_after, served[-1].host) == (9200, 0.0, "localhost")


def test_print_config_says_what_is_in_force_and_where_it_came_from(settings, served, capsys, monkeypatch):
    path = settings('port = 9123\ntoken = "from-the-file"\n')
    monkeypatch.setenv("CLIPASSO_SERVER_TOKEN", "from-the-environment")
    assert cli.main(["--print-config", "--unload-after", "3"]) == 0
    assert served == []  # it only prints
    lines = capsys.readouterr().out.splitlines()
    assert f"port = 9123  # {path}" in lines
    assert "unload_after = 3.0  # command line" in lines
    assert "host = \"127.0.0.1\"  # default" in lines
    assert "# token is set (not shown)  # environment (CLIPASSO_SERVER_TOKEN)" in lines
    assert not any("from-the" in line for line in lines)


def test_the_environment_token_beats_the_file_and_the_file_beats_the_default(settings, served, monkeypatch):
    settings('token = "file-token"\n')
    assert cli.main([]) == 0 and served[-1].token == "file-token"
    monkeypatch.setenv("CLIPASSO_SERVER_TOKEN", "env-token")
    assert cli.main([]) == 0 and served[-1].token == "env-token"
    assert cli.main(["--token", "flag-token"]) == 0 and served[-1].token == "flag-token"


@pytest.mark.parametrize("text, expected", [
    ("prot = 9000\n", "unknown setting 'prot'; the settings are access_log, data_dir"),
    ('port = "9000"\n', "port must be a whole number, not \"9000\""),
    ("preload = 1\n", "preload must be true or false, not 1"),
    ('precision = "fp8"\n', "precision must be one of auto, fp32, bf16, fp16, not \"fp8\""),
    ("unload_after = true\n", "unload_after must be a number, not true"),
    ("port = 70000\n", "port in {path} must be between 0 and 65535, got 70000"),
    ("unload_after = -1\n", "unload_after in {path} must be a number of minutes from 0"),
    ("port = [\n", "is not valid TOML"),
])
def test_a_bad_file_is_one_sentence_naming_the_file_the_key_and_what_is_allowed(settings, served, capsys, text,
                                                                                 expected):
    path = settings(text)
    assert cli.main([]) == 2 and served == []
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and str(path) in err
    assert expected.format(path=path) in err


def test_without_a_file_the_defaults_hold(settings, served):
    assert cli.main([]) == 0
    assert (served[-1].port, served[-1].unload_after, served[-1].exit_when_idle) == (8765, 10.0, 0.0)


def test_a_bad_token_from_the_environment_is_named_as_its_variable(settings, served, capsys, monkeypatch):
    path = settings("port = 9123\n")
    monkeypatch.setenv("CLIPASSO_SERVER_TOKEN", "two words")
    assert cli.main([]) == 2 and served == []
    err = capsys.readouterr().err
    assert "CLIPASSO_SERVER_TOKEN must not contain spaces" in err and str(path) not in err
