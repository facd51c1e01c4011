"""The extension starts the sketch server when it finds none at a URL of this computer (detached, its output
in a log file, nothing inherited from Inkscape), says in one sentence why when it cannot, and refuses a server
older than the API it needs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.fake_sketch_server import FakeSketchServer

ROOT = Path(__file__).resolve().parents[1]
EXT_DIR = ROOT / "inkscape_ext"
sys.path.insert(0, str(EXT_DIR))

from extension_settings import save_settings  # noqa: E402
from server_start import loopback_address  # noqa: E402
from sketch_client import ServerError, SketchClient  # noqa: E402
from testkit.ray_cluster import free_port


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """Config and data folders of this test (for this process and the ones it starts)."""
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    return tmp_path


def test_a_missing_server_is_started_detached_with_its_log_and_answers(folders, tiny_spec):
    port = free_port()
    save_settings(server_command=[sys.executable, "-m", "clipasso_server"])  # as clipasso install-extension does
    settings = folders / "xdg_config_home" / "clipasso" / "server.toml"
    settings.write_text(f'data_dir = "{folders / "data"}"\ndevice = "cpu"\n'
                        f'loss_model = "{tiny_spec.loss_model}"\nloss_weights = "{tiny_spec.loss_weights}"\n'
                        f'saliency_model = "{tiny_spec.saliency_model}"\n'
                        f'saliency_weights = "{tiny_spec.saliency_weights}"\n')
    poisoned = folders / "inkscape-python" / "clipasso_server"  # what Inkscape's own PYTHONPATH could hold
    poisoned.mkdir(parents=True)
    (poisoned / "__init__.py").write_text("raise SystemExit('the server ran with Inkscape\\'s PYTHONPATH')\n")
    script = (f"import json, sys; sys.path.insert(0, {str(EXT_DIR)!r}); from sketch_client import SketchClient; "
              f"print(json.dumps(SketchClient('http://127.0.0.1:{port}').health()))")
    extension = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": str(poisoned.parent), "OMP_NUM_THREADS": "1"})
    out, err = extension.communicate(timeout=180)  # returns: the server holds none of the extension's streams
    assert extension.returncode == 0, err.decode()
    health = json.loads(out)
    pid = health["workers"][0]["pid"]
    try:
        assert err == b"", err.decode()  # nothing on stderr (no warning either): Inkscape shows no dialog
        assert health["api_version"] == 3
        assert os.getsid(pid) == pid != os.getsid(0)  # a session of its own, apart from Inkscape's
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert command[:3] == [sys.executable.encode(), b"-m", b"clipasso_server"]
        assert b"--exit-when-idle" in command and command[command.index(b"--exit-when-idle") + 1] == b"30"
        log = (folders / "xdg_data_home" / "clipasso" / "server.log").read_text()
        assert "started by the Inkscape extension" in log and f"listening on http://127.0.0.1:{port}" in log
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and b"Z" not in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]:
            assert time.monotonic() < deadline
            time.sleep(0.1)


@pytest.mark.parametrize("case, expected", [
    ("nothing recorded", "the extension does not know how to start one (clipasso install-extension records that)"),
    ("interpreter gone", "the Python that starts it ({gone}) is gone"),
    ("flatpak", "an Inkscape from Flatpak cannot start programs outside its sandbox"),
])
def test_where_it_cannot_start_one_sentence_says_why_and_names_the_login_service(folders, monkeypatch, case,
                                                                                  expected):
    gone = folders / "removed-venv" / "bin" / "python"
    if case == "interpreter gone":
        save_settings(server_command=[str(gone), "-m", "clipasso_server"])
    if case == "flatpak":
        save_settings(server_command=[sys.executable, "-m", "clipasso_server"])
        monkeypatch.setenv("FLATPAK_ID", "org.inkscape.Inkscape")
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerError) as raised:
        SketchClient(url).health()
    message = str(raised.value)
    assert message.startswith(f"No CLIPasso sketch server is running at {url}, and ")
    assert expected.format(gone=gone) in message and "clipasso-server service install" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence


def test_only_a_server_on_this_computer_is_started():
    assert loopback_address("http://127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert loopback_address("http://localhost") == ("localhost", 80)
    assert loopback_address("http://[::1]:9000/") == ("::1", 9000)
    assert loopback_address("http://studio.example.org:8765") is None
    assert loopback_address("http://192.168.1.20:8765") is None


@pytest.mark.parametrize("revision", [None, 1])
def test_a_server_older_than_the_api_the_extension_needs_is_refused_in_one_sentence(revision):
    with FakeSketchServer() as fake:
        fake.api_version = revision
        with pytest.raises(ServerError) as raised:
            SketchClient(fake.url).health()
    message = str(raised.value)
    assert message == (f"The sketch server at {fake.url} is older than this extension (it speaks API revision 1, the "
                       "extension needs 2); update CLIPasso where that server runs and restart it, or reinstall the "
                       "extension that came with it.")


def test_install_extension_records_the_absolute_command_that_starts_this_server(folders, capsys):
    from clipasso_core.cli import main
    from extension_settings import load_settings

    assert main(["install-extension", "--dest", str(folders)]) == 0
    assert load_settings()["server_command"] == [sys.executable, "-m", "clipasso_server"]
    assert Path(sys.executable).is_absolute()
    assert f"({sys.executable} -m clipasso_server)" in capsys.readouterr().out
