"""The extension's check of a sketch result agrees with the server's: the same bodies, valid or broken, get the
same verdict (the extension cannot import the server, so it keeps its own copy of the rules)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipasso_core.joined_paths import read_paths
from clipasso_server.schemas import is_result_body

EXT_DIR = Path(__file__).resolve().parents[1] / "inkscape_ext"


@pytest.fixture(scope="module")
def result_problem():
    """The extension's check, imported as Inkscape does: flat, from the script's folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXT_DIR))
        from sketch_client import result_problem as check
    return check


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
coordinate = st.one_of(finite.map(repr), st.integers(-999, 999).map(str), st.sampled_from(["1.", "-.5", "2e-3", "+7"]))
separator = st.sampled_from([" ", ",", " , ", "  "])


@st.composite
def stroke_paths(draw: st.DrawFn) -> str:
    """Path data ``M x y C x y x y x y …`` as the server writes it, with the spacing varied."""
    segments = draw(st.integers(1, 3))
    numbers = draw(st.lists(coordinate, min_size=2 + 6 * segments, max_size=2 + 6 * segments))
    gap = draw(separator)
    text = f"M {gap.join(numbers[:2])}"
    for start in range(2, len(numbers), 6):
        text += f" C {gap.join(numbers[start:start + 6])}"
    return text + draw(st.sampled_from(["", " Z", "Z", "  "]))


as_sent = st.sampled_from([  # a refine's locked paths come back exactly as they were sent: any SVG path data
    "m 30 150 l 40 -10 h 20 v -30 q 10 -20 30 0 c 5 5 10 5 15 0 s 10 -5 15 0", "M 150.5 20 L 170 90 L 120 110",
    ", M 1 2 A 5 5 0 1010 10", "M.5.5l-1e1,2z"])


@st.composite
def sound_levels(draw: st.DrawFn) -> dict:
    count = draw(st.integers(1, 3))
    level = {"strokes": count, "stroke_width": draw(st.floats(0.01, 50.0)),
             "paths": draw(st.lists(st.one_of(stroke_paths(), as_sent), min_size=count, max_size=count)),
             "loss": draw(st.one_of(st.none(), finite))}
    if draw(st.booleans()):
        level["widths"] = draw(st.lists(st.floats(0.01, 50.0), min_size=count, max_size=count))
    if draw(st.booleans()):
        level["opacities"] = draw(st.lists(st.floats(0.0, 1.0), min_size=count, max_size=count))
    return level


sound_bodies = st.fixed_dictionaries({"width": st.integers(1, 5000), "height": st.integers(1, 5000),
                                      "levels": st.lists(sound_levels(), min_size=1, max_size=3)})

odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.just(10 ** 400), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "3", "M 1 2", "M 1e999 2 C 3 4 5 6 7 8", "M 1 2 C 3 4 5 6 7", "M 12 C 3 4 5 6 7 8",
                     "M 1 2 L 3 4", "m 1 2 c 3 4 5 6 7 8", "M 1 2 C 3 4 5 6 7 8 x", "M 1 2 C 3 4 5 6 7 8 Z Z",
                     "M 1-2C3-4-5-6-7-8", "M 1 2 C 3 4 5 6 7 ٨", "L 1 2 C 3 4 5 6 7 8", " M 1 2 L 3 4", "M\v1 2"]),
    st.lists(st.integers(-1, 3), max_size=3), st.lists(st.floats(-1.0, 2.0), max_size=3), st.dictionaries(
        st.sampled_from(["strokes", "x"]), st.integers(0, 2), max_size=2))


@st.composite
def damaged_bodies(draw: st.DrawFn) -> dict:
    """A sound body with one of its values replaced or removed, somewhere at any depth."""
    body = copy.deepcopy(draw(sound_bodies))
    holder = body
    for _ in range(draw(st.integers(0, 3))):
        keys = list(holder) if isinstance(holder, dict) else list(range(len(holder)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        if not isinstance(holder[key], (dict, list)) or not draw(st.booleans()):
            break
        holder = holder[key]
    keys = list(holder) if isinstance(holder, dict) else list(range(len(holder)))
    if keys:
        key = draw(st.sampled_from(keys))
        if isinstance(holder, dict) and draw(st.booleans()):
            del holder[key]
        else:
            holder[key] = draw(odd_values)
    return body


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sound_bodies)
def test_both_accept_every_sound_result(result_problem, body):
    assert is_result_body(body)
    assert result_problem(body) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(damaged_bodies(), odd_values, sound_bodies))
def test_the_extension_and_the_server_give_every_body_the_same_verdict(result_problem, body):
    problem = result_problem(body)
    assert is_result_body(body) == (problem is None), problem


ARGUMENTS = {"L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "A": 7, "Z": 0}


@st.composite
def sendable_paths(draw: st.DrawFn) -> str:
    """Path data a client may send as a refine's path (in pixels): any commands, absolute or relative, compact or
    spaced (a degenerate arc, say of radius 1e-300, is another matter)."""
    pixel = st.one_of(st.integers(-2000, 2000).map(str), st.floats(-2000, 2000).map(lambda v: f"{v:.3f}"),
                      st.sampled_from(["1.", "-.5", "2e-3", "+7", "0"]))
    gap = draw(st.sampled_from([" ", ",", "", "\t", " , "]))
    parts = [draw(st.sampled_from(["", " ", ","])) + draw(st.sampled_from("Mm")),
             gap.join(draw(st.lists(pixel, min_size=2, max_size=2)))]
    for _ in range(draw(st.integers(1, 4))):
        command = draw(st.sampled_from(sorted(ARGUMENTS)))
        parts.append(draw(st.sampled_from([command, command.lower()])))
        values = draw(st.lists(pixel, min_size=ARGUMENTS[command], max_size=ARGUMENTS[command]))
        if command == "A":  # radii, angle, two flags, end point
            values[3:5] = draw(st.lists(st.sampled_from("01"), min_size=2, max_size=2))
        parts.append(gap.join(values))
    return gap.join(parts)


@settings(max_examples=150, deadline=None)
@given(sendable_paths())
def test_a_path_a_refine_accepts_passes_the_result_rules(d):
    """A locked path comes back exactly as sent, so the server never refuses its own result."""
    try:
        read_paths([d])
    except ValueError:
        return  # the job would have been refused: nothing comes back
    assert is_result_body({"width": 1, "height": 1, "levels": [{"strokes": 1, "stroke_width": 1.0, "paths": [d],
                                                                 "loss": None}]}), d
