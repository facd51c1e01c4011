"""Property-based fuzzing of the sketch server's OpenAPI document with schemathesis (run with ``-m fuzz``).

Each operation gets up to 50 generated requests that fit its schema (and the job submission up to 50 that
do not), sent to the real server process; no answer may be a 5xx, and every answer must match the status
codes, content types, headers and schemas that the OpenAPI document declares (and schema-breaking requests
must be refused). A last run sends real images with generated parameters to the app in this process, with
no worker, so that accepted submissions are checked too without running the optimizer.
"""

from __future__ import annotations

import base64

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_headers_conformance, response_schema_conformance,
                                               status_code_conformance)

from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from tests.support.server_process import png_bytes

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 50
OPERATIONS = [
    ("GET", "/v1/health"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
    ("GET", "/v1/jobs/{job_id}/result"),
    ("DELETE", "/v1/jobs/{job_id}"),
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("method, path, mode", [
    *((method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS),
    # Only the body has a schema that a request can break (any string is a job id that may not exist).
    ("POST", "/v1/jobs", GenerationMode.NEGATIVE),
])
def test_every_generated_request_is_answered_as_documented(live_server, method, path, mode):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    operation = schema[path][method]
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        case.call_and_validate(base_url=live_server.url, checks=checks)

    check()
    status, health = live_server.request("GET", "/v1/health")
    assert status == 200 and health["version"], "the server survived the fuzzing"


def test_generated_params_with_a_real_image_are_queued_or_refused_as_documented(tmp_path, tiny_spec):
    """Valid images with generated params reach the job store; the app runs in-process without its worker."""
    app = create_app(ServerConfig(data_dir=tmp_path / "data", models=tiny_spec))
    queue = app.state.queue

    async def without_worker(scope, receive, send):  # answers the lifespan itself, so no job ever runs
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            if message["type"] == "lifespan.shutdown":
                return

    images = [base64.b64encode(png_bytes(20 + k, 16, seed=k, image_format=f)).decode()
              for k, f in enumerate(("PNG", "JPEG", "WEBP"))]
    loopback = {"Host": "127.0.0.1"}  # without a token the server answers only loopback Host names
    operation = schemathesis.openapi.from_asgi("/openapi.json", without_worker, headers=loopback)["/v1/jobs"]["POST"]
    statuses = []

    def with_image(case):
        if isinstance(case.body, dict):
            case.body["image"] = images[len(statuses) % len(images)]
        return case

    @given(case=operation.as_strategy().map(with_image))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        statuses.append(case.call_and_validate(checks=CHECKS, headers=loopback).status_code)

    check()
    assert 202 in statuses, statuses
    assert queue.store.count("queued") == queue.store.count() >= 1
