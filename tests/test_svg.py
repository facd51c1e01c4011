"""Strokes ↔ SVG: path data, Inkscape layers per level, and reading back what is written."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from clipasso_core.errors import SketchFileError
from clipasso_core.level import StrokeLevel
from clipasso_core.svg import parse_path_data, path_data, read_sketch_document, sketch_document, stroke_paths
from clipasso_core.svg_xml import INKSCAPE_NS, SVG_NS


def test_path_data_is_one_absolute_cubic_and_round_trips():
    stroke = np.array([[1.5, 2.25], [10.0, -3.5], [20.125, 7.0], [30.0, 40.0]])
    d = path_data(stroke)
    assert d == "M 1.5 2.25 C 10 -3.5 20.125 7 30 40"
    assert np.allclose(parse_path_data(d), stroke)
    assert np.allclose(parse_path_data("M1,2C3,4,5,6,7,8"), [[1, 2], [3, 4], [5, 6], [7, 8]])
    with pytest.raises(SketchFileError):
        parse_path_data("M 0 0 L 10 10")


def test_document_has_one_inkscape_layer_per_level_and_reads_back():
    rng = np.random.default_rng(1)
    points = [rng.uniform(-5, 300, (n, 4, 2)) for n in (4, 8)]
    levels = [StrokeLevel(stroke_paths(strokes), 2.5) for strokes in points]
    text = sketch_document(320, 240, levels, image=b"\x89PNG fake", color="#112233")
    root = ET.fromstring(text)
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("320", "240", "0 0 320 240")
    groups = [g for g in root.iter(f"{{{SVG_NS}}}g") if g.get(f"{{{INKSCAPE_NS}}}groupmode") == "layer"]
    labels = [g.get(f"{{{INKSCAPE_NS}}}label") for g in groups]
    assert labels == ["Source image", "4 strokes", "8 strokes"]
    assert "display:none" in groups[1].get("style", "") and "display:none" not in groups[2].get("style", "")
    style = groups[2].find(f"{{{SVG_NS}}}path").get("style")
    for part in ("fill:none", "stroke:#112233", "stroke-width:2.5", "stroke-linecap:round", "stroke-linejoin:round"):
        assert part in style
    document = read_sketch_document(text)
    assert (document.width, document.height) == (320, 240)
    assert [layer.label for layer in document.layers] == ["4 strokes", "8 strokes"]
    for written, read in zip(points, document.layers):
        assert read.level.strokes == len(written) and read.level.stroke_width == 2.5
        assert np.allclose([parse_path_data(d) for d in read.level.paths], written, atol=5e-4)
    assert [layer.visible for layer in document.layers] == [False, True]


def test_unreadable_sketches_are_clear_errors():
    with pytest.raises(SketchFileError, match="not valid SVG"):
        read_sketch_document("<svg")
    with pytest.raises(SketchFileError, match="no stroke paths"):
        read_sketch_document(f'<svg xmlns="{SVG_NS}" width="10" height="10"/>')
