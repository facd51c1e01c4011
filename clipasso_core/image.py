"""Loading input images and placing them on the optimizer's square canvas.

A source image of W×H pixels is flattened onto white, padded (never stretched) to a centred square
of side max(W, H), and resized to the 224-px canvas. :class:`CanvasFrame` maps points between the
canvas and the source image's pixel coordinates (x right, y down).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import ImageError, ImageTooLargeError, UnsupportedImageError
from .params import CANVAS_SIZE

DEFAULT_MAX_PIXELS = 40_000_000
"""Largest accepted image, in pixels (protects against decompression bombs)."""

READABLE_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


@dataclass(frozen=True)
class CanvasFrame:
    """Where a source image sits on the square canvas: ``source = canvas · scale − offset``."""

    width: int
    height: int
    size: int = CANVAS_SIZE

    @property
    def side(self) -> int:
        """Side of the padded square, in source pixels."""
        return max(self.width, self.height)

    @property
    def offset(self) -> tuple[int, int]:
        """Top-left corner of the source image inside the padded square, in source pixels."""
        return (self.side - self.width) // 2, (self.side - self.height) // 2

    @property
    def scale(self) -> float:
        """Source pixels per canvas pixel."""
        return self.side / self.size

    def to_source(self, points: torch.Tensor) -> torch.Tensor:
        """Map canvas points ``[..., 2]`` to source-image pixel coordinates ``[..., 2]``."""
        offset = torch.tensor(self.offset, dtype=points.dtype, device=points.device)
        return points * self.scale - offset

    def to_canvas(self, points: torch.Tensor) -> torch.Tensor:
        """Map source-image points ``[..., 2]`` to canvas coordinates ``[..., 2]``."""
        offset = torch.tensor(self.offset, dtype=points.dtype, device=points.device)
        return (points + offset) / self.scale


def read_image(source: bytes | str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file (path or bytes) into RGB, transparent pixels flattened onto white."""
    name = f"'{source}'" if isinstance(source, (str, Path)) else "the uploaded image"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"Cannot read {name}: no such file.")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ImageError(f"Cannot read {name}: {error.strerror or error}.") from None
    else:
        data = source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image_format = image.format
            width, height = image.size
            if image_format not in READABLE_FORMATS:
                raise UnsupportedImageError(f"{name.capitalize()} is a {image_format} file; use PNG, JPEG or WebP.")
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{name.capitalize()} is {width}×{height} pixels, more than the limit of "
                    f"{max_pixels / 1e6:.0f} megapixels; scale it down first."
                )
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            f"{name.capitalize()} has more pixels than the limit of {max_pixels / 1e6:.0f} megapixels."
        ) from None
    except UnidentifiedImageError:
        raise UnsupportedImageError(f"{name.capitalize()} is not a PNG, JPEG or WebP image.") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name.capitalize()} is damaged or truncated ({error}).") from None
    if width < 1 or height < 1:
        raise ImageError(f"{name.capitalize()} has no pixels.")
    return flatten_on_white(image)


def flatten_on_white(image: Image.Image) -> Image.Image:
    """Composite any transparency onto white and return an RGB image."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def to_canvas(image: Image.Image, size: int = CANVAS_SIZE) -> tuple[torch.Tensor, CanvasFrame]:
    """Pad an RGB image to a white square and resize it: ``[3, size, size]`` in [0, 1], plus its frame."""
    frame = CanvasFrame(image.width, image.height, size)
    square = Image.new("RGB", (frame.side, frame.side), (255, 255, 255))
    square.paste(image, frame.offset)
    resized = square.resize((size, size), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)
    return pixels.permute(2, 0, 1).contiguous(), frame
