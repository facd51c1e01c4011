"""HTTP client of the CLIPasso sketch server API (v1), standard library only.

``open_server`` is the one door of the three dialogs: it reaches the server (every failure to connect
becomes one sentence in ``SketchClient._connection_error``), reads its health and refuses a server whose
models cannot load. When no server answers at a URL of this computer, :meth:`SketchClient.health` starts
one (server_start.py) and waits for it; a server older than the API revision the extension needs is
refused (server_api.py).
"""

import base64
import http.client
import ipaddress
import json
import math
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Tuple, Union

import inkex

from extension_settings import DEFAULT_URL, ServerChoice
from picture_size import picture_size
from server_api import api_problem, models_state
from server_start import CannotStart, launch, loopback_address, start_command, wait_for_answer

REMOTE_HINT = "check the Server URL, or ask whoever runs that server to start it."
LOCAL_HINT = "it may have stopped; run the extension again to start it."
MODEL_PROBLEMS = ("missing", "downloading", "failed")
"""Model states that make a server degraded; callers decide (jobs wait for missing models, fail with failed ones)."""
FINISHED = ("succeeded", "failed", "cancelled")
HEALTH_TIMEOUT_S = 5.0
SUBMIT_TIMEOUT_S = 60.0
POLL_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.5


class ServerError(inkex.AbortExtension):
    """A failed exchange with the sketch server, worded for the designer.

    status is the HTTP status of an API error answer (401, or one with a JSON error body), else None.
    """

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class SketchClient:
    """Talks to one sketch server; every method raises ServerError on failure."""

    def __init__(self, url: str, token: str = ""):
        self.url = server_url(url)
        self.token = token.strip()
        self.max_body_bytes: Optional[int] = None  # the server's upload limits, once health() has read them
        self.max_pixels: Optional[int] = None
        # Never route the loopback server through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def health(self) -> dict:
        """Return the server's health report (version, device, models, queue, limits); note its upload limits.

        No server at a URL of this computer: one is started, and its first answer awaited. A server this
        extension cannot talk to, or one that cannot run jobs for another reason than its models, is a
        ServerError; models that are on their way or failed are for the caller to judge (``models_error``).
        """
        try:
            answer = self._health()
        except _NotRunning as refused:
            answer = self._start_server(refused)
        problem = api_problem(answer, self.url)
        if problem is not None:
            raise ServerError(problem)
        error = answer.get("error")
        if answer.get("status") == "degraded" and models_state(answer) not in MODEL_PROBLEMS:
            message = error.get("message") if isinstance(error, dict) else None
            raise ServerError(f"The sketch server reported an error: {message or 'it cannot run jobs now'}",
                              status=503)
        self.max_body_bytes, self.max_pixels = (
            limit if _whole(limit) and limit > 0 else None
            for limit in (answer.get("max_body_bytes"), answer.get("max_pixels"))
        )
        return answer

    def _health(self) -> dict:
        """GET /v1/health; a degraded server's answer (503) is returned like a healthy one's."""
        return self._request("GET", "/v1/health", timeout=HEALTH_TIMEOUT_S, accept=(503,))

    def _start_server(self, refused: "_NotRunning") -> dict:
        """Start a server at this client's (loopback) URL and return its first health answer."""
        if loopback_address(self.url) is None:
            raise refused
        try:
            process = launch(start_command(self.url), self.token)
            return wait_for_answer(self._health, process, _NotRunning)
        except CannotStart as why:
            raise ServerError(f"No CLIPasso sketch server is running at {self.url}, and {why}.") from None

    def check_upload(self, image: bytes, params: dict, what: str) -> None:
        """ServerError when submitting image (called what, e.g. "The picture of “photo”") would exceed the
        server's upload limits (request size, pixels), as health() read them; nothing is sent."""
        pixels = picture_size(image)
        if self.max_pixels is not None and pixels is not None and pixels[0] * pixels[1] > self.max_pixels:
            raise ServerError(
                f"{what} is {pixels[0]} × {pixels[1]} pixels, more than the sketch server at {self.url} accepts "
                f"({self.max_pixels:,} pixels, its --max-pixels), so nothing was sent; scale the picture down, "
                "or restart the server with a larger --max-pixels."
            )
        size = len(_submit_body(image, params))
        if self.max_body_bytes is not None and size > self.max_body_bytes:
            raise ServerError(
                f"{what} is {_megabytes(size)} to send, more than the sketch server at {self.url} accepts "
                f"({_megabytes(self.max_body_bytes)}, its --max-body-mb), so nothing was sent; scale the picture "
                "down, or restart the server with a larger --max-body-mb."
            )

    def submit(self, image: bytes, params: dict) -> dict:
        """Submit an image file's bytes with sketch params; return {"id", "status"}."""
        data = _submit_body(image, params)
        try:
            answer = self._request("POST", "/v1/jobs", data, timeout=SUBMIT_TIMEOUT_S)
        except _ConnectionCut:
            raise ServerError(
                f"The sketch server at {self.url} closed the connection while receiving a picture of "
                f"{_megabytes(len(data))}, which may be more than it accepts (clipasso-server --max-body-mb); "
                "scale the picture down, or restart the server with a larger --max-body-mb."
            ) from None
        return self._expect(answer, "id")

    def job(self, job_id: str, timeout: float = POLL_TIMEOUT_S) -> dict:
        """Return a job's status, progress and error."""
        return self._expect(self._request("GET", f"/v1/jobs/{_quote(job_id)}", timeout=timeout), "status")

    def result(self, job_id: str, strokes: Optional[List[int]] = None) -> dict:
        """Return a finished job's strokes: {"width", "height", "levels": [...]}, with the stroke counts strokes if given."""
        result = self._request("GET", f"/v1/jobs/{_quote(job_id)}/result", timeout=POLL_TIMEOUT_S)
        problem = result_problem(result, strokes)
        if problem is not None:
            raise ServerError(
                f"The server at {self.url} sent a sketch this extension cannot read ({problem}), so nothing "
                "was inserted; check that it is a CLIPasso sketch server of the same version."
            )
        return result

    def wait(self, job_ids: List[str], deadline: float) -> Dict[str, dict]:
        """Poll the jobs until all are finished or time.monotonic() passes deadline."""
        jobs = {job_id: {"id": job_id, "status": "queued"} for job_id in job_ids}
        while True:
            for job_id in job_ids:
                if jobs[job_id]["status"] not in FINISHED:
                    remaining = deadline - time.monotonic()
                    jobs[job_id] = self.job(job_id, timeout=min(POLL_TIMEOUT_S, max(2.0, remaining)))
            if all(job["status"] in FINISHED for job in jobs.values()):
                return jobs
            if time.monotonic() + POLL_INTERVAL_S > deadline:
                return jobs
            time.sleep(POLL_INTERVAL_S)

    def _expect(self, answer: dict, key: str) -> dict:
        """The answer, checked to carry the string field key."""
        if not isinstance(answer.get(key), str):
            raise self._not_a_server(f"its answer has no {key}")
        return answer

    def _request(self, method: str, path: str, data: Optional[bytes] = None, *, timeout: float,
                 accept: Tuple[int, ...] = ()) -> dict:
        """The JSON object the server answers; an HTTP error status in ``accept`` is answered like a success."""
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            if error.code not in accept:
                raise self._http_error(error) from None
            payload = error.read()
        except urllib.error.URLError as error:
            if data is not None and isinstance(error.reason, _CUT):
                raise _ConnectionCut() from None
            raise self._connection_error(error.reason, timeout) from None
        except (OSError, http.client.HTTPException) as error:
            if data is not None and isinstance(error, _CUT):
                raise _ConnectionCut() from None
            raise self._connection_error(error, timeout) from None
        except (ValueError, UnicodeError) as error:  # a URL that passed server_url but not the socket layer
            raise _bad_url(self.url, str(error)) from None
        try:
            answer = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = None
        if not isinstance(answer, dict):
            raise self._not_a_server("its answer was not JSON")
        return answer

    def _http_error(self, error: urllib.error.HTTPError) -> ServerError:
        message = _error_message(error)
        if error.code == 401:
            return ServerError(
                f"The sketch server at {self.url} refused the request because the token is "
                "missing or wrong; enter the token the server was started with.",
                status=401,
            )
        if message is None:
            return self._not_a_server(f"HTTP {error.code}")
        return ServerError(f"The sketch server reported an error: {message}", status=error.code)

    def _not_a_server(self, why: str) -> ServerError:
        return ServerError(
            f"The program answering at {self.url} is not a CLIPasso sketch server ({why}); "
            "check the server URL."
        )

    def _connection_error(self, reason: object, timeout: float) -> ServerError:
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return ServerError(
                f"The sketch server at {self.url} did not answer within {timeout:g} seconds; "
                "it may be overloaded. Try again, or restart it with clipasso-server."
            )
        hint = LOCAL_HINT if loopback_address(self.url) else REMOTE_HINT
        if isinstance(reason, ConnectionRefusedError):
            return _NotRunning(f"No CLIPasso sketch server is running at {self.url}; {hint}")
        return ServerError(f"Could not reach the sketch server at {self.url} ({reason}); {hint}")


class _NotRunning(ServerError):
    """Nothing listens at the server's address (the connection was refused)."""


def open_server(choice: ServerChoice, work: str = "sketch") -> Tuple["SketchClient", dict]:
    """A client of the chosen server and its health report; ServerError (one sentence) when it cannot ``work``.

    A URL typed into the dialog becomes the shared one once it is seen to be well-formed, even if no server
    answers there yet.
    """
    client = SketchClient(choice.url, choice.token)
    choice.remember()
    health = client.health()
    if health.get("models_error"):
        raise ServerError(f"The sketch server cannot {work}: {health['models_error']}")
    return client, health


_CUT = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _ConnectionCut(Exception):
    """The server closed the connection while a request body was being sent."""


def _submit_body(image: bytes, params: dict) -> bytes:
    """The POST /v1/jobs body for an image file's bytes and sketch params."""
    return json.dumps({"image": base64.b64encode(image).decode("ascii"), "params": params}).encode("utf-8")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.3g} MB"


def progress_text(job: dict) -> str:
    """Describe a job's state for a designer, e.g. "running, iteration 800 of 2000"."""
    status = str(job.get("status", "unknown"))
    progress = job.get("progress")
    if isinstance(progress, dict) and progress.get("total"):
        return f"{status}, iteration {progress.get('iteration', 0)} of {progress['total']}"
    return status


def job_error_text(job: dict) -> str:
    """Return the server's message for a failed or cancelled job."""
    error = job.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return "the job was cancelled" if job.get("status") == "cancelled" else "no reason given"


def _error_message(error: urllib.error.HTTPError) -> Optional[str]:
    """The message of the API's JSON error body, or None when the body is not one."""
    try:
        body = json.loads(error.read().decode("utf-8"))
        return str(body["error"]["message"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"  # SVG's number, ASCII digits only
_PATH_DATA = re.compile(r"[ \t\n\r\f,]*[Mm][MmZzLlHhVvCcSsQqTtAa0-9.eE+\- \t\n\r\f,]*")  # a moveto, then path syntax
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def server_url(url: str) -> str:
    """The server URL without surrounding blanks and trailing slash; ServerError when it is not one.

    A server URL is http(s)://host[:port][/path]: a host name or IP address, a port from 1 to 65535,
    no user name, query or fragment, no blanks or control characters.
    """
    text = url.strip()
    if not text.lower().startswith(("http://", "https://")):
        raise _bad_url(url, "it does not start with http:// or https://")
    if any(ord(c) <= 32 or ord(c) == 127 for c in text):
        raise _bad_url(url, "it contains a blank or a control character")
    try:
        parsed = urllib.parse.urlsplit(text)
        port = parsed.port
    except ValueError:
        raise _bad_url(url, "its host or port cannot be read; a port is a number from 1 to 65535") from None
    host = parsed.hostname or ""
    if "@" in parsed.netloc:
        raise _bad_url(url, "it holds a user name")
    if parsed.query or parsed.fragment or text.endswith(("?", "#")):
        raise _bad_url(url, "it holds a query or fragment")
    if not host:
        raise _bad_url(url, "it names no host")
    if port is not None and not 1 <= port <= 65535 or parsed.netloc.endswith(":"):
        raise _bad_url(url, "its port is not a number from 1 to 65535")
    if not _valid_host(host):
        raise _bad_url(url, f"“{host}” is not a host name or IP address")
    return text.rstrip("/")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(".").split(".")
    return len(ascii_host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def _bad_url(url: str, why: str) -> ServerError:
    return ServerError(
        f"The server URL “{url.strip()[:200]}” is not a web address ({why}); "
        f"enter one like {DEFAULT_URL} as the Server URL."
    )


def result_problem(result: object, strokes: Optional[List[int]] = None) -> Optional[str]:
    """What makes a result unusable (e.g. "stroke 3 of level 2 is not path data …"), or None when it is sound.

    The rules are the server's (its result schema; a test feeds both the same bodies): a positive whole
    width and height and at least one level (one per count of strokes, when given); each level a positive
    whole stroke count, a positive finite pen width, exactly that many strokes, each SVG path data of finite
    numbers starting with a moveto ("M x y C x y x y x y", or a locked path as Refine sent it), and a loss (a
    finite number or null); ``widths`` / ``opacities``, when present, one positive width / one opacity in
    [0, 1] per stroke.
    """
    if not isinstance(result, dict):
        return "it is not an object"
    if not all(_whole(result.get(side)) and result[side] > 0 for side in ("width", "height")):
        return "its width and height are not positive whole numbers"
    levels = result.get("levels")
    if not isinstance(levels, list) or not levels:
        return "it has no levels"
    for number, level in enumerate(levels, start=1):
        problem = _level_problem(level, number)
        if problem is not None:
            return problem
    counts = sorted(level["strokes"] for level in levels)
    if strokes is not None and counts != sorted(strokes):
        return f"its levels have {counts} strokes where {sorted(strokes)} were asked for"
    return None


_STYLES = (("widths", "positive stroke widths", lambda width: width > 0),
           ("opacities", "stroke opacities between 0 and 1", lambda ink: 0 <= ink <= 1))


def _level_problem(level: object, number: int) -> Optional[str]:
    """What makes level ``number`` of a result unusable, or None."""
    if not isinstance(level, dict):
        return f"level {number} is not an object"
    count = level.get("strokes")
    if not (_whole(count) and count > 0):
        return f"level {number} has no positive whole stroke count"
    if not (_number(level.get("stroke_width")) and level["stroke_width"] > 0):
        return f"level {number} has no positive pen width"
    paths = level.get("paths")
    if not isinstance(paths, list) or len(paths) != count:
        return f"level {number} does not hold {count} strokes"
    for index, d in enumerate(paths, start=1):
        if not (isinstance(d, str) and _PATH_DATA.fullmatch(d) and all(map(_finite, re.findall(_NUMBER, d)))):
            return f"stroke {index} of level {number} is not path data (“M x y C x y x y x y”) of finite numbers"
    if "loss" not in level or not (level["loss"] is None or _number(level["loss"])):
        return f"level {number} has no loss (a number or null)"
    for name, what, sound in _STYLES:
        values = level.get(name)
        if values is not None and not (isinstance(values, list) and len(values) == count
                                       and all(_number(value) and sound(value) for value in values)):
            return f"level {number} does not give {count} {what}"
    return None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)


def _finite(value: Union[int, float, str]) -> bool:
    """Whether a number (or a number's text) is finite; an integer too large for a float is not."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _quote(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")
