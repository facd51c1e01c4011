"""HTTP client of the CLIPasso sketch server API (v1), standard library only."""

import base64
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional

import inkex

DEFAULT_URL = "http://127.0.0.1:8765"
START_HINT = "Start it with the command clipasso-server, then run the extension again."
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
        parsed = urllib.parse.urlparse(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ServerError(
                f"The server URL “{url}” is not a web address; "
                f"enter one like {DEFAULT_URL} in the Server tab."
            )
        self.url = url.strip().rstrip("/")
        self.token = token.strip()
        # Never route the loopback server through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def health(self) -> dict:
        """Return the server's health report (version, device, models, queue)."""
        return self._request("GET", "/v1/health", timeout=HEALTH_TIMEOUT_S)

    def submit(self, image: bytes, params: dict) -> dict:
        """Submit an image file's bytes with sketch params; return {"id", "status"}."""
        body = {"image": base64.b64encode(image).decode("ascii"), "params": params}
        return self._expect(self._request("POST", "/v1/jobs", body, timeout=SUBMIT_TIMEOUT_S), "id")

    def job(self, job_id: str, timeout: float = POLL_TIMEOUT_S) -> dict:
        """Return a job's status, progress and error."""
        return self._expect(self._request("GET", f"/v1/jobs/{_quote(job_id)}", timeout=timeout), "status")

    def result(self, job_id: str) -> dict:
        """Return a finished job's strokes: {"width", "height", "levels": [...]}."""
        result = self._request("GET", f"/v1/jobs/{_quote(job_id)}/result", timeout=POLL_TIMEOUT_S)
        if not _is_result(result):
            raise ServerError(
                f"The server at {self.url} sent a sketch this extension cannot read; "
                "check that it is a CLIPasso sketch server of the same version."
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

    def _request(self, method: str, path: str, body: Optional[dict] = None, *, timeout: float) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
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
            raise self._http_error(error) from None
        except urllib.error.URLError as error:
            raise self._connection_error(error.reason, timeout) from None
        except (OSError, http.client.HTTPException) as error:
            raise self._connection_error(error, timeout) from None
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
        if isinstance(reason, ConnectionRefusedError):
            return ServerError(f"No CLIPasso sketch server is running at {self.url}. {START_HINT}")
        return ServerError(f"Could not reach the sketch server at {self.url} ({reason}). {START_HINT}")


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


def _is_result(result: dict) -> bool:
    levels = result.get("levels")
    return (
        isinstance(result.get("width"), (int, float))
        and isinstance(result.get("height"), (int, float))
        and result["width"] > 0
        and result["height"] > 0
        and isinstance(levels, list)
        and bool(levels)
        and all(
            isinstance(level, dict)
            and isinstance(level.get("strokes"), int)
            and isinstance(level.get("stroke_width"), (int, float))
            and isinstance(level.get("paths"), list)
            and all(isinstance(d, str) for d in level["paths"])
            for level in levels
        )
    )


def _quote(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")
