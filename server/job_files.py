"""A job as files: the live preview and the result as layered SVG documents (``clipasso sketch``'s format),
the run replayed from its snapshots as an animated SVG (SMIL, no script) or GIF, and the submitted picture
as a PNG (for the live page, which draws the strokes over it).

Routes of an :class:`fastapi.APIRouter`; the app includes it. They read the job store only, so they
work the same whichever worker runs the job. Every file is drawn off the event loop under the heavy-work
limit (:mod:`~clipasso_server.heavy_work`) and, once its job has ended, kept on disk with the job
(:mod:`~clipasso_server.derived_files`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from clipasso_core.animation import animation_gif, animation_svg
from clipasso_core.errors import ImageError
from clipasso_core.image import read_image
from clipasso_core.snapshot import SnapshotHistory
from clipasso_core.svg import sketch_document

from .derived_files import DerivedFiles
from .errors import ApiError
from .heavy_work import run_heavy, run_light
from .job_queue import JobQueue
from .job_status import FINISHED, JobStatus
from .schemas import ErrorResponse, SketchResultBody
from .store import Job, ResultMissing

SVG_TYPE = "image/svg+xml"
GIF_TYPE = "image/gif"
PNG_TYPE = "image/png"
NO_STORE = {"Cache-Control": "no-store"}
"""A running job's files change: browsers must ask again."""
PICTURE_SIDE = 1024
"""Longest side of the picture ``GET /v1/jobs/{id}/image`` sends, in pixels (larger ones are scaled down)."""

router = APIRouter()


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a file route's JSON error answers."""
    descriptions = {
        401: "Missing or wrong bearer token (only when the server was started with --token).",
        404: "No such job.",
        409: "The file does not exist yet (or any more); the error says why.",
        500: "Unexpected server error (details only in the server's log).",
    }
    return {status: {"model": ErrorResponse, "description": descriptions[status]} for status in (*statuses, 401, 500)}


def file_response(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a 200 answer that is a file of ``media_type``."""
    return {200: {"content": {media_type: {"schema": {"type": "string"}}}, "description": description}}


def queue_of(request: Request) -> JobQueue:
    """The app's job queue."""
    return request.app.state.queue


def find_job(queue: JobQueue, job_id: str) -> Job:
    """The job ``job_id`` as every route shows it (:meth:`JobQueue.view`), or a 404 answer."""
    job = queue.store.get(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"There is no job {job_id[:64]!r} on this server.")
    return queue.view(job)


def stored_result(queue: JobQueue, job: Job) -> dict[str, Any]:
    """A succeeded job's result body (from memory while it waits for the store), or a 409 answer saying why
    there is none."""
    if job.status == JobStatus.SUCCEEDED:
        try:
            return queue.result(job)
        except ResultMissing:
            raise ApiError(409, "result_missing", "The result of this job is missing or damaged on the server; "
                                                  "submit the image again to sketch it anew.") from None
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        error = job.error or {"code": f"job_{job.status}", "message": f"The job {job.status}."}
        raise ApiError(409, f"job_{job.status}", error["message"])
    raise ApiError(409, "not_finished", f"The job is {job.status}; poll GET /v1/jobs/{job.id} until it has succeeded.")


def snapshot_history(queue: JobQueue, job: Job) -> SnapshotHistory:
    """The job's stored snapshots, or a 409 answer when it has none (yet, or its file is missing or damaged)."""
    data = queue.store.read_snapshots(job.id)
    try:
        history = None if data is None else SnapshotHistory.from_dict(data)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):  # a damaged file counts as absent
        history = None
    if history is None or history.latest is None:
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            message = (f"The job is {job.status} and has no snapshot yet; the first one comes after its first "
                       "optimisation step.")
        else:
            message = f"The job is {job.status} and its snapshots are missing or damaged on the server."
        raise ApiError(409, "no_snapshot_yet", message)
    return history


def result_document(result: dict[str, Any]) -> str:
    """The layered SVG of a result body: one layer per level, the most detailed one visible."""
    body = SketchResultBody.model_validate(result)
    return sketch_document(body.width, body.height, [level.to_level() for level in body.levels])


async def derived_answer(request: Request, job_id: str, name: str, media_type: str, draw: Callable[[Job], bytes],
                         headers: dict[str, str] | None = None, settled: bool = False) -> Response:
    """Answer with the file ``name`` drawn from job ``job_id`` by ``draw``: off the event loop, under the heavy-work
    limit, and kept on disk once the job has ended and is stored, or at once when it is ``settled`` (it never
    changes): drawn once; a damaged kept file is drawn again."""
    queue = queue_of(request)
    derived: DerivedFiles = request.app.state.derived
    job = await run_light(lambda: find_job(queue, job_id))
    keep = settled or (job.status in FINISHED and queue.saved(job))
    if keep and (kept := await run_light(lambda: derived.read(job.id, name))) is not None:
        return Response(kept, media_type=media_type, headers=headers)
    content = await run_heavy(request, lambda: derived.get(job.id, name, lambda: draw(job)) if keep else draw(job))
    return Response(content, media_type=media_type, headers=headers)


@router.get("/v1/jobs/{job_id}/preview.svg", response_class=Response, responses={
    **file_response(SVG_TYPE, "The current best sketch of every level, one Inkscape layer each."),
    **error_responses(404, 409)}, summary="The job's current best sketch as a layered SVG (while it runs and after)")
async def get_preview(job_id: str, request: Request) -> Response:
    def draw(job: Job) -> bytes:
        latest = snapshot_history(queue_of(request), job).latest
        assert latest is not None
        return sketch_document(latest.width, latest.height, latest.levels).encode()

    return await derived_answer(request, job_id, "preview.svg", SVG_TYPE, draw, NO_STORE)


@router.get("/v1/jobs/{job_id}/result.svg", response_class=Response, responses={
    **file_response(SVG_TYPE, "The result, one Inkscape layer per level, as `clipasso sketch` writes it."),
    **error_responses(404, 409)}, summary="A succeeded job's sketch as a layered SVG file")
async def get_result_svg(job_id: str, request: Request) -> Response:
    def draw(job: Job) -> bytes:
        return result_document(stored_result(queue_of(request), job)).encode()

    return await derived_answer(request, job_id, "result.svg", SVG_TYPE, draw)


@router.get("/v1/jobs/{job_id}/animation.svg", response_class=Response, responses={
    **file_response(SVG_TYPE, "The run replayed with SMIL animation (no script): every level's strokes moving; "
                              "100 % wide, so that a browser fits it into its window."),
    **error_responses(404, 409)}, summary="The job's run replayed as an animated SVG, up to now or to its result")
async def get_animation_svg(job_id: str, request: Request) -> Response:
    def draw(job: Job) -> bytes:
        return animation_svg(snapshot_history(queue_of(request), job).snapshots(), fit_window=True).encode()

    return await derived_answer(request, job_id, "animation.svg", SVG_TYPE, draw, NO_STORE)


@router.get("/v1/jobs/{job_id}/animation.gif", response_class=Response, responses={
    **file_response(GIF_TYPE, "The run replayed as an animated GIF, looping, holding the result."),
    **error_responses(404, 409)}, summary="The job's run replayed as an animated GIF, up to now or to its result")
async def get_animation_gif(job_id: str, request: Request) -> Response:
    def draw(job: Job) -> bytes:
        return animation_gif(snapshot_history(queue_of(request), job).snapshots())

    return await derived_answer(request, job_id, "animation.gif", GIF_TYPE, draw, NO_STORE)


@router.get("/v1/jobs/{job_id}/image", response_class=Response, responses={
    **file_response(PNG_TYPE, "The submitted picture as the sketcher sees it (turned by its EXIF orientation, "
                              f"transparency on white), at most {PICTURE_SIDE} pixels on its longest side."),
    **error_responses(404, 409)}, summary="The job's picture, to show under its strokes")
async def get_image(job_id: str, request: Request) -> Response:
    def draw(job: Job) -> bytes:
        queue = queue_of(request)
        try:
            picture = read_image(queue.store.image_path(job).read_bytes(), request.app.state.config.max_pixels)
        except (OSError, ImageError):
            raise ApiError(409, "image_missing", "The picture of this job is missing or damaged on the server.") from None
        picture.thumbnail((PICTURE_SIDE, PICTURE_SIDE))
        encoded = io.BytesIO()
        picture.save(encoded, format="PNG")
        return encoded.getvalue()

    return await derived_answer(request, job_id, "picture.png", PNG_TYPE, draw,
                                {"Cache-Control": "private, max-age=3600"}, settled=True)
