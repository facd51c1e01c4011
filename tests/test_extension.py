"""The Inkscape extension run as Inkscape runs it (a script on a temp copy) against the REAL sketch server.

The server is ``python -m clipasso_server`` with tiny random-weight models (the ``live_server`` fixture), fed
tiny sketch params through the dialog's own options so that a job takes a second or two.
Its strokes are real CLIPasso strokes: each inserted layer is checked against the server's own result
(fetched through the API with the job id the layer records), mapped through the placement the test works
out independently, and the strokes' document-space bounding box must lie inside the picture's.

A second real server (wanting a token, its loss-model weights file missing) gives real failed jobs,
broken-model reports and token refusals. The fake server (tests/support/fake_sketch_server.py) is only used
for what a real server cannot be made to do on demand: a 500 with a JSON error, and not answering in time.
"""

import base64
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import inkex
import pytest
from lxml import etree

from testkit.ray_cluster import free_port
from tests.support.extension_runs import (
    CLIPASSO_NS,
    INKSCAPE,
    INTERPRETERS,
    PHOTO,
    QUICK,
    QUICK_PARAMS,
    Run,
    assert_aborted,
    assert_near,
    assert_silent_success,
    clip,
    levels,
    linked_project,
    needs_inkscape,
    open_browsers,
    opened_urls,
    png_data_uri,
    run_extension,
    run_inkscape,
    sketch_layers,
    sublayers,
    write_document,
)
from tests.support.server_process import (
    ServerProcess,
    queue_blocked,
    start_server,
    submit_image,
    wait_for_progress,
    wait_for_status,
)






# What the dialog sends when nothing is changed: Automatic, which is Quick look on the test server's CPU.
DIALOG_DEFAULTS = {"strokes": [4, 8, 16, 32], "preset": "quick", "seed": 0}






























def one_image_document(directory: Path, href: Optional[str] = None) -> Path:
    """A document whose layer1 holds one 40×30 image (the embedded photo by default), id "photo", at the origin."""
    return write_document(
        directory,
        '<g id="layer1" inkscape:groupmode="layer">'
        f'<image id="photo" width="40" height="30" xlink:href="{href or png_data_uri()}"/></g>',
    )






def visible_sublayer(layer: inkex.BaseElement) -> inkex.BaseElement:
    (visible,) = [sub for sub in sublayers(layer) if "display:none" not in (sub.get("style") or "")]
    return visible


Box = Tuple[float, float, float, float]  # (left, top, right, bottom)


def strokes_box(sublayer: inkex.BaseElement) -> Box:
    """(left, top, right, bottom) of all stroke geometry in the sublayer, in root user units."""
    boxes = [inkex.Path(p.get("d")).bounding_box() for p in sublayer]
    return (
        min(b.left for b in boxes),
        min(b.top for b in boxes),
        max(b.right for b in boxes),
        max(b.bottom for b in boxes),
    )


# Real strokes start on image content and take a few random-walk and optimisation steps from there,
# so a stroke may poke out of the picture by a pixel or two where its content reaches the border.
MARGIN_PX = 3.0


def picture_box(transform: inkex.Transform, pixels: Tuple[float, float], margin: float = 0.0) -> Box:
    """The document-space bounding box of a W×H bitmap, widened by margin pixels, drawn through transform."""
    width, height = pixels
    corners = [transform.apply_to_point((x, y)) for x in (-margin, width + margin) for y in (-margin, height + margin)]
    return (
        min(c.x for c in corners),
        min(c.y for c in corners),
        max(c.x for c in corners),
        max(c.y for c in corners),
    )




def assert_inside(inner: Box, outer: Box, what: str, tolerance: float = 1e-3) -> None:
    left, top, right, bottom = inner
    assert (
        outer[0] - tolerance <= left
        and outer[1] - tolerance <= top
        and right <= outer[2] + tolerance
        and bottom <= outer[3] + tolerance
    ), f"{what}: strokes {inner} are not inside {outer}"


def server_result(server: ServerProcess, job_id: str) -> dict:
    status, result = server.request("GET", f"/v1/jobs/{job_id}/result")
    assert status == 200, result
    return result


def assert_strokes_are_the_servers(layer: inkex.BaseElement, server: ServerProcess,
                                   transform: inkex.Transform) -> dict:
    """Every level of the server's result for the layer's job is a sublayer whose strokes lie inside the
    picture (document-space boxes; the picture widened by MARGIN_PX) and are the server's pixel-space
    strokes mapped through transform.

    Returns the server's result.
    """
    result = server_result(server, layer.get(clip("job")))
    picture = picture_box(transform, (result["width"], result["height"]), MARGIN_PX)
    levels = {level["strokes"]: level for level in result["levels"]}
    subs = sublayers(layer)
    assert [int(sub.get(clip("strokes"))) for sub in subs] == sorted(levels)
    pen_scale = abs(transform.a * transform.d - transform.b * transform.c) ** 0.5
    for sub in subs:
        level = levels[int(sub.get(clip("strokes")))]
        assert_inside(strokes_box(sub), picture, f"{sub.get('inkscape:label')} over the picture")
        assert len(sub) == len(level["paths"]) == level["strokes"]
        for path, d in zip(sub, level["paths"]):
            inserted = [c for point in inkex.Path(path.get("d")).control_points for c in point]
            expected = [c for point in inkex.Path(d).control_points for c in transform.apply_to_point(point)]
            assert_near(inserted, expected)
            assert float(path.style["stroke-width"]) == pytest.approx(level["stroke_width"] * pen_scale, rel=1e-4)
    return result


def same_job(server: ServerProcess, picture: bytes, params: dict) -> str:
    """The id the server gives an identical submission of picture with params: the id of the job that
    already has that picture and those params (after the server's defaults) while it is queued, running
    or succeeded — so comparing it with a layer's job id shows what the extension sent."""
    body = {"image": base64.b64encode(picture).decode("ascii"), "params": params}
    status, created = server.request("POST", "/v1/jobs", body)
    assert status == 202, created
    return created["id"]




# --------------------------------------------------------------------------------------------
# Sketch: inserted layers and their geometry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_embedded_image_gets_one_layer_per_level_above_its_layer(tmp_path, live_server, interpreter):
    document = write_document(
        tmp_path,
        f"""<g id="layer1" inkscape:groupmode="layer" inkscape:label="Photos">
          <image id="photo" inkscape:label="Cat" x="50" y="40" width="80" height="60" xlink:href="{png_data_uri()}"/>
        </g>""",
    )
    run = run_extension(
        "clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK, *levels(4, 8, 16, 32),
        interpreter=interpreter,
    )  # fmt: skip
    assert_silent_success(run)
    svg = run.svg

    layer = sketch_layers(svg)["photo"]
    assert layer.getparent() is svg and layer.getprevious().get("id") == "layer1"
    assert layer.get("inkscape:groupmode") == "layer"
    assert layer.get("inkscape:label") == "CLIPasso: Cat"
    assert [sub.get("inkscape:label") for sub in sublayers(layer)] == [f"{n} strokes" for n in (4, 8, 16, 32)]
    assert [len(sub) for sub in sublayers(layer)] == [4, 8, 16, 32]
    assert visible_sublayer(layer).get("inkscape:label") == "32 strokes"
    assert all(sub.get("style") == "display:none" for sub in sublayers(layer)[:3])

    params = {**QUICK_PARAMS, "strokes": [4, 8, 16, 32]}
    job_id = layer.get(clip("job"))
    assert same_job(live_server, PHOTO.read_bytes(), params) == job_id, "the server got the photo and the params"
    assert layer.get(clip("server")) == live_server.url
    assert layer.get(clip("server-version")) == live_server.request("GET", "/v1/health")[1]["version"]
    assert json.loads(layer.get(clip("params"))) == params

    ids = svg.xpath("//@id")
    assert len(ids) == len(set(ids)), "ids must stay unique"
    assert not layer.xpath(".//@transform"), "the placement is baked into the path data"
    # 40×30 pixels into an 80×60 box: scale 2, offset (50, 40).
    result = assert_strokes_are_the_servers(layer, live_server, inkex.Transform("translate(50,40) scale(2)"))
    assert (result["width"], result["height"]) == (40, 30)
    pen = 3.0 * 40 / 224 * 2
    for sub in sublayers(layer):
        for path in sub:
            style = path.style
            assert style["fill"] == "none" and style["stroke"] == "#000000"
            assert style["stroke-linecap"] == "round" and style["stroke-linejoin"] == "round"
            assert float(style["stroke-width"]) == pytest.approx(pen, rel=1e-4)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_strokes_follow_nested_rotations_skews_and_flips(tmp_path, live_server, interpreter):
    document = write_document(
        tmp_path,
        f"""<g id="layer1" inkscape:groupmode="layer" inkscape:label="Photos" transform="translate(30,40)">
          <g id="layer1a" inkscape:groupmode="layer" inkscape:label="Sub" transform="rotate(30)">
            <g id="group1" transform="scale(1.5,-1.2)">
              <image id="photo" x="10" y="-70" width="60" height="40" transform="skewX(10)"
                     preserveAspectRatio="none" xlink:href="{png_data_uri()}"/>
            </g>
          </g>
        </g>""",
    )
    # The group is selected, as a click on a grouped image does; the image inside is found.
    run = run_extension(
        "clipasso_sketch.py", document, "--id=group1", f"--url={live_server.url}", *QUICK, interpreter=interpreter
    )
    assert_silent_success(run)
    assert original_part(run.stdout) == original_part(document.read_bytes()), "only layers are added"
    layer = sketch_layers(run.svg)["photo"]
    assert layer.getprevious().get("id") == "layer1", "inserted above the image's top-level layer"

    expected = inkex.Transform(
        "translate(30,40) rotate(30) scale(1.5,-1.2) skewX(10) translate(10,-70) scale(1.5,1.3333333333)"
    )
    assert_strokes_are_the_servers(layer, live_server, expected)
    determinant = abs(expected.a * expected.d - expected.b * expected.c)
    for sub in sublayers(layer):
        assert float(sub[0].style["stroke-width"]) == pytest.approx(3.0 * 40 / 224 * determinant**0.5, rel=1e-4)


ALIGNMENTS = [f"x{x}Y{y}" for x in ("Min", "Mid", "Max") for y in ("Min", "Mid", "Max")]
ASPECT_CASES = ["none", None, "defer xMaxYMin meet"] + [f"{a} {m}" for a in ALIGNMENTS for m in ("meet", "slice")]


def drawn_box(viewport, pixels, preserve_aspect_ratio) -> Box:
    """Where SVG draws a W×H bitmap in viewport (x, y, w, h): (left, top, right, bottom)."""
    x, y, w, h = viewport
    width, height = pixels
    words = (preserve_aspect_ratio or "xMidYMid meet").replace("defer", "").split()
    if words == ["none"]:
        return (x, y, x + w, y + h)
    fraction = {"Min": 0.0, "Mid": 0.5, "Max": 1.0}
    scale = (min if words[1] == "meet" else max)(w / width, h / height)
    left = x + fraction[words[0][1:4]] * (w - width * scale)
    top = y + fraction[words[0][5:8]] * (h - height * scale)
    return (left, top, left + width * scale, top + height * scale)


def test_every_preserve_aspect_ratio_places_strokes_on_the_drawn_picture(tmp_path, live_server):
    uri = png_data_uri()
    images = []
    for number, value in enumerate(ASPECT_CASES):
        # Two viewport shapes so that both axes get letterboxed (meet) or cropped (slice).
        viewport = (10 + number * 3, 20, 120, 40) if number % 2 else (10, 15 + number * 2, 50, 90)
        images.append((f"img{number}", viewport, value))
    document = write_document(
        tmp_path,
        '<g id="layer1" inkscape:groupmode="layer" inkscape:label="Photos">'
        + "".join(
            f'<image id="{image_id}" x="{x}" y="{y}" width="{w}" height="{h}" xlink:href="{uri}"'
            + ("" if value is None else f' preserveAspectRatio="{value}"')
            + "/>"
            for image_id, (x, y, w, h), value in images
        )
        + "</g>",
    )
    # Every image shows the same photo with the same params: the server runs one job for all of them.
    ids = [f"--id={image_id}" for image_id, *_ in images]
    run = run_extension("clipasso_sketch.py", document, *ids, *QUICK, *levels(8), f"--url={live_server.url}")
    assert_silent_success(run)

    layers = sketch_layers(run.svg)
    assert len(layers) == len(ASPECT_CASES)
    for image_id, viewport, value in images:
        left, top, right, bottom = drawn_box(viewport, (40, 30), value)
        scale = ((right - left) / 40, (bottom - top) / 30)
        placement = inkex.Transform(translate=(left, top)) @ inkex.Transform(scale=scale)
        assert_strokes_are_the_servers(layers[image_id], live_server, placement)  # inside the drawn picture
        if value is None or "slice" not in value:  # the whole picture shows, inside the image box
            x, y, w, h = viewport
            assert_inside(strokes_box(visible_sublayer(layers[image_id])), (x, y, x + w, y + h), f"{value} image box")


def test_dialog_params_reach_the_server_and_style_the_strokes(tmp_path, live_server):
    document = one_image_document(tmp_path)
    run = run_extension(
        "clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}/", *levels(4, 16),
        "--quality=custom", "--iterations=3", "--seeds=1", "--seed=7", "--pen_width=2.5", "--color=4278190208",
        "--visible=4", "--tab=server",
    )  # fmt: skip
    assert_silent_success(run)
    layer = sketch_layers(run.svg)["photo"]
    # A pen 2.5 mm wide (the document's units) on a picture 40 px wide placed 40 mm wide: 14 px of 224.
    params = {"strokes": [4, 16], "iterations": 3, "seeds": 1, "seed": 7, "stroke_width": 14.0}
    assert same_job(live_server, PHOTO.read_bytes(), params) == layer.get(clip("job"))
    assert layer.get(clip("server")) == live_server.url, "the URL is recorded without its trailing slash"
    assert layer.get("inkscape:label") == "CLIPasso: photo"
    assert visible_sublayer(layer).get("inkscape:label") == "4 strokes"
    style = sublayers(layer)[0][0].style
    assert style["stroke"] == "#ff0000" and float(style["stroke-opacity"]) == pytest.approx(0.502, abs=1e-3)
    result = assert_strokes_are_the_servers(layer, live_server, inkex.Transform())
    assert [level["stroke_width"] for level in result["levels"]] == pytest.approx([2.5] * 2, rel=1e-4)
    assert [float(path.style["stroke-width"]) for path in layer.xpath(".//svg:path")] == pytest.approx([2.5] * 20)


def test_steer_tab_reaches_the_server_and_each_stroke_keeps_its_width_and_ink(tmp_path, live_server):
    document = one_image_document(tmp_path)
    run = run_extension(
        "clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK, *levels(4),
        "--text=a round cup", "--prompt_strength=strong", "--fidelity=loose", "--optimize_width=true",
        "--optimize_opacity=true", "--color=4278190335", "--tab=steer",
    )  # fmt: skip
    assert_silent_success(run)
    layer = sketch_layers(run.svg)["photo"]
    params = {**QUICK_PARAMS, "strokes": [4], "text": "a round cup", "text_weight": 1.0, "fidelity": "loose",
              "optimize_width": True, "optimize_opacity": True}
    assert same_job(live_server, PHOTO.read_bytes(), params) == layer.get(clip("job"))
    assert json.loads(layer.get(clip("params"))) == params
    (level,) = server_result(live_server, layer.get(clip("job")))["levels"]
    paths = list(sublayers(layer)[0])
    assert [float(p.style["stroke-width"]) for p in paths] == pytest.approx(level["widths"], rel=1e-4)
    assert [float(p.style["stroke-opacity"]) for p in paths] == pytest.approx(level["opacities"], abs=1e-3)
    assert len(set(level["widths"])) > 1


def _mask_rect(params: dict) -> Tuple[float, float, float, float]:
    """(left, top, right, bottom) of the outline of a job's one-shape mask."""
    box = inkex.Path(params["mask"]).bounding_box()
    return (box.left, box.top, box.right, box.bottom)


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_a_shape_selected_over_a_turned_image_masks_its_sketch(tmp_path, live_server, interpreter):
    # 40 × 30 pixels drawn as 80 × 60 at (50, 40), the layer turned 90°: the pixel rectangle (10, 5)-(30, 20)
    # is the document rectangle drawn below, in the turned layer's own coordinates.
    document = write_document(
        tmp_path,
        f"""<g id="layer1" inkscape:groupmode="layer" transform="rotate(90)">
          <image id="photo" x="50" y="40" width="80" height="60" xlink:href="{png_data_uri()}"/>
          <rect id="shape" x="70" y="50" width="40" height="30" style="fill:none;stroke:red"/>
          <path id="open" d="M 50 40 L 60 60" style="fill:none;stroke:blue"/>
        </g>""",
    )
    run = run_extension("clipasso_sketch.py", document, "--id=photo", "--id=shape", "--id=open",
                        f"--url={live_server.url}", *QUICK, interpreter=interpreter)
    assert_silent_success(run)
    layer = sketch_layers(run.svg)["photo"]
    params = json.loads(layer.get(clip("params")))
    assert_near(_mask_rect(params), (10, 5, 30, 20), 1e-6)
    assert same_job(live_server, PHOTO.read_bytes(), params) == layer.get(clip("job"))
    assert {key: value for key, value in params.items() if key != "mask"} == QUICK_PARAMS


def test_an_images_clip_path_masks_its_sketch(tmp_path, live_server):
    document = write_document(
        tmp_path,
        f"""<defs><clipPath id="clip1"><ellipse cx="20" cy="15" rx="12" ry="9"/></clipPath></defs>
        <g id="layer1" inkscape:groupmode="layer">
          <image id="photo" width="40" height="30" clip-path="url(#clip1)" xlink:href="{png_data_uri()}"/>
        </g>""",
    )
    run = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK)
    assert_silent_success(run)
    params = json.loads(sketch_layers(run.svg)["photo"].get(clip("params")))
    assert_near(_mask_rect(params), (8, 6, 32, 24), 1e-3)  # inkex draws the ellipse with cubic arcs


def test_a_shape_over_no_selected_image_is_refused_by_name(tmp_path, live_server):
    document = write_document(
        tmp_path,
        f"""<g id="layer1" inkscape:groupmode="layer">
          <image id="photo" width="40" height="30" xlink:href="{png_data_uri()}"/>
          <circle id="far" inkscape:label="Lid" cx="200" cy="150" r="10"/>
        </g>""",
    )
    run = run_extension("clipasso_sketch.py", document, "--id=photo", "--id=far", f"--url={live_server.url}", *QUICK)
    assert_aborted(run, "The shape “Lid” lies over none of the selected images")


@pytest.mark.parametrize("rebase_links", [True, False], ids=["rebased-temp-copy", "saved-file-as-is"])
def test_linked_file_relative_to_the_saved_document(tmp_path, live_server, rebase_links):
    document = linked_project(tmp_path)
    run = run_extension(
        "clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK, rebase_links=rebase_links
    )
    assert_silent_success(run)
    layer = sketch_layers(run.svg)["photo"]
    assert same_job(live_server, PHOTO.read_bytes(), QUICK_PARAMS) == layer.get(clip("job")), "the linked file was sent"
    assert layer.getprevious().get("id") == "layer2" and layer.getnext().get("id") == "layer3"
    assert layer.get("inkscape:label") == "CLIPasso: Cat photo"
    assert_strokes_are_the_servers(layer, live_server, inkex.Transform(LINKED_PHOTO_TRANSFORM))


def picture_file(path: Path, size: Tuple[int, int], image_format: str) -> bytes:
    """Write a picture of size (a dark disc and a bar on white, away from the borders); return its bytes."""
    from PIL import Image, ImageDraw  # the tests may use Pillow; the extension may not

    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.25, height * 0.25, width * 0.55, height * 0.75), fill=(20, 20, 60))
    draw.rectangle((width * 0.65, height * 0.25, width * 0.72, height * 0.75), fill=(60, 60, 160))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, quality=90)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_linked_file_url_jpeg_and_absref_fallback(tmp_path, live_server):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    jpeg = picture_file(pictures / "wide photo.jpg", (64, 32), "JPEG")
    shutil.copy(PHOTO, pictures / "moved.png")
    url = (pictures / "wide photo.jpg").as_uri()
    document = write_document(
        tmp_path,
        f"""<g id="layer1" inkscape:groupmode="layer">
          <image id="jpeg" x="0" y="0" width="64" height="32" xlink:href="{url}"/>
          <image id="moved" x="100" y="0" width="40" height="30" xlink:href="old/place.png"
                 sodipodi:absref="{pictures / 'moved.png'}"/>
          <image id="encoded" x="0" y="100" width="64" height="32" xlink:href="pictures/wide%20photo.jpg"/>
        </g>""",
    )
    ids = ("--id=jpeg", "--id=moved", "--id=encoded")
    run = run_extension("clipasso_sketch.py", document, *ids, *QUICK, f"--url={live_server.url}")
    assert_silent_success(run)
    layers = sketch_layers(run.svg)
    jobs = {image_id: layer.get(clip("job")) for image_id, layer in layers.items()}
    assert same_job(live_server, jpeg, QUICK_PARAMS) == jobs["jpeg"] == jobs["encoded"], "one file, one job"
    assert same_job(live_server, PHOTO.read_bytes(), QUICK_PARAMS) == jobs["moved"]
    placed = {"jpeg": ((0, 0), (64, 32)), "encoded": ((0, 100), (64, 32)), "moved": ((100, 0), (40, 30))}
    for image_id, (origin, size) in placed.items():
        result = assert_strokes_are_the_servers(layers[image_id], live_server, inkex.Transform(translate=origin))
        assert (result["width"], result["height"]) == size


# --------------------------------------------------------------------------------------------
# Sketch: every error leaves the document alone and says what to do
# --------------------------------------------------------------------------------------------

BROKEN_TOKEN = "right-token"


class BrokenServer:
    """A second real server: it wants the token BROKEN_TOKEN, and the file named as its loss-model
    weights does not exist, so every job fails with the model loader's message — and once one has,
    /v1/health reports that message as models_error too."""

    def __init__(self, data_dir: Path, models) -> None:
        self.missing_weights = data_dir.parent / "deleted" / "tiny-rn.pt"
        self.server = start_server(data_dir, replace(models, loss_weights=self.missing_weights), token=BROKEN_TOKEN)

    def _models_error(self) -> Optional[str]:
        status, health = self.server.request("GET", "/v1/health")
        assert status == (200 if health["models_error"] is None else 503), health  # failed models: degraded
        return health["models_error"]

    def untried(self) -> ServerProcess:
        """The server before any job tried to load the models (restarted if one did)."""
        if self._models_error() is not None:
            self.server = self.server.restart()
        return self.server

    def failed_job(self) -> dict:
        """The state of a job that failed on the server (which since reports the models error)."""
        status, job = submit_image(self.server, PHOTO.read_bytes())
        assert status == 202, job
        state = wait_for_status(self.server, job["id"])
        assert state["status"] == "failed" and self._models_error() is not None
        return state


@pytest.fixture(scope="module")
def broken_server(tiny_spec, tmp_path_factory) -> Iterator[BrokenServer]:
    broken = BrokenServer(tmp_path_factory.mktemp("broken-server") / "data", tiny_spec)
    try:
        yield broken
    finally:
        broken.server.stop()


# case: (setup, dialog options, message fragments). setup["server"] says which server the URL names:
# "live" (the default: the real server; the errors before any request must not depend on it),
# "closed" (a port nobody listens on), "broken" (BrokenServer; "untried": before any job tried its
# models, "failed": after one did), "fake" (for a 500 with a JSON error, or a malformed result).
TOKEN = f"--token={BROKEN_TOKEN}"
ERROR_CASES = {
    "nothing selected": ({}, [], ["Nothing is selected"]),
    "no image in selection": ({}, ["--id=rect1"], ["contains no image"]),
    "linked file missing": ({"href": "gone.png"}, ["--id=photo"], ["gone.png", "not found"]),
    "link to a folder": ({"href": "pictures"}, ["--id=photo"], ["links to the folder", "pictures, not a picture file"]),
    "relative link, never saved": ({"href": "photo.png", "document_path": ""}, ["--id=photo"], ["never saved"]),
    "svg data uri": ({"href": "data:image/svg+xml;base64,PHN2Zy8+"}, ["--id=photo"], ["not a raster"]),
    "damaged base64": ({"href": "data:image/png;base64,iVBORw0K!!"}, ["--id=photo"], ["cannot be decoded"]),
    "not a raster file": ({"href": "notes.txt"}, ["--id=photo"], ["notes.txt", "not a PNG, JPEG, WebP, GIF or TIFF"]),
    "bad stroke counts": ({}, ["--id=photo", "--other_strokes=4,eight"], ["“4,eight”", "like 2, 64"]),
    "no level ticked": ({}, ["--id=photo", *levels()], ["No level is ticked"]),
    "visible level not sketched": ({}, ["--id=photo", "--visible=16"], ["level left visible (16 strokes)"]),
    "pen wider than the sketcher draws": ({}, ["--id=photo", "--pen_width=10"], ["too wide for “photo”", "at most 8.93"]),
    "url without scheme": ({"url": "localhost:8765"}, ["--id=photo"], ["not a web address"]),
    "url with a broken IPv6 host": ({"url": "http://[::1:8765"}, ["--id=photo"], ["not a web address", "as the Server URL"]),
    "url with a port out of range": ({"url": "http://127.0.0.1:87650"}, ["--id=photo"], ["not a web address", "65535"]),
    "url with an empty host label": ({"url": "http://a..b:8765"}, ["--id=photo"], ["“a..b” is not a host name"]),
    "server not running": (
        {"server": "closed"}, ["--id=photo"], ["No CLIPasso sketch server is running at", "clipasso-server"]
    ),
    "picture the server refuses": (
        {"href": png_data_uri(PHOTO.read_bytes()[:150])}, ["--id=photo"],
        ["The sketch server reported an error", "damaged or truncated"],
    ),
    "no token": ({"server": "broken"}, ["--id=photo"], ["token is missing or wrong"]),
    "wrong token": ({"server": "broken"}, ["--id=photo", "--token=wrong"], ["token is missing or wrong"]),
    "job failed": (
        {"server": "broken, untried"}, ["--id=photo", TOKEN],
        ["The sketch of “photo” failed on the server", "tiny-rn.pt", "does not exist"],
    ),
    "models broken": (
        {"server": "broken, failed"}, ["--id=photo", TOKEN],
        ["The sketch server cannot sketch", "tiny-rn.pt", "does not exist"],
    ),
    "server error": ({"server": "fake", "fake": {"error_message": "CUDA out of memory"}}, ["--id=photo"],
                     ["CUDA out of memory"]),
    "malformed result": (
        {"server": "fake", "fake": {"result": {"width": 40, "height": 30, "levels": [
            {"strokes": 2, "stroke_width": 3.0, "paths": ["M 1 2 C 3 4 5 6 7 8", "M 1 2 x"], "loss": 0.5}]}}},
        ["--id=photo"], ["cannot read (stroke 2 of level 1 is not path data", "nothing was inserted"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", ERROR_CASES)
def test_errors_abort_with_a_message_and_no_document(tmp_path, request, case):
    setup, args, fragments = ERROR_CASES[case]
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "pictures").mkdir()
    shutil.copy(PHOTO, tmp_path / "photo.png")
    document = one_image_document(tmp_path, setup.get("href"))
    before = document.read_bytes()
    server = setup.get("server", "live")
    if server == "live":
        url = request.getfixturevalue("live_server").url
    elif server == "closed":
        url = f"http://127.0.0.1:{free_port()}"
    elif server == "fake":
        fake = request.getfixturevalue("sketch_server")
        for key, value in setup["fake"].items():
            setattr(fake, key, value)
        url = fake.url
    else:
        broken = request.getfixturevalue("broken_server")
        if server == "broken, failed":
            broken.failed_job()
        url = broken.untried().url if server == "broken, untried" else broken.server.url
    url = setup.get("url", url)
    document_path = setup.get("document_path")
    run = run_extension(
        "clipasso_sketch.py", document, *QUICK, *args, f"--url={url}",
        document_path=document_path, rebase_links=document_path is None,  # an unsaved document has no base
    )  # fmt: skip
    assert_aborted(run, *fragments)
    assert document.read_bytes() == before


def test_unanswering_server_times_out_with_a_message(tmp_path, sketch_server):
    sketch_server.response_delay = 8  # the fake: a real server cannot be made to hang on demand
    document = one_image_document(tmp_path)
    run = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={sketch_server.url}")
    assert_aborted(run, "did not answer within")


def test_other_web_server_is_not_mistaken_for_the_sketch_server(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        document = one_image_document(tmp_path)
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        run = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={url}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert_aborted(run, "is not a CLIPasso sketch server")


def noise_png(side: int) -> bytes:
    """A side × side PNG of random colours: about 3 × side² bytes, as PNG cannot compress noise."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(3 * side * side)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def small_limits_server(tiny_spec, tmp_path_factory) -> Iterator[ServerProcess]:
    """A real server that accepts request bodies of at most 1 MB and pictures of at most 2 million pixels."""
    limits = ["--max-body-mb", "1", "--max-pixels", "2000000"]
    with start_server(tmp_path_factory.mktemp("small-limits"), tiny_spec, extra_args=limits) as server:
        yield server


def test_picture_over_the_servers_upload_limit_is_called_too_large(tmp_path, small_limits_server):
    picture = tmp_path / "big.png"
    picture.write_bytes(noise_png(1000))  # 3 MB, 4 MB in base64
    document = one_image_document(tmp_path, "big.png")
    before = document.read_bytes()
    run = run_extension("clipasso_sketch.py", document, "--id=photo", *QUICK, f"--url={small_limits_server.url}")
    assert_aborted(run, "The picture of “photo” is 4.0", " MB to send, more than the sketch server at",
                   "accepts (1 MB, its --max-body-mb), so nothing was sent")
    assert document.read_bytes() == before
    assert small_limits_server.request("GET", "/v1/health")[1]["queue_length"] == 0


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "GIF", "TIFF"])
def test_picture_over_the_servers_pixel_limit_is_called_too_large(tmp_path, small_limits_server, image_format):
    from PIL import Image

    picture = tmp_path / f"wide.{image_format.lower()}"
    Image.new("RGB", (2001, 1000), (200, 180, 20)).save(picture, format=image_format)  # a few kB, 2,001,000 pixels
    document = one_image_document(tmp_path, picture.name)
    run = run_extension("clipasso_sketch.py", document, "--id=photo", *QUICK, f"--url={small_limits_server.url}")
    assert_aborted(run, "The picture of “photo” is 2001 × 1000 pixels, more than the sketch server at",
                   "accepts (2,000,000 pixels, its --max-pixels), so nothing was sent")


def test_uploads_are_checked_against_the_limit_before_any_is_sent(tmp_path, sketch_server):
    (tmp_path / "small.png").write_bytes(PHOTO.read_bytes())
    (tmp_path / "big.png").write_bytes(noise_png(40))  # about 5 kB, 6.4 kB in base64
    document = write_document(
        tmp_path,
        '<g id="layer1" inkscape:groupmode="layer"><image id="small" width="40" height="30" xlink:href="small.png"/>'
        '<image id="big" y="40" width="40" height="40" xlink:href="big.png"/></g>',
    )
    sketch_server.max_body_bytes = 4000
    run = run_extension("clipasso_sketch.py", document, "--id=small", "--id=big", f"--url={sketch_server.url}")
    assert_aborted(run, "The picture of “big” is 0.00", "(0.004 MB, its --max-body-mb), so nothing was sent")
    assert [method for method, _, _ in sketch_server.requests] == ["GET"], "only /v1/health was asked"


def test_connection_cut_during_an_upload_says_it_may_be_too_large(tmp_path, sketch_server):
    sketch_server.cut_above = 10_000  # a server that does not say its limit and hangs up on larger bodies
    (tmp_path / "big.png").write_bytes(noise_png(1000))
    document = one_image_document(tmp_path, "big.png")
    run = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={sketch_server.url}")
    assert_aborted(run, "closed the connection while receiving a picture of 4.0",
                   "which may be more than it accepts (clipasso-server --max-body-mb); scale the picture down")


# --------------------------------------------------------------------------------------------
# Jobs that outlive the wait: a placeholder layer now, Update waiting sketches fills it later
# --------------------------------------------------------------------------------------------

UPDATE_MENU = "Extensions → CLIPasso → Update waiting sketches"


def original_part(svg_bytes: bytes) -> bytes:
    """The document in canonical form without inserted sketch layers and clipasso:* attributes."""
    root = etree.fromstring(svg_bytes)
    for layer in root.xpath("//*[@clipasso:source]", namespaces={"clipasso": CLIPASSO_NS}):
        layer.getparent().remove(layer)
    for element in root.iter():
        for name in [n for n in element.attrib if n.startswith(f"{{{CLIPASSO_NS}}}")]:
            del element.attrib[name]
    etree.cleanup_namespaces(root)
    return etree.tostring(root, method="c14n")


def placeholders(svg: inkex.SvgDocumentElement) -> List[inkex.BaseElement]:
    """The document's layers that wait for the strokes of a running job."""
    return svg.xpath("//svg:g[@clipasso:placeholder='true']", namespaces={**inkex.NSS, "clipasso": CLIPASSO_NS})


def noted_job(svg: inkex.SvgDocumentElement) -> Optional[str]:
    """The job id of the document's one waiting note (a placeholder, or an earlier version's note on an image)."""
    notes = placeholders(svg) + svg.xpath("//svg:image[@clipasso:job]", namespaces={**inkex.NSS, "clipasso": CLIPASSO_NS})
    assert len(notes) <= 1, notes
    return notes[0].get(clip("job")) if notes else None


def assert_waiting_layer(svg: inkex.SvgDocumentElement, image_id: str, label: str) -> inkex.BaseElement:
    """The image's sketch layer holds just a visible, empty placeholder naming the image and the Update menu."""
    layer = sketch_layers(svg)[image_id]
    (placeholder,) = sublayers(layer)
    assert placeholder.get("inkscape:label") == f"{label}: sketching… ({UPDATE_MENU})"
    assert "display:none" not in (placeholder.get("style") or "") and len(placeholder) == 0
    assert placeholders(svg) == [placeholder]
    return layer


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_slow_job_waits_in_a_placeholder_then_update_fills_it(tmp_path, live_server, interpreter):
    body = f"""<g id="layer1" inkscape:groupmode="layer" inkscape:label="Photos" transform="translate(5, 0)">
      <g id="group1" transform="rotate(90) translate(0 -200)" style="opacity:0.9">
        <image id="photo" x="50" y="40" width="80" height="60" xlink:href="{png_data_uri()}"/>
      </g>
    </g>"""
    document = write_document(tmp_path, body)
    seed = 100 + list(INTERPRETERS).index(interpreter)  # a job of its own: no finished one to reuse
    noted = tmp_path / "noted.svg"
    with queue_blocked(live_server) as release:  # the job waits in the queue behind a long one
        run = run_extension(
            "clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK, f"--seed={seed}",
            "--wait=1", "--visible=8", "--color=16711935", interpreter=interpreter,
        )  # fmt: skip
        assert run.returncode == 0
        assert run.stderr.count("\n") == 1 and UPDATE_MENU in run.stderr
        assert "Still sketching after 1 s: “photo” (queued). The layer “CLIPasso: photo” waits" in run.stderr
        assert original_part(run.stdout) == original_part(document.read_bytes()), "the layer is the only change"
        waiting = assert_waiting_layer(run.svg, "photo", "photo")
        assert waiting.getprevious().get("id") == "layer1", "where the strokes will go"
        job_id = noted_job(run.svg)
        assert placeholders(run.svg)[0].get(clip("server")) == live_server.url
        assert same_job(live_server, PHOTO.read_bytes(), {**QUICK_PARAMS, "seed": seed}) == job_id

        noted.write_bytes(run.stdout)
        still_waiting = run_extension("clipasso_insert.py", noted, interpreter=interpreter)
        assert_aborted(still_waiting, "“photo” is not finished yet (queued)")
        release()
        assert wait_for_status(live_server, job_id)["status"] == "succeeded"

    inserted = run_extension("clipasso_insert.py", noted, interpreter=interpreter)
    assert_silent_success(inserted)
    svg = inserted.svg
    assert noted_job(svg) is None and not placeholders(svg), "the placeholder is gone"
    layer = sketch_layers(svg)["photo"]
    assert layer.get("id") == waiting.get("id") and layer.get("inkscape:label") == "CLIPasso: photo", "filled in place"
    assert original_part(inserted.stdout) == original_part(document.read_bytes()), "only layers are added"
    assert layer.get(clip("job")) == job_id and layer.getprevious().get("id") == "layer1"
    assert [sub.get("inkscape:label") for sub in sublayers(layer)] == ["4 strokes", "8 strokes"]
    assert visible_sublayer(layer).get("inkscape:label") == "8 strokes"
    assert sublayers(layer)[0][0].style["stroke"] == "#00ff00"
    placement = inkex.Transform("translate(5,0) rotate(90) translate(0,-200) translate(50,40) scale(2)")
    assert_strokes_are_the_servers(layer, live_server, placement)


def test_live_view_opens_the_jobs_page_then_waits_as_before(tmp_path, live_server):
    document = one_image_document(tmp_path)
    run = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK, "--seed=301")
    assert_silent_success(run)
    job_id = sketch_layers(run.svg)["photo"].get(clip("job"))
    assert opened_urls(document, 1) == [f"{live_server.url}/jobs/{job_id}"]
    status, page = live_server.request("GET", f"/jobs/{job_id}")
    assert status == 200 and f'data-job="{job_id}"' in page

    (tmp_path / "off").mkdir()
    document = one_image_document(tmp_path / "off")
    run = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK, "--seed=302",
                        "--live_view=false")  # fmt: skip
    assert_silent_success(run)
    assert sketch_layers(run.svg)["photo"] is not None and opened_urls(document) == []


def test_dont_wait_leaves_only_a_placeholder_and_update_fills_it(tmp_path, live_server):
    document = one_image_document(tmp_path)
    with queue_blocked(live_server) as release:  # waiting (300 s by default) would outlast the test
        run = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK,
                            "--seed=303", "--dont_wait=true")  # fmt: skip
        assert_silent_success(run)
        assert original_part(run.stdout) == original_part(document.read_bytes()), "the layer is the only change"
        assert_waiting_layer(run.svg, "photo", "photo")
        job_id = noted_job(run.svg)
        assert job_id and opened_urls(document, 1) == [f"{live_server.url}/jobs/{job_id}"]
        release()
    assert wait_for_status(live_server, job_id)["status"] == "succeeded"
    noted = tmp_path / "noted.svg"
    noted.write_bytes(run.stdout)
    inserted = run_extension("clipasso_insert.py", noted)
    assert_silent_success(inserted)
    layer = sketch_layers(inserted.svg)["photo"]
    assert layer.get(clip("job")) == job_id and noted_job(inserted.svg) is None
    assert [sub.get("inkscape:label") for sub in sublayers(layer)] == ["4 strokes", "8 strokes"]


def test_the_untouched_dialog_asks_for_the_servers_recommended_quality_and_says_so_on_the_layer(tmp_path, live_server):
    document = one_image_document(tmp_path)
    with queue_blocked(live_server):
        run = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", "--dont_wait=true")
        assert_silent_success(run)
        job_id = noted_job(run.svg)
        try:
            layer = sketch_layers(run.svg)["photo"]
            assert json.loads(layer.get(clip("params"))) == DIALOG_DEFAULTS
            assert same_job(live_server, PHOTO.read_bytes(), DIALOG_DEFAULTS) == job_id
            assert layer.get(clip("preset")) == "quick"
            (description,) = layer.xpath("svg:desc")
            assert description.text.startswith("Quality: Quick look. Levels: 4, 8, 16, 32 strokes.")
        finally:
            live_server.request("DELETE", f"/v1/jobs/{job_id}")


def test_a_second_sketch_of_an_image_gets_its_own_layer_name_and_settings(tmp_path, live_server):
    document = one_image_document(tmp_path)
    first = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK, "--seed=305")
    assert_silent_success(first)
    document.write_bytes(first.stdout)
    second = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *QUICK,
                           *levels(4), "--seed=306",
                           "--quality=custom", "--text=a cup", "--fidelity=precise")
    assert_silent_success(second)
    layers = second.svg.xpath("//svg:g[@clipasso:source='photo']", namespaces={**inkex.NSS, "clipasso": CLIPASSO_NS})
    assert [layer.get("inkscape:label") for layer in layers] == ["CLIPasso: photo (2)", "CLIPasso: photo"]
    newest = layers[0]
    assert json.loads(newest.get(clip("params")))["seed"] == 306 and newest.get(clip("preset")) == "custom"
    assert newest.xpath("svg:desc")[0].text == (
        "Quality: custom, 5 steps, 1 attempt per level. Levels: 4 strokes. Pen: 3 px on the optimizer's canvas. "
        "Seed: 306. Prompt: “a cup” (weight 0.1). Fidelity: closer to the picture.")


def test_job_cancelled_from_its_page_ends_the_sketch_with_one_sentence(tmp_path, live_server):
    document = one_image_document(tmp_path)
    runs: List[Run] = []
    waiting = threading.Thread(target=lambda: runs.append(run_extension(
        "clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *levels(4, 8), "--seeds=1",
        "--quality=custom", "--iterations=100000", "--seed=304", "--wait=100")))  # fmt: skip
    waiting.start()
    try:
        deadline = time.monotonic() + 60
        while not opened_urls(document) and time.monotonic() < deadline:
            time.sleep(0.1)
        (url,) = opened_urls(document)
        job_id = url.rsplit("/", 1)[1]
    finally:
        for url in opened_urls(document):  # as the page's Cancel button does
            live_server.request("DELETE", f"/v1/jobs/{url.rsplit('/', 1)[1]}")
        waiting.join(120)
    (run,) = runs
    assert_aborted(run, "The sketch of “photo” was cancelled on the server")
    assert run.stderr.strip().count("\n") == 0 and run.stderr.strip().endswith("nothing was inserted.")
    assert wait_for_status(live_server, job_id)["status"] == "cancelled"


def test_running_job_reports_progress_then_a_cancelled_one_loses_its_placeholder(tmp_path, live_server):
    document = one_image_document(tmp_path)
    noted = tmp_path / "noted.svg"
    sketch = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={live_server.url}", *levels(4, 8),
                           "--quality=custom", "--seeds=1", "--iterations=100000", "--wait=0", "--live_view=false")
    assert sketch.returncode == 0 and UPDATE_MENU in sketch.stderr
    job_id = noted_job(sketch.svg)
    try:
        noted.write_bytes(sketch.stdout)
        wait_for_progress(live_server, job_id)
        running = run_extension("clipasso_insert.py", noted)
        assert_aborted(running, "“photo” is not finished yet (running, iteration ")
        assert re.search(r"running, iteration [1-9][0-9]* of 100000\)", running.stderr)
    finally:
        live_server.request("DELETE", f"/v1/jobs/{job_id}")
    assert wait_for_status(live_server, job_id)["status"] == "cancelled"

    run = run_extension("clipasso_insert.py", noted)
    assert run.returncode == 0
    assert "“photo” cancelled on the server (The job was cancelled.)" in run.stderr
    assert "waiting note was removed" in run.stderr
    assert noted_job(run.svg) is None
    assert not sketch_layers(run.svg), "the empty layer goes with its placeholder"


def test_insert_of_a_failed_job_removes_its_note_and_says_so(tmp_path, broken_server):
    failed = broken_server.failed_job()  # a job submitted by a Sketch run whose wait ran out, say
    document = write_document(
        tmp_path,
        f"""<g id="layer1" inkscape:groupmode="layer">
          <image id="photo" xmlns:clipasso="{CLIPASSO_NS}" clipasso:job="{failed['id']}"
                 clipasso:server="{broken_server.server.url}" width="40" height="30" xlink:href="{png_data_uri()}"/>
        </g>""",
    )
    url = f"--url={broken_server.server.url}"
    assert_aborted(run_extension("clipasso_insert.py", document, "--id=photo", url), "token is missing or wrong")
    run = run_extension("clipasso_insert.py", document, "--id=photo", url, TOKEN)
    assert run.returncode == 0
    assert f"“photo” failed on the server ({failed['error']['message']})" in run.stderr
    assert "does not exist" in run.stderr and "note was removed" in run.stderr
    assert noted_job(run.svg) is None
    assert not sketch_layers(run.svg)


def test_the_server_and_token_typed_in_one_dialog_serve_the_others(tmp_path, broken_server):
    server = broken_server.untried()
    document = one_image_document(tmp_path)
    sketch = run_extension("clipasso_sketch.py", document, "--id=photo", f"--url={server.url}", TOKEN, *QUICK,
                           "--seed=307", "--dont_wait=true", "--live_view=false")
    assert_silent_success(sketch)
    job_id = noted_job(sketch.svg)
    assert wait_for_status(server, job_id)["status"] == "failed"
    noted = tmp_path / "noted.svg"
    noted.write_bytes(sketch.stdout)
    update = run_extension("clipasso_insert.py", noted)  # its own Server tab still shows the default URL, no token
    assert update.returncode == 0, update.stderr
    assert "The sketch of “photo” failed on the server" in update.stderr, "the shared server got the shared token"
    assert noted_job(update.svg) is None


def noted_document(directory: Path, notes: Dict[str, Tuple[str, str]]) -> Path:
    """A document with one embedded photo per note {image id: (job id, server URL)}."""
    images = "".join(
        f'<image id="{image}" xmlns:clipasso="{CLIPASSO_NS}" clipasso:job="{job}" clipasso:server="{server}" '
        f'y="{40 * number}" width="40" height="30" xlink:href="{png_data_uri()}"/>'
        for number, (image, (job, server)) in enumerate(notes.items())
    )
    return write_document(directory, f'<g id="layer1" inkscape:groupmode="layer">{images}</g>')


def test_insert_sends_the_token_only_to_the_server_the_dialog_names(tmp_path, broken_server, sketch_server):
    failed = broken_server.failed_job()
    port = broken_server.server.url.rsplit(":", 1)[1]
    # A shared document: one note names the designer's server (as "localhost", the same loopback
    # server), the other a stranger's server, which must not collect the token.
    document = noted_document(tmp_path, {"photo": (failed["id"], f"http://localhost:{port}/"),
                                         "bait": ("job-1", sketch_server.url)})
    run = run_extension("clipasso_insert.py", document, f"--url={broken_server.server.url}", TOKEN)
    assert run.returncode == 0, run.stderr
    assert "“photo” failed on the server" in run.stderr, "the dialog's server got the token"
    assert "no longer knows the sketch job of “bait”" in run.stderr, "the other server was asked, without it"
    assert sketch_server.requests and all(auth is None for _, _, auth in sketch_server.requests)
    assert not run.svg.xpath("//svg:image[@clipasso:job]", namespaces={**inkex.NSS, "clipasso": CLIPASSO_NS})


def test_insert_keeps_the_token_from_a_server_the_dialog_does_not_name(tmp_path, broken_server, live_server):
    failed = broken_server.failed_job()
    document = noted_document(tmp_path, {"photo": (failed["id"], broken_server.server.url)})
    before = document.read_bytes()
    run = run_extension("clipasso_insert.py", document, f"--url={live_server.url}", TOKEN)
    assert_aborted(run, "“photo” was left waiting: its job is on the server at", f"not the one the dialogs use "
                   f"({live_server.url}), so your token was not sent to it; to insert it, enter "
                   f"{broken_server.server.url} as the Server URL.")
    assert document.read_bytes() == before


def test_insert_skips_a_note_that_names_no_server_url(tmp_path, live_server):
    document = noted_document(tmp_path, {"photo": ("job-1", "file:///etc/passwd"), "other": ("gone", live_server.url)})
    run = run_extension("clipasso_insert.py", document, f"--url={live_server.url}")
    assert run.returncode == 0 and "Traceback" not in run.stderr
    assert "“photo” was left waiting: its note names “file:///etc/passwd”, which is not a server URL." in run.stderr
    assert "no longer knows the sketch job of “other”" in run.stderr


def test_insert_goes_on_past_a_server_that_does_not_answer(tmp_path, live_server):
    gone = f"http://127.0.0.1:{free_port()}"
    document = noted_document(tmp_path, {"photo": ("job-1", gone), "other": ("gone", live_server.url)})
    run = run_extension("clipasso_insert.py", document, f"--url={live_server.url}")
    assert run.returncode == 0 and "Traceback" not in run.stderr
    assert f"“photo” was left waiting: its server did not answer. No CLIPasso sketch server is running at {gone}" \
        in run.stderr
    assert "no longer knows the sketch job of “other”" in run.stderr, "the other server's note was still handled"
    notes = {image.get("id"): image.get(clip("job")) for image in run.svg.xpath("//svg:image")}
    assert notes == {"photo": "job-1", "other": None}, "only the unanswered server's note stays"


def test_insert_with_a_malformed_server_url_says_so(tmp_path, live_server):
    document = noted_document(tmp_path, {"photo": ("job-1", live_server.url)})
    assert_aborted(run_extension("clipasso_insert.py", document, "--url=http://127.0.0.1:8765:1"),
                   "The server URL “http://127.0.0.1:8765:1” is not a web address", "as the Server URL.")


def test_insert_of_a_job_the_server_forgot_removes_its_note(tmp_path, live_server):
    document = write_document(
        tmp_path,
        f"""<g id="layer1" inkscape:groupmode="layer">
          <image id="photo" xmlns:clipasso="{CLIPASSO_NS}" clipasso:job="gone" clipasso:server="{live_server.url}"
                 xlink:href="{png_data_uri()}"/>
        </g>""",
    )
    run = run_extension("clipasso_insert.py", document)
    assert run.returncode == 0 and "no longer knows" in run.stderr
    assert noted_job(run.svg) is None


def test_insert_without_pending_jobs_says_so(tmp_path):
    document = one_image_document(tmp_path)
    assert_aborted(run_extension("clipasso_insert.py", document), "No sketch is waiting")
    assert_aborted(run_extension("clipasso_insert.py", document, "--id=photo"), "No sketch is waiting")


# --------------------------------------------------------------------------------------------
# The real Inkscape binary
# --------------------------------------------------------------------------------------------















def quick_sketch_prefs(url: str, seed: int) -> dict[str, str]:
    """Inkscape preferences for a quick Sketch run (levels 4 and 8, 5 steps, one attempt) on ``url``."""
    prefs = {"url": url, "quality": "custom", "level_16": "false", "level_32": "false", "iterations": "5", "seeds": "1",
             "seed": str(seed)}
    return {f"org.clipasso.sketch.{name}": value for name, value in prefs.items()}


LINKED_PHOTO_TRANSFORM = "translate(12,-8) rotate(-15,80,70) scale(1.25) translate(20,30) scale(2)"


@needs_inkscape
def test_real_inkscape_runs_the_installed_sketch(tmp_path, live_server, browsers_ended):
    prefs = quick_sketch_prefs(live_server.url, seed=201)  # a job of its own, which Inkscape waits for
    svg = run_inkscape(tmp_path, linked_project(tmp_path), "select-by-id:photo;org.clipasso.sketch.noprefs", prefs)
    layer = sketch_layers(svg)["photo"]
    assert layer.get("inkscape:label") == "CLIPasso: Cat photo"
    assert layer.getprevious().get("id") == "layer2"
    assert [sub.get("inkscape:label") for sub in sublayers(layer)] == ["4 strokes", "8 strokes"]
    assert visible_sublayer(layer).get("inkscape:label") == "8 strokes"
    assert same_job(live_server, PHOTO.read_bytes(), {**QUICK_PARAMS, "seed": 201}) == layer.get(clip("job"))
    assert opened_urls(tmp_path, 1) == [f"{live_server.url}/jobs/{layer.get(clip('job'))}"]
    # The browser was started detached: Inkscape ended while it still ran, and nothing reached stderr (run_inkscape).
    assert len(open_browsers(tmp_path)) == 1, "Inkscape waited for the browser to close"
    assert_strokes_are_the_servers(layer, live_server, inkex.Transform(LINKED_PHOTO_TRANSFORM))


@needs_inkscape
def test_real_inkscape_runs_the_sketch_from_a_checkout(tmp_path, live_server, browsers_ended):
    """An extensions folder pointing at the repository finds the top-level clipasso.inx and its scripts."""
    prefs = quick_sketch_prefs(live_server.url, seed=211)
    svg = run_inkscape(tmp_path, linked_project(tmp_path), "select-by-id:photo;org.clipasso.sketch.noprefs", prefs,
                       from_checkout=True)
    layer = sketch_layers(svg)["photo"]
    assert [sub.get("inkscape:label") for sub in sublayers(layer)] == ["4 strokes", "8 strokes"]
    assert same_job(live_server, PHOTO.read_bytes(), {**QUICK_PARAMS, "seed": 211}) == layer.get(clip("job"))



@needs_inkscape
def test_real_inkscape_sketches_without_waiting_then_updates_the_waiting_layer(tmp_path, live_server, browsers_ended):
    document = linked_project(tmp_path)
    prefs = {**quick_sketch_prefs(live_server.url, seed=202), "org.clipasso.sketch.dont_wait": "true"}
    (tmp_path / "sketch").mkdir()
    with queue_blocked(live_server) as release:
        svg = run_inkscape(tmp_path / "sketch", document, "select-by-id:photo;org.clipasso.sketch.noprefs", prefs)
        assert_waiting_layer(svg, "photo", "Cat photo")
        job_id = noted_job(svg)
        assert opened_urls(tmp_path / "sketch", 1) == [f"{live_server.url}/jobs/{job_id}"]
        release()
        assert wait_for_status(live_server, job_id)["status"] == "succeeded"
    document.write_bytes(svg.tostring())
    (tmp_path / "update").mkdir()
    svg = run_inkscape(tmp_path / "update", document, "org.clipasso.insert.noprefs", {})  # nothing selected: all
    assert noted_job(svg) is None
    layer = sketch_layers(svg)["photo"]
    assert layer.get(clip("job")) == job_id and layer.get("inkscape:label") == "CLIPasso: Cat photo"
    assert [sub.get("inkscape:label") for sub in sublayers(layer)] == ["4 strokes", "8 strokes"]
    assert_strokes_are_the_servers(layer, live_server, inkex.Transform(LINKED_PHOTO_TRANSFORM))


def _red_is_on_top(picture) -> bool:
    """Whether the red half of a picture lies above (rather than left of) its other half."""
    import numpy as np

    pixels = np.asarray(picture.convert("RGB"), dtype=float)
    red = np.argwhere((pixels[..., 0] > 180) & (pixels[..., 2] < 90))
    row, col = red.mean(axis=0) / np.array(pixels.shape[:2])
    return bool(row < col)


@pytest.mark.skipif(not INKSCAPE, reason="needs the inkscape program")
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF"])
def test_the_server_sees_an_exif_turned_picture_as_inkscape_shows_it(tmp_path, fmt):
    from PIL import Image

    from clipasso_core.image import read_image
    from inkscape_ext.image_source import without_png_exif

    stored = Image.new("RGB", (60, 30), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 30, 30))  # red left; tag 6 shows it turned a quarter clockwise: red on top
    exif = Image.Exif()
    exif[0x0112] = 6
    picture = tmp_path / f"turned.{fmt.lower()}"
    stored.save(picture, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    document = tmp_path / "turned.svg"
    document.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="60" '
        f'height="60"><image xlink:href="{picture.name}" width="60" height="60" preserveAspectRatio="none"/></svg>'
    )
    shown = tmp_path / "shown.png"
    subprocess.run([INKSCAPE, "--export-type=png", f"--export-filename={shown}", str(document)],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    sent = without_png_exif(picture.read_bytes())  # what Sketch… uploads
    assert _red_is_on_top(read_image(sent)) == _red_is_on_top(Image.open(shown))
