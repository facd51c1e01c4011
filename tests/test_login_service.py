"""``clipasso-server service install | uninstall | status``: the systemd user unit for real on this machine
(its ExecStart, run as written, serves /v1/health; ``systemctl --user`` as it is here, and a stand-in for a
desktop session's), and the macOS and Windows files as files."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from clipasso_server import cli
from clipasso_server.service import (LaunchAgent, StartupLauncher, SystemdUnit, install, login_service, status_lines,
                                     uninstall)
from clipasso_server.service_files import (agent_command, launch_agent, launcher_command, systemd_unit, unit_command,
                                           windows_launcher)
from testkit import STEADY_ENV
from testkit.ray_cluster import free_port

PYTHON = sys.executable


@pytest.fixture
def service_cli(monkeypatch, capsys):
    """Runs ``clipasso-server service ARGS`` here with environment variables ``env`` set; (status, out, err)."""
    def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        status = cli.main(["service", *args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


class Recorder:
    """A stand-in for the system's tools: records each command line, answers with ``answers[tool]``."""

    def __init__(self, answers: dict[str, tuple[int, str]] | None = None) -> None:
        self.commands: list[list[str]] = []
        self.answers = answers or {}

    def __call__(self, command):
        self.commands.append(list(command))
        return self.answers.get(command[0], (0, ""))


# -- Linux: systemd user unit -------------------------------------------------------------------
def test_the_unit_starts_this_python_as_written_even_with_spaces_and_percent_signs():
    command = ["/home/a designer/venv 100%/bin/python", "-m", "clipasso_server"]
    unit = systemd_unit(command)
    assert 'ExecStart="/home/a designer/venv 100%%/bin/python" "-m" "clipasso_server"' in unit
    assert "Restart=on-failure" in unit and "WantedBy=default.target" in unit
    assert unit_command(unit) == command


def test_install_status_uninstall_where_systemctl_user_does_not_work(tmp_path, service_cli):
    """This machine has systemctl but no user session bus: the unit is written and the one line to enable it said."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    unit = tmp_path / "config" / "systemd" / "user" / "clipasso-server.service"
    port = free_port()
    (tmp_path / "config" / "clipasso").mkdir(parents=True)
    (tmp_path / "config" / "clipasso" / "server.toml").write_text(f"port = {port}\n")
    status, out, err = service_cli("install", env=env)
    assert status == 0, err
    assert unit_command(unit.read_text()) == [PYTHON, "-m", "clipasso_server"]
    if subprocess.run(["systemctl", "--user", "show-environment"], capture_output=True).returncode == 0:
        pytest.skip("systemctl --user works on this machine")
    assert "in your desktop session, run: systemctl --user enable --now clipasso-server.service" in out
    status, out, _ = service_cli("install", env=env)
    assert status == 0 and "already installed and up to date" in out
    status, out, _ = service_cli("status", env=env)
    assert status == 0 and f"starts {PYTHON} -m clipasso_server" in out
    assert f"Not running: no sketch server answers at http://127.0.0.1:{port}." in out
    status, out, _ = service_cli("uninstall", env=env)
    assert status == 0 and not unit.exists()
    assert list((tmp_path / "config" / "systemd" / "user").iterdir()) == []
    status, out, _ = service_cli("status", env=env)
    assert status == 3 and out.startswith("Not installed")


def test_in_a_desktop_session_install_enables_and_starts_it_and_uninstall_undoes_that(tmp_path):
    tools = Recorder()
    service = SystemdUnit(tmp_path / "systemd" / "user", tools)
    wants = service.folder / "default.target.wants"
    lines = install(service, PYTHON, tmp_path / "server.log")
    assert lines[-1] == "The server runs now and starts at every login."
    assert tools.commands == [["systemctl", "--user", "daemon-reload"],
                              ["systemctl", "--user", "enable", "clipasso-server.service"],
                              ["systemctl", "--user", "restart", "clipasso-server.service"]]
    wants.mkdir()
    (wants / "clipasso-server.service").symlink_to(service.path)  # what `enable` makes
    tools.commands.clear()
    assert uninstall(service) == [f"Removed the systemd user unit {service.path}; the server no longer starts at "
                                  "login."]
    assert tools.commands == [["systemctl", "--user", "disable", "--now", "clipasso-server.service"],
                              ["systemctl", "--user", "daemon-reload"]]
    assert not service.path.exists() and list(wants.iterdir()) == []


def test_the_units_exec_start_run_as_written_serves_health_with_the_settings_of_server_toml(tmp_path, tiny_spec):
    config = tmp_path / "config"
    port = free_port()
    (config / "clipasso").mkdir(parents=True)
    (config / "clipasso" / "server.toml").write_text(
        f'port = {port}\ndata_dir = "{tmp_path / "data"}"\ndevice = "cpu"\n'
        f'loss_model = "{tiny_spec.loss_model}"\nloss_weights = "{tiny_spec.loss_weights}"\n'
        f'saliency_model = "{tiny_spec.saliency_model}"\nsaliency_weights = "{tiny_spec.saliency_weights}"\n')
    service = SystemdUnit(config / "systemd" / "user", Recorder())
    install(service, PYTHON, tmp_path / "unused.log")
    command = unit_command(service.path.read_text())
    server = subprocess.Popen(command, env={**os.environ, **STEADY_ENV, "XDG_CONFIG_HOME": str(config)},
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=5) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server never answered"
                time.sleep(0.2)
        assert any(f"Running: a sketch server answers at http://127.0.0.1:{port}" in line
                   for line in status_lines(service, f"http://127.0.0.1:{port}", None))
    finally:
        server.terminate()
        server.wait(30)


def test_install_refuses_settings_the_server_would_not_start_with(tmp_path, service_cli):
    (tmp_path / "config" / "clipasso").mkdir(parents=True)
    (tmp_path / "config" / "clipasso" / "server.toml").write_text("port = 99999\n")
    status, _, err = service_cli("install", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert status == 2 and "port in" in err and "fix" in err
    assert not (tmp_path / "config" / "systemd" / "user" / "clipasso-server.service").exists()
    (tmp_path / "config" / "clipasso" / "server.toml").write_text("port = 9000\n")
    status, _, err = service_cli("install", env={"XDG_CONFIG_HOME": str(tmp_path / "config"),
                                                 "CLIPASSO_SERVER_TOKEN": "two words"})
    assert status == 2 and "CLIPASSO_SERVER_TOKEN must not contain spaces" in err and "server.toml" not in err
    assert not (tmp_path / "config" / "systemd" / "user" / "clipasso-server.service").exists()


# -- macOS: LaunchAgent, as a file -----------------------------------------------------------------
def test_the_launch_agent_round_trips_and_runs_this_python_at_load_and_after_a_failure(tmp_path):
    command = ["/Users/a designer/venv/bin/python", "-m", "clipasso_server"]
    agent = plistlib.loads(launch_agent(command, "/Users/a designer/Library/server.log"))
    assert agent["Label"] == "org.clipasso.server" and agent["ProgramArguments"] == command
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["StandardOutPath"] == agent["StandardErrorPath"] == "/Users/a designer/Library/server.log"

    tools = Recorder({"launchctl": (0, "")})
    service = LaunchAgent(tmp_path / "LaunchAgents", tools, uid=501)
    install(service, command[0], tmp_path / "server.log")
    assert agent_command(service.path.read_bytes()) == command
    assert tools.commands == [["launchctl", "bootout", "gui/501/org.clipasso.server"],
                              ["launchctl", "bootstrap", "gui/501", str(service.path)]]
    uninstall(service)
    assert not service.path.exists() and tools.commands[-1] == ["launchctl", "bootout", "gui/501/org.clipasso.server"]


# -- Windows: Startup folder launcher, as a file -------------------------------------------------
def test_the_startup_launcher_runs_the_windowless_python_hidden_with_a_log_file(tmp_path):
    python = r"C:\Users\A Designer\venv\Scripts\python.exe"
    tools = Recorder()
    service = StartupLauncher(tmp_path / "Startup", tools)
    install(service, python, Path(r"C:\Users\A Designer\AppData\Local\clipasso\server.log"))
    script = service.path.read_text(encoding="utf-8")
    assert launcher_command(script) == [r"C:\Users\A Designer\venv\Scripts\pythonw.exe", "-m", "clipasso_server",
                                        "--log-file", r"C:\Users\A Designer\AppData\Local\clipasso\server.log"]
    assert script.rstrip().endswith(", 0, False")  # window style 0: hidden; do not wait
    assert subprocess.list2cmdline(launcher_command(script)).replace('"', '""') in script
    assert tools.commands == [["wscript.exe", str(service.path)]]
    assert '.Run "C:\\py\\pythonw.exe -m clipasso_server", 0, False' in windows_launcher(
        ["C:\\py\\pythonw.exe", "-m", "clipasso_server"])  # no spaces: no quotes
    uninstall(service)
    assert list((tmp_path / "Startup").iterdir()) == []


def test_each_platform_gets_its_own_user_level_place(monkeypatch, tmp_path):
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert login_service("win32").path == (tmp_path / "Roaming" / "Microsoft" / "Windows" / "Start Menu" / "Programs"
                                           / "Startup" / "CLIPasso sketch server.vbs")
    assert login_service("linux").path == tmp_path / "xdg" / "systemd" / "user" / "clipasso-server.service"
    assert login_service("darwin").path == Path.home() / "Library" / "LaunchAgents" / "org.clipasso.server.plist"
