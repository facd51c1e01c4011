"""A mask from the drawing: shapes over an image (any transform) and its clip-path, in the picture's pixels."""

import io
import math
import sys
from pathlib import Path

import inkex
import numpy as np
import pytest
from PIL import Image

from clipasso_core.image import CanvasFrame, read_image
from clipasso_core.mask import mask_coverage
from clipasso_core.path_data import parse_path

EXT_DIR = Path(__file__).resolve().parents[1] / "inkscape_ext"
sys.path.insert(0, str(EXT_DIR))  # the extension's modules import each other flat, as Inkscape runs them

from drawing_mask import clip_mask, closed_shapes, selection_mask  # noqa: E402
from picture_size import picture_size  # noqa: E402

PIXELS = (40, 30)


def document(body: str) -> inkex.SvgDocumentElement:
    return inkex.load_svg(io.BytesIO(
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="400" height="300">'
        + body.encode() + b"</svg>")).getroot()


def rotation(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def affine(scale=(1.0, 1.0), translate=(0.0, 0.0)) -> np.ndarray:
    return np.array([[scale[0], 0.0, translate[0]], [0.0, scale[1], translate[1]], [0.0, 0.0, 1.0]])


def apply(matrix: np.ndarray, points) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    return (matrix[:2, :2] @ points.T).T + matrix[:2, 2]


def vertices(d: str) -> np.ndarray:
    """The on-curve points of every subpath of path data."""
    return np.concatenate([np.concatenate([sub.segments[:, 0], sub.segments[-1:, 3]]) for sub in parse_path(d)])


PIXEL_RECT = [(10, 5), (30, 5), (30, 20), (10, 20)]


def test_a_shape_drawn_over_a_rotated_scaled_image_is_the_right_mask_in_pixels():
    # picture → document worked out by hand: the layer's rotate(30) · the image's scale(1.5, 0.8) · its box
    # (x 20, y 10, 80 × 60 for 40 × 30 pixels, preserveAspectRatio none: scale 2)
    image_to_doc = rotation(30) @ affine(scale=(1.5, 0.8)) @ affine(scale=(2, 2), translate=(20, 10))
    corners = apply(image_to_doc, PIXEL_RECT)
    # the shape sits in a group moved by (7, -3) and flipped, so its own points undo that
    group = affine(translate=(7, -3)) @ affine(scale=(-1, 1))
    local = apply(np.linalg.inv(group), corners)
    points = " ".join(f"{x:.9f},{y:.9f}" for x, y in local)
    svg = document(
        '<g id="layer" transform="rotate(30)">'
        '<image id="photo" x="20" y="10" width="80" height="60" preserveAspectRatio="none" '
        'transform="scale(1.5,0.8)"/></g>'
        f'<g transform="translate(7,-3) scale(-1,1)"><polygon id="shape" points="{points}"/></g>')
    image, shape = svg.getElementById("photo"), svg.getElementById("shape")
    ((found, d),) = selection_mask(closed_shapes([shape]), image, PIXELS)
    assert found is shape
    assert vertices(d)[:4] == pytest.approx(np.array(PIXEL_RECT, dtype=float), abs=1e-4)
    coverage = mask_coverage(d, CanvasFrame(*PIXELS))
    area = float(coverage.sum()) * CanvasFrame(*PIXELS).scale ** 2  # canvas pixels → picture pixels
    assert area == pytest.approx(20 * 15, rel=0.02)


def test_a_circle_over_a_letterboxed_image_keeps_its_shape_in_pixels():
    # 40 × 30 pixels in a 100 × 100 box, xMidYMid meet: scale 2.5, centred vertically (offset 12.5)
    svg = document('<image id="photo" x="0" y="0" width="100" height="100"/>'
                   '<circle id="c" cx="50" cy="50" r="25"/><path id="open" d="M 0 0 L 90 90"/>')
    image = svg.getElementById("photo")
    shapes = closed_shapes([svg.getElementById("open"), svg.getElementById("c")])
    assert [shape.get_id() for shape in shapes] == ["c"]
    ((_, d),) = selection_mask(shapes, image, PIXELS)
    points = vertices(d)
    assert np.hypot(points[:, 0] - 20, points[:, 1] - 15) == pytest.approx(np.full(len(points), 10.0), abs=1e-6)


def test_shapes_away_from_the_image_are_not_its_mask():
    svg = document('<image id="photo" width="40" height="30"/><rect id="far" x="100" y="100" width="5" height="5"/>')
    assert selection_mask(closed_shapes([svg.getElementById("far")]), svg.getElementById("photo"), PIXELS) == []


@pytest.mark.parametrize("units, rect", [("userSpaceOnUse", 'x="30" y="20" width="40" height="20"'),
                                         ("objectBoundingBox", 'x="0.25" y="0.25" width="0.5" height="0.5"')])
def test_an_images_clip_path_is_its_mask(units, rect):
    # 40 × 30 pixels drawn as 80 × 60 at (20, 10), rotated: the clip follows the image's own transform
    svg = document(f'<defs><clipPath id="clip" clipPathUnits="{units}"><rect {rect}/></clipPath></defs>'
                   '<image id="photo" x="20" y="10" width="80" height="60" transform="rotate(-20)" '
                   'clip-path="url(#clip)"/>')
    (d,) = clip_mask(svg.getElementById("photo"), PIXELS)
    assert vertices(d)[:4] == pytest.approx(np.array([(5, 5), (25, 5), (25, 15), (5, 15)], dtype=float)
                                            if units == "userSpaceOnUse" else
                                            np.array([(10, 7.5), (30, 7.5), (30, 22.5), (10, 22.5)]), abs=1e-6)


def test_an_image_without_a_clip_path_has_no_clip_mask():
    svg = document('<image id="photo" width="40" height="30"/>')
    assert clip_mask(svg.getElementById("photo"), PIXELS) is None


def _picture(image_format: str, mode: str, orientation: int, **options) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    extra = {} if image_format in ("PNG", "GIF") else {"exif": exif.tobytes()}
    Image.new(mode, (37, 21)).save(buffer, format=image_format, **options, **extra)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("image_format, mode, options", [
    ("PNG", "RGBA", {}), ("GIF", "P", {}), ("JPEG", "RGB", {}), ("JPEG", "L", {"progressive": True}),
    ("WEBP", "RGB", {"quality": 50}), ("WEBP", "RGBA", {"lossless": True}), ("TIFF", "RGB", {}),
])
def test_picture_size_is_the_size_the_server_reads(image_format, mode, options, orientation):
    data = _picture(image_format, mode, orientation, **options)
    assert picture_size(data) == read_image(data).size


def test_an_unreadable_picture_has_no_size():
    assert picture_size(b"not a picture") is None and picture_size(b"\xff\xd8\xff\xe0") is None
