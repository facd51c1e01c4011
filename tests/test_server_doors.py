"""No door left open: the loopback Host/Origin rule, stalled connections, the request limit, descriptor
exhaustion, malformed HTTP and HEAD, against the real server process over real sockets."""

from __future__ import annotations

import base64
import json
import logging
import os
import resource
import socket
import time
from collections.abc import Iterator

import pytest

from clipasso_server.log_limit import RepeatLimitFilter
from tests.support.server_process import ServerProcess, png_bytes, start_server

READ_TIMEOUT_S = 1
MAX_REQUESTS = 3


@pytest.fixture(scope="module")
def server(tiny_spec, tmp_path_factory) -> Iterator[ServerProcess]:
    extra = ["--read-timeout", str(READ_TIMEOUT_S), "--max-requests", str(MAX_REQUESTS)]
    with start_server(tmp_path_factory.mktemp("doors-data"), tiny_spec, extra_args=extra) as process:
        yield process


def port_of(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


def exchange(server: ServerProcess, request: bytes, timeout: float = 20.0) -> tuple[int, dict, bytes]:
    """Send raw bytes, read until the server closes; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=timeout) as sock:
        sock.sendall(request)
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def get(server: ServerProcess, path: str, headers: dict[str, str], method: str = "GET") -> tuple[int, dict, bytes]:
    lines = [f"{method} {path} HTTP/1.1", *(f"{key}: {value}" for key, value in headers.items()), "Connection: close"]
    return exchange(server, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def assert_json_error(status: int, body: bytes, expected: int, code: str) -> dict:
    assert status == expected, body
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"], error
    return error


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "localhost"])
def test_loopback_host_names_are_served(server, host):
    status, _, _ = get(server, "/v1/health", {"Host": host.format(port=port_of(server))})
    assert status == 200


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "192.168.1.20:{port}", "127.0.0.1.evil.example"])
def test_other_host_names_are_refused_without_a_token(server, host):
    status, _, body = get(server, "/v1/health", {"Host": host.format(port=port_of(server))})
    assert_json_error(status, body, 403, "forbidden_host")


def test_a_rebound_page_cannot_queue_jobs(server):
    status, _, body = exchange(server, (
        f"POST /v1/jobs HTTP/1.1\r\nHost: attacker.example:{port_of(server)}\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nConnection: close\r\n\r\n{}").encode())
    assert_json_error(status, body, 403, "forbidden_host")


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost:1", "https://127.0.0.1:{port}"])
def test_foreign_origins_are_refused(server, origin):
    port = port_of(server)
    status, _, body = get(server, "/v1/health", {"Host": f"127.0.0.1:{port}", "Origin": origin.format(port=port)})
    assert_json_error(status, body, 403, "forbidden_origin")


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:{port}"])
def test_the_servers_own_pages_may_call_it(server, origin):
    port = port_of(server)
    status, _, _ = get(server, "/v1/health", {"Host": f"127.0.0.1:{port}", "Origin": origin.format(port=port)})
    assert status == 200
    body = {"image": base64.b64encode(png_bytes(seed=11)).decode(), "params": {"strokes": [2], "iterations": 1}}
    status, created = server.request("POST", "/v1/jobs", body, headers={"Origin": origin.format(port=port)})
    assert status == 202, created


def test_a_token_server_serves_any_host_name(token_server):
    authorization = f"Bearer {token_server.token}"
    status, _, _ = get(token_server, "/v1/health", {"Host": "sketch.example", "Authorization": authorization})
    assert status == 200
    status, _, body = get(token_server, "/v1/health", {"Host": "sketch.example"})
    assert_json_error(status, body, 401, "unauthorized")


def test_head_works_on_get_routes(server):
    port = port_of(server)
    for path in ("/v1/health", "/openapi.json"):
        status, headers, body = get(server, path, {"Host": f"127.0.0.1:{port}"}, method="HEAD")
        assert status == 200 and body == b""
        assert headers["content-type"].startswith("application/json")
    status, headers, body = get(server, "/v1/jobs/" + "0" * 32, {"Host": f"127.0.0.1:{port}"}, method="HEAD")
    assert status == 404 and body == b""


def test_a_404_does_not_echo_a_long_path(server):
    path = "/" + "a" * 20_000
    status, _, body = get(server, path, {"Host": f"127.0.0.1:{port_of(server)}"})
    error = assert_json_error(status, body, 404, "not_found")
    assert len(error["message"]) < 200


TOO_LONG = {
    "unknown parameter": {"params": {"x" * 20_000: 1}},
    "unknown field": {"y" * 20_000: 1},
    "stroke counts": {"params": {"strokes": "4," + "w" * 20_000}},
    "many unknown parameters": {"params": {f"z{i}": 1 for i in range(2_000)}},
}


@pytest.mark.parametrize("case", TOO_LONG)
def test_a_422_does_not_echo_what_was_sent_at_length(server, case):
    body = {"image": base64.b64encode(png_bytes(30, 20)).decode(), **TOO_LONG[case]}
    status, answer = server.request("POST", "/v1/jobs", body)
    assert status == 422 and set(answer) == {"error"}, answer
    message = answer["error"]["message"]
    assert len(message) < 600, message
    assert not any(letter * 80 in message for letter in "xyw"), message


@pytest.mark.parametrize("request_bytes", [
    b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Line\r\n\r\n",
], ids=["content-length not a number", "two content-lengths", "header without colon"])
def test_malformed_http_gets_a_json_400(server, request_bytes):
    status, headers, body = exchange(server, request_bytes)
    assert headers["content-type"] == "application/json"
    assert_json_error(status, body, 400, "bad_request")


@pytest.mark.parametrize("partial", [
    b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers never finished
    b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"im",
    b"",  # connected, said nothing
], ids=["stalled headers", "stalled body", "silent"])
def test_a_stalled_connection_is_closed_after_the_read_timeout(server, partial):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=READ_TIMEOUT_S * 20) as sock:
        sock.sendall(partial)
        answer = read_until_closed(sock)  # returns only once the server closes the connection
    assert time.monotonic() - started < READ_TIMEOUT_S * 20
    if partial:
        status = int(answer.split()[1])
        assert status == 408 and json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"


def test_more_requests_than_the_limit_get_busy_then_the_server_recovers(server):
    port = port_of(server)
    stalled = []
    try:
        for _ in range(MAX_REQUESTS):  # each request is in progress, waiting for its body
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{")
            stalled.append(sock)
        time.sleep(0.3 * READ_TIMEOUT_S)  # let the server start them
        status, headers, body = get(server, "/v1/health", {"Host": f"127.0.0.1:{port}"})
        assert_json_error(status, body, 503, "busy")
        assert headers["retry-after"] == "1"
        for sock in stalled:
            read_until_closed(sock)  # the read timeout ends them
    finally:
        for sock in stalled:
            sock.close()
    status, _, _ = get(server, "/v1/health", {"Host": f"127.0.0.1:{port}"})
    assert status == 200


@pytest.mark.slow
def test_descriptor_exhaustion_neither_wedges_the_server_nor_floods_its_log(server):
    """The module's server, its descriptor limit lowered for the test and restored afterwards (silent clients
    never reach the request limit: that counts requests, which need a request line)."""
    pid = server.process.pid
    limit = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 20, limit[1]))
    log_before = len(server.output())
    port = port_of(server)
    clients = []
    try:
        for _ in range(120):  # far more than the server has descriptors for; none sends a byte
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        deadline = time.monotonic() + 60
        while True:  # a well-behaved client gets its answer once the stalled ones are timed out
            try:
                status, _, _ = get(server, "/v1/health", {"Host": f"127.0.0.1:{port}"})
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, server.output()[-3000:]
            time.sleep(0.5)
    finally:
        for sock in clients:
            sock.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limit)
    grown = len(server.output()) - log_before
    assert grown < 50_000, server.output()[-3000:]


def test_repeated_warnings_are_limited_and_counted():
    now = [0.0]
    limit = RepeatLimitFilter(burst=3, window_s=10, clock=lambda: now[0])

    def record(message: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("asyncio", level, __file__, 1, message, None, None)

    passed = [limit.filter(record("accept() failed")) for _ in range(1000)]
    assert sum(passed) == 4  # the burst, then one line saying that more are left out
    assert limit.filter(record("a different warning"))
    assert all(limit.filter(record("job queued", logging.INFO)) for _ in range(100))  # information always passes
    now[0] = 11.0
    later = record("accept() failed")
    assert limit.filter(later) and "996 more like this" in later.getMessage()
