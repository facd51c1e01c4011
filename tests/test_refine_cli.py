"""``clipasso refine``: a layer of a layered SVG (as written, or as Inkscape saves it) refined into a new layer."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clipasso_core.cli import main
from clipasso_core.path_data import parse_path, transform_subpaths
from clipasso_core.refine_svg import LayeredDrawing
from clipasso_core.level import StrokeLevel
from clipasso_core.svg import sketch_document, stroke_paths
from clipasso_core.svg_xml import INKSCAPE_NS, SODIPODI_NS, SVG_NS
from clipasso_core.svg_transform import parse_transform, svg_matrix

LABEL = f"{{{INKSCAPE_NS}}}label"
STROKES = np.array([
    [[20, 30], [60, 10], [100, 40], [140, 30]],
    [[30, 150], [60, 120], [90, 160], [170, 140]],
    [[100, 20], [110, 60], [90, 100], [105, 170]],
], dtype=np.float64)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    image = Image.new("RGB", (200, 180), "white")
    ImageDraw.Draw(image).ellipse((40, 40, 160, 150), outline="black", width=8)
    path = tmp_path_factory.mktemp("refine") / "ring.png"
    image.save(path)
    return path


def sketch_svg(locked: int | None = None) -> str:
    levels = [StrokeLevel(stroke_paths(STROKES[:2]), 2.5), StrokeLevel(stroke_paths(STROKES), 2.5)]
    root = ET.fromstring(sketch_document(200, 180, levels))
    if locked is not None:
        next(p for p in root.iter() if p.get("id") == f"level-3-stroke-{locked + 1}").set(
            f"{{{SODIPODI_NS}}}insensitive", "true")
    return ET.tostring(root, encoding="unicode")


def layers_of(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{{{SVG_NS}}}g") if g.get(f"{{{INKSCAPE_NS}}}groupmode") == "layer"]


def user_space_segments(root: ET.Element, layer: ET.Element) -> list[np.ndarray]:
    """Each path of ``layer`` as segments in root user units (the transforms of the layer and path applied)."""
    matrix = parse_transform(layer.get("transform"))
    segments = []
    for path in layer.findall(f"{{{SVG_NS}}}path"):
        (subpath,) = transform_subpaths(parse_path(path.get("d")), svg_matrix(matrix @ parse_transform(path.get("transform"))))
        segments.append(subpath.segments)
    return segments


def test_refine_adds_the_refined_layer_above_the_old_one_and_keeps_locked_strokes(image_path, tmp_path, tiny_model_args):
    sketch, out = tmp_path / "ring.svg", tmp_path / "ring-refined.svg"
    sketch.write_text(sketch_svg(locked=1))
    status = main(["refine", str(image_path), str(sketch), "-o", str(out), "--iterations", "4", *tiny_model_args])
    assert status == 0
    root = ET.fromstring(out.read_text())
    layers = layers_of(root)
    assert [g.get(LABEL) for g in layers] == ["2 strokes", "3 strokes", "3 strokes (refined)"]
    old, new = layers[1], layers[2]
    assert "display:none" in old.get("style") and "display:none" not in (new.get("style") or "")
    assert len(old.findall(f"{{{SVG_NS}}}path")) == 3, "the old layer is kept"
    refined = user_space_segments(root, new)
    assert np.array_equal(refined[1][0], STROKES[1]), "the locked stroke did not move"
    assert new.findall(f"{{{SVG_NS}}}path")[1].get(f"{{{SODIPODI_NS}}}insensitive") == "true"
    assert not np.allclose(refined[0][0], STROKES[0], atol=0.5) and not np.allclose(refined[2][0], STROKES[2], atol=0.5)


def test_refine_can_vary_width_and_ink_and_leaves_the_locked_strokes_as_they_were(image_path, tmp_path,
                                                                                 tiny_model_args):
    sketch, out = tmp_path / "ring.svg", tmp_path / "ring-styled.svg"
    sketch.write_text(sketch_svg(locked=1))
    assert main(["refine", str(image_path), str(sketch), "-o", str(out), "--iterations", "6", "--optimize-width",
                 "--width-lr", "2", "--optimize-opacity", "--opacity-lr", "0.3", *tiny_model_args]) == 0
    new = layers_of(ET.fromstring(out.read_text()))[2]
    styles = [dict(item.split(":", 1) for item in path.get("style").split(";"))
              for path in new.findall(f"{{{SVG_NS}}}path")]
    widths = [float(style["stroke-width"]) for style in styles]
    inks = [float(style["stroke-opacity"]) for style in styles]
    assert widths[1] == pytest.approx(2.5, abs=1e-3) and inks[1] == 1.0, "the locked stroke keeps its style"
    assert widths[0] != pytest.approx(2.5, abs=1e-3) and widths[2] != pytest.approx(2.5, abs=1e-3)
    assert all(2.5 * 0.5 - 1e-3 <= width <= 2.5 * 3 + 1e-3 for width in widths)
    assert any(ink < 1.0 for ink in inks) and all(0.0 <= ink <= 1.0 for ink in inks)


INKSCAPE_SAVED = f"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="{SVG_NS}" xmlns:inkscape="{INKSCAPE_NS}" xmlns:sodipodi="{SODIPODI_NS}"
     width="100mm" height="90mm" viewBox="0 0 400 360">
  <!-- saved by Inkscape -->
  <sodipodi:namedview id="namedview1"/>
  <g inkscape:groupmode="layer" inkscape:label="Drawing" transform="translate(50,-20) rotate(30)">
    <g transform="scale(2)">
      <path id="a" style="fill:none;stroke:#ff0000;stroke-width:1.5" transform="matrix(1,0.2,-0.1,1,5,7)"
            d="m 10 20 c 5 -5 10 -5 15 0 l 10 10 h 5 q 5 5 10 0"/>
      <path id="b" sodipodi:insensitive="true" style="fill:none;stroke:#000000;stroke-width:1.5"
            d="M 40 40 L 60 70"/>
    </g>
  </g>
</svg>
"""


def test_an_inkscape_drawing_is_read_in_image_pixels_through_every_transform():
    drawing = LayeredDrawing(INKSCAPE_SAVED, 200, 180)
    layer = drawing.find_layer("Drawing")
    strokes = drawing.strokes(layer)
    layer_matrix = parse_transform("translate(50,-20) rotate(30)") @ parse_transform("scale(2)")
    to_pixels = np.diag([0.5, 0.5, 1.0])  # viewBox 400×360 over a 200×180 image
    expected_a = transform_subpaths(parse_path("m 10 20 c 5 -5 10 -5 15 0 l 10 10 h 5 q 5 5 10 0"),
                                    svg_matrix(to_pixels @ layer_matrix @ parse_transform("matrix(1,0.2,-0.1,1,5,7)")))
    (read_a,) = parse_path(strokes.paths[0])
    assert np.allclose(read_a.segments, expected_a[0].segments, atol=1e-4) and len(read_a.segments) == 4
    assert strokes.locked == [1] and strokes.colors == ["#ff0000", "#000000"]
    # Widths scale with each path's transform (a's skew matrix has determinant 1.02); the median is used.
    assert strokes.stroke_width == pytest.approx((1.5 * 1.02 ** 0.5 + 1.5) / 2)


def test_the_refined_layer_lands_where_its_pixels_are_under_any_layer_transform():
    drawing = LayeredDrawing(INKSCAPE_SAVED, 200, 180)
    layer = drawing.find_layer("Drawing")
    strokes = drawing.strokes(layer)
    drawing.add_refined(layer, strokes, StrokeLevel(tuple(strokes.paths), strokes.stroke_width))
    root = ET.fromstring(drawing.to_string())
    old, new = layers_of(root)
    assert new.get(LABEL) == "2 strokes (refined)" and "display:none" in old.get("style")
    # Sent back unchanged, the strokes lie exactly over the originals in the document.
    originals = [transform_subpaths(parse_path(path.get("d")), svg_matrix(
        parse_transform(old.get("transform")) @ parse_transform("scale(2)") @ parse_transform(path.get("transform"))))[0]
        for path in old.iter(f"{{{SVG_NS}}}path")]
    for placed, original in zip(user_space_segments(root, new), originals):
        assert np.allclose(placed, original.segments, atol=1e-3)
    assert "saved by Inkscape" in drawing.to_string(), "comments survive"


@pytest.mark.parametrize("layer_content, mentions", [
    ('<path id="blob" d="M 0 0 L 10 0 L 10 10 Z"/>', "filled shape"),
    ('<path id="blob" style="fill:#00ff00;stroke:#000" d="M 0 0 L 10 0"/>', "filled shape"),
    ('<text id="words">hello</text>', "not a stroke"),
    ('<rect id="box" width="3" height="4" style="fill:none;stroke:#000"/>', "Object to Path"),
    ('<path id="two" style="fill:none" d="M 0 0 L 10 0 M 20 20 L 30 30"/>', "Break Apart"),
    ('<path id="one" style="fill:none" sodipodi:insensitive="true" d="M 0 0 L 10 0"/>', "Every path"),
])
def test_a_layer_with_something_that_is_not_a_free_stroke_is_one_clear_error(image_path, tmp_path, capsys,
                                                                            layer_content, mentions):
    sketch, out = tmp_path / "bad.svg", tmp_path / "out.svg"
    sketch.write_text(f'<svg xmlns="{SVG_NS}" xmlns:inkscape="{INKSCAPE_NS}" xmlns:sodipodi="{SODIPODI_NS}" '
                      f'width="200" height="180" viewBox="0 0 200 180"><g inkscape:groupmode="layer" '
                      f'inkscape:label="L">{layer_content}</g></svg>')
    assert main(["refine", str(image_path), str(sketch), "-o", str(out)]) == 1
    error = capsys.readouterr().err
    assert mentions in error and "Traceback" not in error and error.count("\n") == 1
    assert not out.exists()


def test_a_missing_layer_names_the_layers_there_are(image_path, tmp_path, capsys):
    sketch = tmp_path / "ring.svg"
    sketch.write_text(sketch_svg())
    assert main(["refine", str(image_path), str(sketch), "-o", str(tmp_path / "o.svg"), "--level", "16"]) == 1
    error = capsys.readouterr().err
    assert "'16 strokes'" in error and "'2 strokes', '3 strokes'" in error
