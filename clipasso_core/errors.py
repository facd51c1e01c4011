"""Errors whose message is meant for the user: one clear sentence, never a stack trace.

The sentence speaks the library's language: where it tells how to fix something it names the library's
parameters (``ModelSpec.loss_weights``), never a command line's options; a command line says the same
with its own options through :meth:`ClipassoError.worded`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence


class ClipassoError(Exception):
    """A problem the user can fix; ``str(error)`` is the sentence to show them.

    ``parameters`` lists the library parameters the sentence names, as it names them.
    """

    code = "error"

    def __init__(self, message: str, parameters: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.parameters = tuple(parameters)

    def worded(self, names: Mapping[str, str]) -> ClipassoError:
        """The same error with each parameter it names said as ``names`` says (e.g. ``--loss-weights``)."""
        text = str(self)
        for parameter in self.parameters:
            text = text.replace(parameter, names.get(parameter, parameter))
        reworded = copy.copy(self)
        reworded.args, reworded.parameters = (text,), ()
        return reworded


class ImageError(ClipassoError):
    """The input is not a usable image (missing, unreadable, truncated, unsupported or too large)."""

    code = "invalid_image"


class UnsupportedImageError(ImageError):
    """The input is not an image in a supported format (PNG, JPEG, WebP)."""

    code = "unsupported_image"


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit (a guard against decompression bombs)."""

    code = "image_too_large"


class WeightsUnavailableError(ClipassoError):
    """CLIP weights are neither cached nor downloadable nor given as a file."""

    code = "weights_unavailable"


class ModelError(ClipassoError):
    """A model name, config or checkpoint that cannot be used for the requested role."""

    code = "invalid_model"


class SketchFileError(ClipassoError):
    """A sketch file (SVG) that this tool cannot read."""

    code = "invalid_sketch"


class AnimationError(ClipassoError):
    """An animation that cannot be written: unknown format, missing optional package, or nothing recorded yet."""

    code = "animation_unavailable"
