"""What earlier versions wrote still reads: results and snapshots a server stored, sketches ``clipasso sketch``
wrote, and what the extension's Sketch recorded in a designer's document (Refine and Insert find it)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import inkex
import pytest
from fastapi.testclient import TestClient

from clipasso_core.level import StrokeLevel
from clipasso_core.params import SketchParams
from clipasso_core.svg import read_sketch_document, sketch_document
from clipasso_core.svg_xml import CLIPASSO_NS, INKSCAPE_NS, SVG_NS
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from clipasso_server.store import JobStore
from tests.support.server_process import LOCAL, png_bytes

OLD_RESULT = {  # as a server stored it before levels had one type: no widths / opacities keys when not optimized
    "width": 60, "height": 40, "levels": [
        {"strokes": 1, "stroke_width": 1.5, "paths": ["M 1.5 2 C 3 4 5 6 7 8.125"], "loss": 0.5},
        {"strokes": 2, "stroke_width": 1.5, "paths": ["M 0 0 C 1 1 2 2 3 3", "M 4 4 C 5 5 6 6 7 7"], "loss": None,
         "widths": [1.25, 2.5], "opacities": [1.0, 0.5]},
    ]}
OLD_SNAPSHOTS = {"width": 60, "height": 40, "stroke_width": 1.5, "total": 1, "capacity": 120, "stride": 1,
                 "offered": 1, "snapshots": [{"iteration": 1, "levels": [
                     {"strokes": 1, "loss": 0.5, "points": [[[1.5, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.125]]]},
                     {"strokes": 2, "loss": None, "points": [[[0, 0], [1, 1], [2, 2], [3, 3]],
                                                             [[4, 4], [5, 5], [6, 6], [7, 7]]],
                      "widths": [1.25, 2.5], "opacities": [1.0, 0.5]}]}]}
OLD_CORE_NS = "https://github.com/clipasso-inkscape/ns"  # where clipasso sketch recorded the precision before
EXTENSION_NS = "https://clipasso.org/ns/inkscape-extension"  # what the extension has always written


@pytest.fixture
def extension_imports(monkeypatch):
    """Import the extension's modules as Inkscape does: flat, from the script's folder."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "inkscape_ext"))


def test_a_result_and_snapshots_stored_by_an_earlier_server_still_read(tiny_spec, tmp_path):
    data = tmp_path / "data"
    store = JobStore(data)
    job, _ = store.submit(png_bytes(60, 40, seed=1), SketchParams(strokes=[1, 2], iterations=1), "old-key")
    assert store.claim_next() is not None
    store.save_snapshots(job.id, OLD_SNAPSHOTS)
    assert store.succeed(job.id, OLD_RESULT, None)
    store.close()
    app = create_app(ServerConfig(data_dir=data, models=tiny_spec))
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL) as client:
        answer = client.get(f"/v1/jobs/{job.id}/result")
        assert answer.status_code == 200, answer.text
        first, second = answer.json()["levels"]
        unset = {"added": None, "left_out": None}  # revision 3's fields, absent from what an earlier server stored
        assert first == {**OLD_RESULT["levels"][0], "widths": None, "opacities": None, **unset}
        assert second == {**OLD_RESULT["levels"][1], **unset}
        for route in ("result.svg", "preview.svg"):
            document = client.get(f"/v1/jobs/{job.id}/{route}")
            assert document.status_code == 200, (route, document.text)
            layers = read_sketch_document(document.text).layers
            assert [layer.level.paths for layer in layers] == [tuple(level["paths"]) for level in OLD_RESULT["levels"]]
            assert layers[1].level.widths == (1.25, 2.5) and layers[1].level.opacities == (1.0, 0.5)
        animation = client.get(f"/v1/jobs/{job.id}/animation.svg")
        assert animation.status_code == 200 and "M 4 4 C 5 5 6 6 7 7" in animation.text


def test_the_precision_an_earlier_clipasso_sketch_recorded_still_reads():
    old = (f'<svg xmlns="{SVG_NS}" xmlns:clipasso="{OLD_CORE_NS}" width="60" height="40" clipasso:precision="bf16">'
           '<path d="M 0 0 C 1 1 2 2 3 3" /></svg>')
    assert read_sketch_document(old).precision == "bf16"


def test_the_core_and_the_extension_record_under_one_namespace(extension_imports):
    from sketch_layers import NAMESPACE

    assert CLIPASSO_NS == NAMESPACE == EXTENSION_NS
    written = sketch_document(60, 40, [StrokeLevel(("M 0 0 C 1 1 2 2 3 3",), 1.0)], precision="fp32")
    assert 'xmlns:clipasso="https://clipasso.org/ns/inkscape-extension"' in written
    assert ET.fromstring(written).get(f"{{{EXTENSION_NS}}}precision") == "fp32"
    assert read_sketch_document(written).precision == "fp32"


OLD_DOCUMENT = f"""<svg xmlns="{SVG_NS}" xmlns:inkscape="{INKSCAPE_NS}" xmlns:clipasso="{EXTENSION_NS}"
     width="100" height="80" viewBox="0 0 100 80">
  <g id="layer1" inkscape:groupmode="layer" inkscape:label="Layer 1">
    <image id="photo" x="0" y="0" width="100" height="80" clipasso:job="j1" clipasso:server="http://127.0.0.1:8765"
           clipasso:params="{{}}" clipasso:stroke="#112233" clipasso:stroke-opacity="1" clipasso:visible="0"/>
  </g>
  <g id="clipasso-photo" inkscape:groupmode="layer" inkscape:label="CLIPasso: photo" clipasso:source="photo"
     clipasso:job="j0" clipasso:pixels="50 40" clipasso:placement="matrix(2 0 0 2 0 0)">
    <g id="clipasso-photo-2" inkscape:groupmode="layer" inkscape:label="2 strokes" clipasso:strokes="2">
      <path id="s1" d="M 10 10 C 20 20 30 20 40 10" style="fill:none;stroke:#000000;stroke-width:2"/>
      <path id="s2" d="M 10 60 C 30 50 50 50 70 60" style="fill:none;stroke:#000000;stroke-width:2"/>
    </g>
  </g>
</svg>"""


def test_refine_and_insert_find_what_an_earlier_sketch_recorded(extension_imports):
    from pending_note import noted_elements, noted_image, read_note
    from refine_layers import read_strokes

    svg = inkex.load_svg(io.BytesIO(OLD_DOCUMENT.encode())).getroot()
    strokes = read_strokes(svg, svg.getElementById("clipasso-photo-2"), set())
    assert strokes.image.get_id() == "photo" and strokes.pixels == (50, 40)
    assert strokes.paths[0].startswith("M 5 5 C 10 10")  # document units halved into the 50 × 40 bitmap
    (noted,) = noted_elements(svg)
    assert noted_image(svg, noted).get_id() == "photo"
    note = read_note(noted)
    assert note is not None and (note.job_id, note.style.color) == ("j1", "#112233")
