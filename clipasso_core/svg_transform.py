"""SVG ``transform`` attributes as affine matrices, for reading drawings saved by Inkscape without inkex.

A matrix is a 3×3 float64 array acting on column vectors ``[x, y, 1]``; ``parse_transform`` reads
every SVG transform function (matrix, translate, scale, rotate with or without a centre, skewX,
skewY), applied right to left as SVG does.
"""

from __future__ import annotations

import math
import re

import numpy as np

from .errors import SketchFileError
from .svg_xml import numbers, shown

__all__ = ["IDENTITY", "parse_transform", "svg_matrix", "apply_matrix"]

IDENTITY = np.eye(3)

_FUNCTION = re.compile(r"\s*,?\s*(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)\s*,?\s*")
_ARITY = {"matrix": (6,), "translate": (1, 2), "scale": (1, 2), "rotate": (1, 3), "skewX": (1,), "skewY": (1,)}


def _function_matrix(name: str, values: list[float]) -> np.ndarray:
    if name == "matrix":
        a, b, c, d, e, f = values
        return np.array([[a, c, e], [b, d, f], [0.0, 0.0, 1.0]])
    if name == "translate":
        tx, ty = values[0], values[1] if len(values) > 1 else 0.0
        return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])
    if name == "scale":
        sx, sy = values[0], values[1] if len(values) > 1 else values[0]
        return np.diag([sx, sy, 1.0])
    if name == "rotate":
        angle = math.radians(values[0])
        cos, sin = math.cos(angle), math.sin(angle)
        rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        if len(values) == 3:
            cx, cy = values[1], values[2]
            return _function_matrix("translate", [cx, cy]) @ rotation @ _function_matrix("translate", [-cx, -cy])
        return rotation
    tangent = math.tan(math.radians(values[0]))
    return np.array([[1.0, tangent, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if name == "skewX" else \
        np.array([[1.0, 0.0, 0.0], [tangent, 1.0, 0.0], [0.0, 0.0, 1.0]])


def parse_transform(text: str | None) -> np.ndarray:
    """The 3×3 matrix of an SVG ``transform`` attribute (identity for none); raises :class:`SketchFileError`."""
    matrix = IDENTITY.copy()
    if not text or not text.strip():
        return matrix
    position = 0
    while position < len(text):
        match = _FUNCTION.match(text, position)
        if match is None:
            raise SketchFileError(f"The transform {shown(text)} cannot be read.")
        name, arguments = match.group(1), match.group(2)
        values = numbers(arguments)
        if len(values) not in _ARITY[name] or not all(math.isfinite(v) for v in values):
            raise SketchFileError(f"The transform {shown(text)} has a {name} with wrong arguments.")
        matrix = matrix @ _function_matrix(name, values)
        position = match.end()
    return matrix


def svg_matrix(matrix: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """The SVG ``matrix(a, b, c, d, e, f)`` values of a 3×3 affine matrix."""
    return (float(matrix[0, 0]), float(matrix[1, 0]), float(matrix[0, 1]), float(matrix[1, 1]),
            float(matrix[0, 2]), float(matrix[1, 2]))


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points ``[..., 2]`` mapped through a 3×3 affine matrix."""
    return points @ matrix[:2, :2].T + matrix[:2, 2]
