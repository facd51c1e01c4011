"""Waves of idle connections (sockets that connect and say nothing) against the real server with its default
timeouts, its descriptor limit lowered as on a machine that allows few open files (macOS starts processes at
256): a request made during the wave is still answered at once, because beyond the connection limit the
oldest idle connection is closed, instead of waiting for the wave to time out."""

from __future__ import annotations

import os
import resource
import socket
import urllib.request

import pytest

from tests.support.server_process import start_server

PROMPT_S = 10.0
"""Far less than the read timeout (30 s) that used to end such a wave; a generous bound on a busy machine."""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_request_is_answered_during_a_wave_of_idle_connections(tiny_spec, tmp_path):
    with start_server(tmp_path / "data", tiny_spec) as server:
        pid = server.process.pid
        limit = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 200, limit[1]))
        host, port = server.url.removeprefix("http://").split(":")
        wave = []
        try:
            for wave_number in range(2):
                for _ in range(150):  # more than the server has descriptors for; none sends a byte
                    wave.append(socket.create_connection((host, int(port)), timeout=5))
                with urllib.request.urlopen(f"{server.url}/v1/health", timeout=PROMPT_S) as answer:
                    assert answer.status == 200, wave_number
        finally:
            for sock in wave:
                sock.close()
        assert "Too many open files" not in server.output(), server.output()[-3000:]
        assert "connections are open, the most this server keeps" in server.output()
