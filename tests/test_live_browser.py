"""The live page in a real headless Chromium against the real sketch server (tiny models).

Strokes appear and move on the page over the job's picture (a toggle hides it) while a job runs, with the
job's settings and without loss figures; a waiting job tells its place in the queue; Cancel on the page
cancels the job; a finished job says how long it took, replays the run within the window and links its
files; and with a server token the page asks for it once and never puts it in a URL.
Needs Chromium (``chromium`` on PATH, or ``$CHROMIUM``) and playwright's Python package
(``pip install -e '.[browser]'``); no ``playwright install`` — the system Chromium is driven directly.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator

import pytest

from tests.support.server_process import FAST_PARAMS, ServerProcess, png_bytes, start_server, submit_image, wait_for_status
from tests.support.stand_in_hub import StandInHub
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser

LONG = {"strokes": [2, 4], "seeds": 1, "iterations": 100_000, "augmentations": 0, "eval_interval": 2}
TOKEN = "browser-test-token-7f3a"
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[browser]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tiny_spec, tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("browser-data"), tiny_spec) as process:
        yield process


class Watched:
    """A browser page with every request URL and every console error it produced."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.urls: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.urls.append(request.url))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def requests_of(self, url: str) -> list[int]:
        """Where ``url`` comes among the requests so far (the page's events arrive while it is waited on)."""
        self.page.wait_for_timeout(50)
        return [index for index, requested in enumerate(self.urls) if requested == url]

    def paths_per_level(self) -> dict[str, int]:
        return self.page.eval_on_selector_all(
            "figure.level", "figures => Object.fromEntries(figures.map(f => "
                            "[f.dataset.strokes, f.querySelectorAll('svg path').length]))")

    def first_path(self) -> str:
        return self.page.get_attribute("figure.level svg path", "d") or ""

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser) -> Iterator[Watched]:
    view = Watched(browser)
    yield view
    view.close()


def csp_violations(errors: list[str]) -> list[str]:
    return [error for error in errors if "Content Security Policy" in error or "Refused to" in error]


def test_strokes_appear_and_move_while_the_job_runs_and_cancel_stops_it(server, watched):
    _, job = submit_image(server, png_bytes(64, 48, seed=11), **LONG)
    page = watched.page
    page.goto(f"{server.url}/jobs/{job['id']}")
    page.wait_for_function("() => document.querySelectorAll('figure.level svg path').length >= 6", timeout=WAIT_MS)
    assert watched.paths_per_level() == {"2": 2, "4": 4}
    assert page.text_content("#status") == "running"
    first = watched.first_path()
    page.wait_for_function("d => document.querySelector('figure.level svg path').getAttribute('d') !== d",
                           arg=first, timeout=WAIT_MS)
    page.wait_for_function("() => document.querySelector('#steps').textContent.startsWith('step ')", timeout=WAIT_MS)
    page.wait_for_function("() => document.querySelector('#eta').textContent.includes('left')", timeout=WAIT_MS)
    assert page.text_content("#settings") == "Quality: custom · 2, 4 strokes · 1 attempt per level · 100000 steps · seed 0"
    assert page.text_content("#elapsed").endswith("so far")
    assert [page.text_content(f"figure.level[data-strokes='{n}'] figcaption") for n in (2, 4)] == ["2 strokes", "4 strokes"]
    assert not re.search(r"loss|\d\.\d{3}", page.inner_text("main")), "no raw loss figures on the page"

    # The picture lies under the strokes of every level, as big as the drawing; the toggle hides it.
    page.wait_for_function("() => document.querySelectorAll('figure.level svg image.picture').length === 2",
                           timeout=WAIT_MS)
    assert page.get_attribute("figure.level svg image.picture", "width") == "64"
    assert page.get_attribute("figure.level svg image.picture", "href").startswith("blob:")
    assert page.is_visible("figure.level svg image.picture")
    page.uncheck("#show-picture")
    assert page.is_hidden("figure.level svg image.picture")
    page.check("#show-picture")
    assert page.is_visible("figure.level svg image.picture")

    page.click("#cancel")
    state = wait_for_status(server, job["id"], timeout=60)
    assert state["status"] == "cancelled"
    page.wait_for_function("() => document.querySelector('#status').textContent === 'cancelled'", timeout=WAIT_MS)
    assert page.is_hidden("#cancel") and page.is_hidden("#links")
    assert csp_violations(watched.errors) == [], watched.errors


def test_a_waiting_job_tells_its_place_in_the_queue(server, watched):
    _, running = submit_image(server, png_bytes(64, 48, seed=14), **LONG)
    _, waiting = submit_image(server, png_bytes(64, 48, seed=15), **{**LONG, "preset": "balanced"})
    try:
        page = watched.page
        page.goto(f"{server.url}/jobs/{waiting['id']}")
        page.wait_for_function("() => document.querySelector('#status').textContent === 'queued'", timeout=WAIT_MS)
        page.wait_for_function("() => document.querySelector('#queue').textContent === '— it starts next'",
                               timeout=WAIT_MS)
        assert page.text_content("#settings").startswith("Quality: Balanced · 2, 4 strokes · 1 attempt per level")
        job_url = f"{server.url}/v1/jobs/{waiting['id']}"
        # the page's first poll of the waiting job (up to its second) asks the server's health once
        wait_until(lambda: len(watched.requests_of(job_url)) >= 2, what="the page's second poll")
        first, second = watched.requests_of(job_url)[:2]
        assert watched.urls[first:second].count(f"{server.url}/v1/health") == 1, watched.urls
    finally:
        for job in (waiting, running):
            server.request("DELETE", f"/v1/jobs/{job['id']}")
    assert csp_violations(watched.errors) == [], watched.errors


def test_a_finished_job_shows_its_strokes_how_long_it_took_and_its_replay_within_the_window(server, watched):
    _, job = submit_image(server, png_bytes(640, 480, seed=12), **FAST_PARAMS)
    wait_for_status(server, job["id"], statuses=("succeeded",))
    page = watched.page
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(f"{server.url}/jobs/{job['id']}")
    page.wait_for_function("() => document.querySelectorAll('figure.level svg path').length >= 6", timeout=WAIT_MS)
    assert page.text_content("#status") == "succeeded"
    assert re.fullmatch(r"took \d+ s", page.text_content("#elapsed")), page.text_content("#elapsed")
    assert page.is_visible("#links")
    page.wait_for_function("() => document.querySelector('#animation').naturalWidth > 0", timeout=WAIT_MS)
    box = page.eval_on_selector("#animation", "img => img.getBoundingClientRect().toJSON()")
    assert 0 < box["width"] <= 1200 and box["height"] > 0
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), "nothing overflows"
    page.goto(f"{server.url}/v1/jobs/{job['id']}/animation.svg")  # opened on its own, it fits the window too
    assert page.evaluate("() => document.documentElement.getBoundingClientRect().width <= window.innerWidth")
    page.goto(f"{server.url}/jobs/{job['id']}")
    page.wait_for_function("() => document.querySelectorAll('figure.level svg path').length >= 6", timeout=WAIT_MS)
    href = page.get_attribute("#result-svg", "href")
    assert href == f"/v1/jobs/{job['id']}/result.svg"
    status, text = server.request("GET", href)
    assert status == 200 and "<svg" in text
    for link in ("#animation-svg", "#animation-gif"):
        href = page.get_attribute(link, "href")
        assert href.startswith(f"/v1/jobs/{job['id']}/animation.")
        assert server.request("GET", href)[0] == 200, href
    assert csp_violations(watched.errors) == [], watched.errors


def test_unknown_job_shows_a_404_page(server, watched):
    answer = watched.page.goto(f"{server.url}/jobs/{'0' * 32}")
    assert answer.status == 404
    assert "no job" in watched.page.text_content("main")


def test_with_a_token_the_page_asks_for_it_once_and_keeps_it_out_of_urls(tiny_spec, tmp_path, watched):
    with start_server(tmp_path / "data", tiny_spec, token=TOKEN) as server:
        _, job = submit_image(server, png_bytes(64, 48, seed=13), **LONG)
        page = watched.page
        page.goto(f"{server.url}/jobs/{job['id']}")
        page.wait_for_selector("#token-form", state="visible", timeout=WAIT_MS)
        assert page.is_hidden("#job")
        page.fill("#token", "not-the-token")
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#token-error", state="visible", timeout=WAIT_MS)

        page.fill("#token", TOKEN)
        page.click("#token-form button[type=submit]")
        page.wait_for_function("() => document.querySelectorAll('figure.level svg path').length >= 6", timeout=WAIT_MS)
        assert page.is_hidden("#token-form")

        page.reload()  # the token is kept for the tab: no second prompt
        page.wait_for_function("() => document.querySelectorAll('figure.level svg path').length >= 6", timeout=WAIT_MS)
        assert page.is_hidden("#token-form")
        page.click("#cancel")
        assert wait_for_status(server, job["id"], timeout=60)["status"] == "cancelled"

        assert watched.urls and not [url for url in watched.urls if TOKEN in url]
        assert TOKEN not in server.output()
        assert csp_violations(watched.errors) == [], watched.errors


def test_a_job_waiting_for_the_models_shows_their_download(tmp_path, watched):
    """A server without its CLIP models fetches the paper's two (stand-ins, from a stand-in hub); the page of a
    job that waits meanwhile says how far the download is."""
    files = {("timm/resnet101_clip.openai", "open_clip_model.safetensors"): os.urandom(24 * 1024 * 1024),
             ("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors"): os.urandom(1_000_000)}
    with StandInHub(files) as hub:
        hub.hold(after=12 * 1024 * 1024)  # past one of huggingface_hub's 10 MiB writes, then wait
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
        args = ["--host", "127.0.0.1", "--port", "0", "--data-dir", str(tmp_path / "data"), "--device", "cpu"]
        server = ServerProcess(args, tmp_path / "data", None, env)
        try:
            _, job = submit_image(server, png_bytes(64, 48, seed=14), **FAST_PARAMS)
            page = watched.page
            page.goto(f"{server.url}/jobs/{job['id']}")
            page.wait_for_function("() => /^Downloading the CLIP models: [1-9][0-9]* of 26 MB$/"
                                   ".test(document.querySelector('#models').textContent)", timeout=WAIT_MS)
            assert page.is_visible("#models")
            assert csp_violations(watched.errors) == [], watched.errors
        finally:
            server.kill()
