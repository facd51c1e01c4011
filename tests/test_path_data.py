"""SVG path data → cubic subpaths: every command, relative forms, compact syntax, arcs, and clear errors."""

import math

import inkex
import numpy as np
import pytest

from clipasso_core.path_data import PathDataError, format_path, parse_path, transform_subpaths


def sample(subpaths, per_segment=64):
    """Dense points along every subpath's cubics, one array per subpath."""
    t = np.linspace(0.0, 1.0, per_segment)[:, None]
    basis = np.concatenate([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3], axis=1)  # [T, 4]
    return [np.concatenate([basis @ segment for segment in s.segments]) for s in subpaths]


def area(subpaths):
    """Signed area enclosed by the subpaths (shoelace over dense samples)."""
    total = 0.0
    for points in sample(subpaths, 400):
        x, y = points[:, 0], points[:, 1]
        total += 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    return total


def test_lines_in_every_form_give_the_same_square():
    square = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    for d in ["M0 0 L10 0 L10 10 L0 10 Z", "m0,0 l10,0 0,10 -10,0 z", "M0 0H10V10H0Z", "m0 0h10v10h-10z",
              "M0 0 10 0 10 10 0 10z", "M 0,0 L 10,0 L 10,10 L 0,10 L 0,0 Z"]:
        (subpath,) = parse_path(d)
        assert subpath.closed
        assert np.allclose(subpath.segments[:, 0], square[:-1]) and np.allclose(subpath.segments[:, 3], square[1:])
        # a line is a cubic with its handles on the chord, a third of the way from each end
        assert np.allclose(subpath.segments[0, 1:3], [[10 / 3, 0], [20 / 3, 0]])
        assert area([subpath]) == pytest.approx(100.0)


def test_compact_number_syntax_and_flags_without_separators():
    (a,) = parse_path("M.5.5l-1e1,2.5E-1-.5-.5")
    assert np.allclose(a.segments[:, 3], [[-9.5, 0.75], [-10.0, 0.25]])
    (b,) = parse_path("M0 0a5 5 0 1010 0")  # flags "1" "0" then x "10"
    (c,) = parse_path("M0 0 A 5 5 0 1 0 10 0")
    assert np.allclose(b.segments, c.segments)


def test_smooth_commands_reflect_the_previous_control_point():
    (s,) = parse_path("M0 0 C 0 10 10 10 10 0 S 20 -10 20 0")
    assert np.allclose(s.segments[1, 1], [10, -10])  # reflection of (10, 10) about (10, 0)
    (t,) = parse_path("M0 0 Q 5 10 10 0 T 20 0")
    # T's control point is (15, -10); as a cubic its handles are 2/3 of the way to it
    assert np.allclose(t.segments[1, 1:3], [[10 + 2 / 3 * 5, -20 / 3], [20 - 2 / 3 * 5, -20 / 3]])
    (no_previous,) = parse_path("M0 0 L 5 5 S 10 10 20 0")  # S after a line: first handle at the current point
    assert np.allclose(no_previous.segments[1, 1], [5, 5])


def test_relative_commands_after_close_start_from_the_subpath_start():
    first, second = parse_path("M10 10 l10 0 l0 10 z l-5 0 l0 -5 z")
    assert np.allclose(second.start, [10, 10]) and np.allclose(second.segments[0, 3], [5, 10])
    assert first.closed and second.closed


def test_arcs_are_circles_and_ellipses():
    circle = parse_path("M 60 50 A 10 10 0 1 1 40 50 A 10 10 0 1 1 60 50 Z")
    assert abs(area(circle)) == pytest.approx(math.pi * 100, rel=1e-3)
    for points in sample(circle):
        radius = np.hypot(points[:, 0] - 50, points[:, 1] - 50)
        assert np.all(np.abs(radius - 10) < 10 * 3e-4)
    # radii too small for the end points: scaled up until the arc is half the ellipse, centred between them
    (small,) = parse_path("M 30 30 A 20 10 45 0 1 80 60")
    assert np.allclose(small.segments[-1, 3], [80, 60])
    (points,) = sample([small])
    c, s = math.cos(math.radians(45)), math.sin(math.radians(45))
    offset = points - [55, 45]
    u, v = offset @ [c, s], offset @ [-s, c]
    level = (u / 20) ** 2 + (v / 10) ** 2
    assert np.allclose(level, level[0], rtol=2e-3)
    assert len(parse_path("M0 0 A 0 5 0 0 0 10 0")[0].segments) == 1  # zero radius: a straight line


@pytest.mark.parametrize("d", [
    "M10 20 C 30 40 50 -10 70 20 S 100 60 120 20 Q 140 0 160 20 T 200 20 L 200 80 H 10 V 20 Z",
    "m10 20 c20 20 40 -30 60 0 s30 40 50 0 q20 -20 40 0 t40 0 l0 60 h-190 v-60 z",
    "M 30 30 A 40 20 45 0 1 80 60 A 30 30 0 1 0 30 30 Z",
    "M 0 0 a 25 40 -20 1 1 50 10 l 10 -70 z M 100 100 h 20 v 20 h -20 z",
])
def test_shapes_match_inkscapes_own_reading(d):
    ours = parse_path(d)
    # (absolute first: inkex 1.4's superpath of a relative t misplaces the quadratic's handle)
    theirs = [np.array(sub) for sub in inkex.Path(d).to_absolute().to_superpath()]
    assert len(ours) == len(theirs)
    for subpath, nodes in zip(ours, theirs):
        # inkex's superpath nodes are [handle in, point, handle out]; its points are our segment ends
        ends = np.concatenate([subpath.segments[:1, 0], subpath.segments[:, 3]])
        their_points = nodes[:, 1]
        for point in their_points:
            assert np.min(np.hypot(*(ends - point).T)) < 1e-6 or _near_curve(subpath, point)
    expected = sum(_superpath_area(nodes) for nodes in theirs)
    assert area(ours) == pytest.approx(expected, rel=2e-3)


def _near_curve(subpath, point):
    (points,) = sample([subpath], 400)
    return np.min(np.hypot(*(points - point).T)) < 0.05


def _superpath_area(nodes):
    segments = [np.array([nodes[i][1], nodes[i][2], nodes[i + 1][0], nodes[i + 1][1]]) for i in range(len(nodes) - 1)]
    from clipasso_core.path_data import Subpath
    return area([Subpath(np.stack(segments), True)])


def test_format_round_trips_and_transform_is_affine():
    subpaths = parse_path("M 1 2 C 3 4 5 6 7 8 L 9 10 Z M 20 20 Q 25 30 30 20")
    again = parse_path(format_path(subpaths))
    assert [s.closed for s in again] == [True, False]
    assert all(np.allclose(a.segments, b.segments, atol=1e-4) for a, b in zip(subpaths, again))
    moved = transform_subpaths(subpaths, (0, 1, -1, 0, 100, 0))  # rotate 90° then shift
    assert np.allclose(moved[0].segments[0, 0], [100 - 2, 1])


def test_lone_moves_draw_nothing():
    assert parse_path("") == [] and parse_path("  ") == []
    assert parse_path("M 10 10") == []
    assert len(parse_path("M 0 0 M 5 5 L 6 6")) == 1


@pytest.mark.parametrize("d, fragment", [
    ("L 10 10", "must start with a move"),
    ("10 10", "must start with a move"),
    ("M 10", "expected a number"),
    ("M 0 0 L 1 2 3", "expected a number"),
    ("M 0 0 A 5 5 0 2 0 10 10", "arc flag"),
    ("M 0 0 X 5 5", "expected a number"),
    ("M 0 0 Z 5", "after Z"),
    ("M 1e999 0", "too large"),
])
def test_bad_path_data_is_one_clear_sentence(d, fragment):
    with pytest.raises(PathDataError) as caught:
        parse_path(d)
    message = str(caught.value)
    assert fragment in message and message.endswith(".") and "\n" not in message
