"""Reduced precision of the CLIP networks: how a request resolves, and that the loss and the sketch stay faithful."""

import dataclasses

import pytest
import torch

from clipasso_core import precision as precision_module
from clipasso_core.loss import ClipConvLoss
from clipasso_core.models import load_models
from clipasso_core.optimize import optimize_sketches, render
from clipasso_core.params import SketchParams
from clipasso_core.precision import Precision, autocast, cpuinfo_has_native_bf16, resolve_precision
from clipasso_core.sketch import initial_points

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_exactly_on_cpus_that_compute_it_natively(monkeypatch, native):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) is (Precision.BF16 if native else Precision.FP32)
    for explicit in ("fp32", "bf16", "fp16"):
        assert resolve_precision(explicit, CPU) is Precision(explicit)


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpuinfo_has_native_bf16("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpuinfo_has_native_bf16("flags\t: sse avx2 amx_bf16\n")
    assert not cpuinfo_has_native_bf16("flags\t: fpu sse avx2 avx512f avx512_vnni\nmodel name\t: has avx512_bf16\n")


@pytest.mark.parametrize("chosen, dtype", [(Precision.FP32, torch.float32), (Precision.BF16, torch.bfloat16),
                                           (Precision.FP16, torch.float16)])
def test_autocast_runs_convolutions_in_the_chosen_precision(chosen, dtype):
    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast(chosen, CPU):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == dtype


def job(models, target, iterations):
    params = SketchParams(strokes=[4, 8], seeds=1, iterations=iterations, seed=5)
    loss = ClipConvLoss(models.loss, target)
    history = []
    outcome = optimize_sketches(loss, initial_points(target, params, models), params,
                                progress=lambda p: history.append(sum(p.best_loss.values())))
    return loss, outcome, history


def models_in(tiny_spec, chosen):
    return load_models(dataclasses.replace(tiny_spec, precision=chosen), CPU)


@pytest.fixture(scope="module")
def fp32_job(tiny_spec, target):
    """The fp32 run that each reduced precision is compared with (the same for both)."""
    return job(models_in(tiny_spec, Precision.FP32), target, 12)


@pytest.mark.parametrize("reduced", [Precision.BF16, pytest.param(Precision.FP16, marks=pytest.mark.slow)])
def test_reduced_precision_computes_the_same_loss_and_still_improves_the_sketch(tiny_spec, target, fp32_job, reduced):
    fp32_loss, fp32_run, _ = fp32_job
    low_models = models_in(tiny_spec, reduced)
    assert low_models.loss.precision is reduced and low_models.saliency.precision is reduced
    low_loss, low_run, history = job(low_models, target, 12)
    # the same strokes score the same eval loss in both precisions
    points = [level.points[None] for level in fp32_run.levels]
    sketches = render(points, 3.0, 224)
    exact, approximate = fp32_loss.eval_terms(sketches).sum(-1), low_loss.eval_terms(sketches).sum(-1)
    assert approximate.dtype == torch.float32
    assert torch.allclose(approximate, exact, rtol=0.03)
    # and a run on the same seed ends within a few percent of the fp32 run, having improved its sketch
    for fp32_level, low_level in zip(fp32_run.levels, low_run.levels):
        assert low_level.loss == pytest.approx(fp32_level.loss, rel=0.05)
    assert history[-1] < 0.95 * history[0]
