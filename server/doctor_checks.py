"""The sketch server's part of ``clipasso doctor``: its settings, the device and precision a job would use,
the CLIP models on this computer, and the login service (a ``clipasso.doctor`` entry point)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clipasso_core.errors import ClipassoError
from clipasso_core.model_options import model_spec
from clipasso_core.models import ModelSpec, resolve_device
from clipasso_core.precision import Precision, resolve_precision
from clipasso_core.weights import cached_file, for_model

from . import cli
from .service import login_service, program_exists, recorded_command
from .settings_file import SettingsError, settings_path


def check(ok: bool, text: str, fix: str = "", needed: bool = True) -> dict[str, Any]:
    """One line of ``clipasso doctor``."""
    return {"ok": ok, "text": text, "fix": fix, "needed": needed}


def checks() -> list[dict[str, Any]]:
    """Settings, device and precision, models, login service."""
    path = settings_path()
    try:
        in_force = cli.server_settings()
    except SettingsError as error:
        return [check(False, f"server settings: {error}", f"correct {path}")]
    problem, settings = in_force.problem, in_force.args
    fix = f"correct {cli.TOKEN_ENV}" if problem and problem.startswith(cli.TOKEN_ENV) else f"correct {path}"
    found = [check(problem is None, f"server settings: {problem or (path if path.is_file() else 'the defaults')}",
                   fix)]
    found.append(device_check(settings.device, settings.precision))
    found += model_checks(model_spec(settings))
    found.append(service_check())
    return found


def device_check(device_name: str, precision: str | None) -> dict[str, Any]:
    """The device and precision a job would use (with the GPU's name)."""
    try:
        device = resolve_device(device_name)
    except ClipassoError as error:
        return check(False, f"device: {error}", f"set device in {settings_path()} to auto or cpu")
    computes = resolve_precision(Precision(precision or Precision.AUTO), device).value
    if device.type == "cuda":
        import torch

        return check(True, f"jobs run on the GPU {torch.cuda.get_device_name(device)} ({device}) in {computes}")
    return check(True, f"jobs run on the CPU in {computes} (no CUDA GPU seen: sketches take minutes, not seconds)")


def model_checks(spec: ModelSpec) -> list[dict[str, Any]]:
    """One line per CLIP model: its file given in the settings, or its weights in the Hugging Face cache."""
    found = []
    for role, name, file in (("loss", spec.loss_model, spec.loss_weights),
                             ("saliency", spec.saliency_model, spec.saliency_weights)):
        if file is not None:
            ok = Path(file).is_file()
            found.append(check(ok, f"{role} model {name}: weights file {file}" + ("" if ok else " does not exist"),
                               f"give an existing file as {role}_weights in {settings_path()}"))
            continue
        hub = for_model(name, spec.pretrained, role)
        if not hub:
            found.append(check(False, f"{role} model {name}: open_clip has no {spec.pretrained!r} weights to "
                                      "download for it", f"give a checkpoint as {role}_weights in {settings_path()}"))
            continue
        cached = cached_file(hub[0])
        fix = "clipasso download-models" + _model_options(spec)
        found.append(check(cached is not None, f"{role} model {hub[0].label()}: "
                           + (f"downloaded ({cached})" if cached else "not downloaded yet"),
                           f"run {fix} (or the server fetches it at its first job)"))
    return found


def _model_options(spec: ModelSpec) -> str:
    """The options of ``clipasso download-models`` that name the models of ``spec`` when they are not the defaults."""
    defaults = ModelSpec()
    options = [(flag, value, default) for flag, value, default in (
        ("--loss-model", spec.loss_model, defaults.loss_model),
        ("--saliency-model", spec.saliency_model, defaults.saliency_model),
        ("--pretrained", spec.pretrained, defaults.pretrained)) if value != default]
    return "".join(f" {flag} {value}" for flag, value, _ in options)


def service_check() -> dict[str, Any]:
    """Whether the login service is installed and what it starts (advice only: Inkscape can start the server)."""
    service = login_service()
    if not service.path.exists():
        return check(False, f"login service: not installed ({service.kind})",
                     "clipasso-server service install starts the server at every login (optional: Inkscape starts "
                     "it when needed)", needed=False)
    command = recorded_command(service)
    if not program_exists(command):
        return check(False, f"login service: {service.path} starts {' '.join(command) or 'nothing readable'}, which "
                            "is gone", "run clipasso-server service install again", needed=False)
    return check(True, f"login service: {service.path} starts {' '.join(command)}; {service.started()}")
