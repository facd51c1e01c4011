"""``clipasso-server --ray``'s options and messages, without starting a Ray cluster (default test run)."""

from __future__ import annotations

import sys

import pytest

from clipasso_server import cli
from clipasso_server.ray_backend import RayBackendError, worker_plan

pytestmark = pytest.mark.usefixtures("keep_pytest_logging")  # main() runs in this process here


def test_without_ray_installed_ray_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    status = cli.main(["--ray", "auto", "--ray-workers", "2", "--data-dir", str(tmp_path)])
    error = capsys.readouterr().err
    assert status == cli.EXIT_ERROR
    assert "pip install 'clipasso-inkscape[ray]'" in error and "Traceback" not in error
    assert error.count("\n") == 1


@pytest.mark.parametrize("argv, mentions", [
    (["--ray-workers", "2"], "--ray-workers needs --ray"),
    (["--ray", "auto", "--ray-workers", "0"], "--ray-workers must be between 1 and 1024"),
    (["--ray", " "], "--ray needs the address"),
])
def test_bad_ray_options_are_usage_errors(capsys, argv, mentions):
    assert cli.main(argv) == cli.EXIT_USAGE
    assert mentions in capsys.readouterr().err


def test_one_worker_per_gpu_unless_told_and_cpu_workers_only_when_asked():
    assert worker_plan(None, 4.0) == (4, 1)
    assert worker_plan(2, 4.0) == (2, 1)
    assert worker_plan(3, 0.0) == (3, 0)
    with pytest.raises(RayBackendError, match="--ray-workers N"):
        worker_plan(None, 0.0)


def test_an_address_where_nothing_listens_is_a_one_line_error(capsys, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    from testkit.ray_cluster import free_port

    status = cli.main(["--ray", f"127.0.0.1:{free_port()}", "--ray-workers", "1", "--data-dir", str(tmp_path)])
    error = capsys.readouterr().err
    assert status == cli.EXIT_ERROR and "cannot reach the Ray cluster at '127.0.0.1:" in error
    assert error.count("\n") == 1
