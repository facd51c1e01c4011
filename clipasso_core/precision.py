"""Numeric precision of the CLIP networks: which one a request means on a device, and the autocast that applies it.

Only the loss and saliency networks run in reduced precision (autocast). The rasterizer, the feature
differences, the loss sums and Adam stay in float32. ``auto`` picks bf16 where the hardware computes it
natively (CUDA GPUs that support it; CPUs with AVX512-BF16 or AMX, as torch detects them) and float32
elsewhere, where bf16 would be emulated and slower. fp16 has a narrow range, so its backward pass needs
loss scaling (:func:`grad_scaler`).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from pathlib import Path

import torch


class Precision(str, enum.Enum):
    """A requested precision: ``auto`` resolves per device; the others are what the networks compute in."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"

    def __str__(self) -> str:
        return self.value


PRECISION_CHOICES = tuple(precision.value for precision in Precision)

_DTYPES = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16): torch's feature detection, else cpuinfo."""
    get_capabilities: Callable[[], dict[str, object]] | None = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        capabilities = get_capabilities()
        return any(bool(capabilities.get(flag)) for flag in _NATIVE_BF16_FLAGS)
    try:
        return cpuinfo_has_native_bf16(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return False


def cpuinfo_has_native_bf16(cpuinfo: str) -> bool:
    """Whether the ``flags`` lines of a Linux ``/proc/cpuinfo`` text name AVX512-BF16 or AMX-BF16."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in _NATIVE_BF16_FLAGS)


def resolve_precision(requested: Precision | str, device: torch.device) -> Precision:
    """The precision the networks compute in for ``requested`` on ``device`` (never ``auto``)."""
    requested = Precision(requested)
    if requested is not Precision.AUTO:
        return requested
    if device.type == "cuda":
        return Precision.BF16 if torch.cuda.is_bf16_supported() else Precision.FP32
    if device.type == "cpu" and cpu_has_native_bf16():
        return Precision.BF16
    return Precision.FP32


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """A context in which the networks' matrix products and convolutions run in ``precision`` (fp32: no change).

    Its weight-cast cache is off: each weight is cast once per pass anyway, and a CUDA graph may not reuse
    casts made before its capture.
    """
    dtype = _DTYPES.get(Precision(precision))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


def grad_scaler(precision: Precision, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler for ``precision``: dynamic scaling for fp16, a pass-through for the others."""
    return torch.amp.GradScaler(device.type, enabled=Precision(precision) is Precision.FP16)
