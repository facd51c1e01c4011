"""Errors whose message is meant for the user: one clear sentence, never a stack trace."""


class ClipassoError(Exception):
    """A problem the user can fix; ``str(error)`` is the sentence to show them."""

    code = "error"


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
