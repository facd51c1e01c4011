"""Image loading and the canvas: white background, square padding, exact coordinate mapping."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from clipasso_core.errors import ImageError, ImageTooLargeError, UnsupportedImageError
from clipasso_core.image import CanvasFrame, read_image, to_canvas


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    image.putpixel((5, 5), (255, 0, 0, 255))
    rgb = read_image(encode(image))
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((5, 5)) == (255, 0, 0)


def test_non_square_image_is_padded_not_stretched():
    image = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(image).ellipse((150, 50, 250, 150), fill="black")  # a circle of diameter 100
    canvas, frame = to_canvas(image)
    assert canvas.shape == (3, 224, 224)
    ink = canvas[0] < 0.5
    rows = torch.nonzero(ink.any(dim=1)).flatten()
    cols = torch.nonzero(ink.any(dim=0)).flatten()
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert abs(int(height) - int(width)) <= 1  # still a circle
    assert abs(int(width) - 100 * 224 / 400) <= 2
    assert canvas[:, :50].min() > 0.99 and canvas[:, -50:].min() > 0.99  # white padding above and below


def test_frame_maps_canvas_to_source_pixels():
    frame = CanvasFrame(400, 200)
    corners = torch.tensor([[0.0, 0.0], [224.0, 224.0]])
    assert torch.allclose(frame.to_source(corners), torch.tensor([[0.0, -100.0], [400.0, 300.0]]))
    image_corner = frame.to_canvas(torch.tensor([[0.0, 0.0], [400.0, 200.0]]))
    assert torch.allclose(image_corner, torch.tensor([[0.0, 56.0], [224.0, 168.0]]))
    points = torch.rand(10, 2) * 224
    assert torch.allclose(frame.to_source(frame.to_canvas(points)), points, atol=1e-4)


def test_missing_damaged_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(UnsupportedImageError, match="not a PNG, JPEG, WebP, GIF or TIFF"):
        read_image(b"this is text")
    with pytest.raises(UnsupportedImageError, match="BMP"):
        read_image(encode(Image.new("RGB", (4, 4)), "BMP"))
    png = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ImageError, match="truncated"):
        read_image(png[: len(png) // 2])


def test_absurd_sizes_are_refused_before_decoding():
    with pytest.raises(ImageTooLargeError, match="megapixels"):
        read_image(encode(Image.new("L", (3000, 3000))), max_pixels=1_000_000)
