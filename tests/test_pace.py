"""The server's pace model: seconds per image-pass measured from running jobs, and each preset's job time."""

from __future__ import annotations

import pytest

from clipasso_core.optimize import planned_sketch_steps
from clipasso_core.params import make_params
from clipasso_server.pace import PRESET_STROKES, PaceMeter, recommended_preset


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def measured(pace: PaceMeter, clock: Clock, job_id: str, params, steps: tuple[int, int], seconds: float) -> None:
    """Job ``job_id`` reports ``steps[0]`` done, then ``steps[1]`` done ``seconds`` later."""
    pace.observe(job_id, params, steps[0])
    clock.now += seconds
    pace.observe(job_id, params, steps[1])


def test_no_time_is_promised_before_two_reports_of_a_job():
    clock = Clock()
    pace = PaceMeter(clock)
    assert pace.preset_seconds() is None
    pace.observe("a", make_params("quick"), 1)  # the first report: loading and the first step are behind it
    clock.now += 30
    assert pace.preset_seconds() is None
    pace.observe("a", make_params("quick"), 1)  # no step since: nothing measured
    assert pace.preset_seconds() is None


def test_a_quick_job_at_one_second_a_step_takes_its_steps_in_seconds():
    clock = Clock()
    pace = PaceMeter(clock)
    job = make_params("quick", strokes=PRESET_STROKES)
    measured(pace, clock, "a", job, (10, 30), 20.0)
    times = pace.preset_seconds()
    assert times["quick"] == pytest.approx(job.iterations)
    paper = make_params("paper", strokes=PRESET_STROKES)
    # the paper's job: 3 attempts, each pass as dear as quick's when both use the same augmentations and the
    # loss network's size, and dearer by the pixels of its 224 px against quick's 112
    passes = (1 + paper.augmentations) / (1 + job.augmentations) * (224 / job.loss_size) ** 2
    assert times["paper"] == pytest.approx(job.iterations * paper.seeds * paper.iterations / job.iterations * passes,
                                           rel=1e-3)


def test_balanced_is_timed_with_its_pick():
    clock = Clock()
    pace = PaceMeter(clock)
    paper = make_params("paper", strokes=PRESET_STROKES)
    measured(pace, clock, "a", paper, (0, 10), 60.0)
    times = pace.preset_seconds()
    balanced = make_params("balanced", strokes=PRESET_STROKES)
    share = planned_sketch_steps(balanced) / planned_sketch_steps(paper)
    assert times["balanced"] == pytest.approx(times["paper"] * share, rel=1e-3)
    assert times["balanced"] < times["paper"] / 2


def test_a_step_after_the_pick_counts_one_sketch_per_level():
    clock = Clock()
    pace = PaceMeter(clock)
    balanced = make_params("balanced", strokes=PRESET_STROKES)
    paper = make_params("paper", strokes=PRESET_STROKES)
    measured(pace, clock, "before", paper, (0, 10), 30.0)  # 10 steps of 12 sketches
    before = pace.preset_seconds()
    pace.forget("before")
    measured(pace, clock, "after", balanced, (500, 510), 10.0)  # 10 steps of 4 sketches after the pick
    assert pace.preset_seconds() == pytest.approx(before, rel=1e-3)


def test_a_job_run_again_starts_a_new_measurement():
    clock = Clock()
    pace = PaceMeter(clock)
    job = make_params("quick", strokes=PRESET_STROKES)
    measured(pace, clock, "a", job, (0, 10), 10.0)
    pace.forget("a")  # it ended (or was put back in the queue)
    clock.now += 1000.0  # the queue waited; the job runs again from its start
    measured(pace, clock, "a", job, (5, 10), 5.0)
    assert pace.preset_seconds()["quick"] == pytest.approx(job.iterations)


def test_the_pace_follows_the_recent_jobs():
    clock = Clock()
    pace = PaceMeter(clock, window=3)
    job = make_params("quick", strokes=PRESET_STROKES)
    pace.observe("a", job, 0)
    for step in range(1, 4):  # a slow machine
        clock.now += 10.0
        pace.observe("a", job, step)
    for step in range(4, 7):  # the other work ended
        clock.now += 1.0
        pace.observe("a", job, step)
    assert pace.preset_seconds()["quick"] == pytest.approx(job.iterations)


@pytest.mark.parametrize("device, preset", [("cpu", "quick"), ("cuda", "paper"), ("cuda:1", "paper"), ("mps", "quick")])
def test_the_recommended_preset_is_the_papers_on_a_gpu_and_quick_elsewhere(device, preset):
    assert recommended_preset(device) == preset
