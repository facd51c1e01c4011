"""The CLIP weights open_clip fetches from the Hugging Face hub: which files, whether they are here, fetching them.

open_clip (3.x) downloads a pretrained tag's weights with huggingface_hub from the repo its ``hf_hub``
entry names: ``org/name/`` means ``open_clip_model.safetensors``, tried first, else
``open_clip_pytorch_model.bin``; ``org/name/file.bin`` means ``file.safetensors``, else ``file.bin``.
The paper's models with ``pretrained="openai"``: RN101 → ``timm/resnet101_clip.openai``, ViT-B-32 →
``timm/vit_base_patch32_clip_224.openai``, each an fp32 ``open_clip_model.safetensors`` (479 MB and
605 MB on the hub). :func:`download` puts exactly those files into huggingface_hub's cache (honouring
``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE``), where open_clip finds them when it loads the models.

huggingface_hub resumes a download the network cut off (HTTP ``Range``) within one call; each file is
tried up to three times. Progress is the growth of huggingface_hub's ``*.incomplete`` files in the cache,
which every version and transport (plain HTTP or Xet) writes.
"""

from __future__ import annotations

import posixpath
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HfHubHTTPError

from .errors import WeightsUnavailableError

KNOWN_SIZES_MB = {
    "timm/resnet101_clip.openai": 479,
    "timm/vit_base_patch32_clip_224.openai": 605,
}
"""Size of the weights file open_clip uses, as the hub lists it, for repos we name before asking the hub."""
TRIES = 3
RETRY_PAUSE_S = 2.0
POLL_S = 0.25

Progress = Callable[[int, "int | None"], None]
"""Called with (bytes done, bytes in all) while weights download; the total is ``None`` when unknown."""


@dataclass(frozen=True)
class HubWeights:
    """One model's weights on the hub: the model, its role in a sketch, its repo and the files open_clip tries."""

    model: str
    role: str  # "loss" or "saliency": which setting gives a local file instead
    repo_id: str
    filenames: tuple[str, ...]

    @property
    def size_hint_mb(self) -> int | None:
        """The file's size in megabytes as the hub lists it, when known without asking the hub."""
        return KNOWN_SIZES_MB.get(self.repo_id)

    def label(self) -> str:
        """The model with its size, e.g. ``RN101 (479 MB)``."""
        return f"{self.model} ({self.size_hint_mb} MB)" if self.size_hint_mb else self.model


@dataclass(frozen=True)
class OfflineWay:
    """How weights are given as files instead of downloaded: each role's setting, and where settings are made."""

    loss: str
    saliency: str
    where: str = ""

    def sentence(self, roles: Sequence[str]) -> str:
        """The clause naming the settings for ``roles``, e.g. ``give the checkpoint file as X in FILE``."""
        names = [getattr(self, role) for role in dict.fromkeys(roles)]
        files = "files" if len(names) > 1 else "file"
        return f"give the checkpoint {files} as {' and '.join(names)}{self.where}"

    def names(self) -> dict[str, str]:
        """How this way says each weights parameter the library's messages name (for ``ClipassoError.worded``)."""
        return {LIBRARY_WAY.loss: self.loss + self.where, LIBRARY_WAY.saliency: self.saliency + self.where}


LIBRARY_WAY = OfflineWay("ModelSpec.loss_weights", "ModelSpec.saliency_weights")
"""What the library's own messages name."""


def hub_weights(loss_model: str, saliency_model: str, pretrained: str | None,
                loss_file: Path | None = None, saliency_file: Path | None = None) -> list[HubWeights]:
    """The weights open_clip would fetch from the hub for a sketch's two models (none for a role given a file)."""
    found = []
    for role, name, file in (("loss", loss_model, loss_file), ("saliency", saliency_model, saliency_file)):
        if file is None:
            found += for_model(name, pretrained, role)
    return found


def for_model(name: str, pretrained: str | None, role: str = "loss") -> list[HubWeights]:
    """The weights open_clip fetches from the hub for model ``name`` (an open_clip name or a config .json), if any."""
    if not pretrained:
        return []
    import open_clip  # where it is needed: it brings torchvision and timm (about 2.5 s)

    model = Path(name).stem if name.endswith(".json") else name
    hub = (open_clip.get_pretrained_cfg(model, pretrained) or {}).get("hf_hub", "")
    if not hub:
        return []
    repo_id, filename = posixpath.split(hub)  # as open_clip splits it: "org/name/" names no file
    return [HubWeights(model, role, repo_id, candidate_files(filename))]


def candidate_files(filename: str) -> tuple[str, ...]:
    """The files open_clip tries for an ``hf_hub`` file name (empty: the default), safetensors first."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    if not filename or filename == HF_WEIGHTS_NAME:
        return (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)
    if filename.endswith((".bin", ".pth")):
        return (filename[:-4] + ".safetensors", filename)
    return (filename,)


def cached_file(weights: HubWeights) -> Path | None:
    """The weights file in the local hub cache, or ``None`` when none of its candidate files is there."""
    for filename in weights.filenames:
        path = huggingface_hub.try_to_load_from_cache(weights.repo_id, filename)
        if isinstance(path, str):
            return Path(path)
    return None


def missing(weights: Sequence[HubWeights]) -> list[HubWeights]:
    """Those of ``weights`` that are not in the local hub cache."""
    return [item for item in weights if cached_file(item) is None]


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub (``HF_ENDPOINT``) accepts a connection at all, so that offline use fails fast."""
    if hub_constants.HF_HUB_OFFLINE:
        return False
    if urllib.request.getproxies().get("https"):
        return True  # only the proxy can tell; let the download itself try
    url = urllib.parse.urlsplit(hub_constants.ENDPOINT)
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def unavailable(missing_weights: Sequence[HubWeights], way: OfflineWay = LIBRARY_WAY,
                reason: str | None = None) -> WeightsUnavailableError:
    """The one error for weights that are neither here nor downloadable: every missing model with its size,
    ``clipasso download-models`` and the way to give files instead. Its ``missing`` attribute lists them."""
    names = " and ".join(item.label() for item in missing_weights)
    host = urllib.parse.urlsplit(hub_constants.ENDPOINT).hostname or hub_constants.ENDPOINT
    if reason is None and hub_constants.HF_HUB_OFFLINE:
        reason = "HF_HUB_OFFLINE is set"
    because = f" ({reason})" if reason else ""
    roles = [item.role for item in missing_weights]
    error = WeightsUnavailableError(
        f"The CLIP weights of {names} are not on this computer and could not be downloaded from the Hugging Face "
        f"hub ({host}){because}; connect to the internet and run clipasso download-models, or "
        f"{way.sentence(roles)}.", [getattr(way, role) for role in dict.fromkeys(roles)]
    )
    error.missing = tuple(missing_weights)  # type: ignore[attr-defined]
    return error


def download(weights: Sequence[HubWeights], progress: Progress | None = None,
             way: OfflineWay = LIBRARY_WAY) -> dict[HubWeights, Path]:
    """Fetch those of ``weights`` that are not cached into the hub cache, reporting bytes; every one's local file.

    Raises :func:`unavailable`'s error when the hub cannot be reached or a file fails :data:`TRIES` times.
    """
    report = progress or (lambda done, total: None)
    paths = {item: cached_file(item) for item in weights}
    needed = [item for item, path in paths.items() if path is None]
    check_reachable(needed, way)
    try:
        plan = [(item, *remote_file(item)) for item in needed]
    except Exception as error:  # the hub answered oddly or the connection broke: one sentence, with the reason
        raise unavailable(needed, way, _reason(error)) from None
    sizes = [size for _, _, size in plan]
    total = None if None in sizes else sum(sizes)  # type: ignore[arg-type]
    done = 0
    for item, filename, size in plan:
        report(done, total)
        paths[item] = _fetch_file(item, filename, lambda part, base=done: report(base + part, total), way)
        done += size if size is not None else paths[item].stat().st_size  # type: ignore[union-attr]
    if plan:
        report(done, total)
    return paths  # type: ignore[return-value]


def check_reachable(needed: Sequence[HubWeights], way: OfflineWay = LIBRARY_WAY) -> None:
    """Raise :func:`unavailable`'s error when weights are ``needed`` and the hub cannot be reached."""
    if needed and not hub_reachable():
        raise unavailable(needed, way)


def remote_file(weights: HubWeights) -> tuple[str, int | None]:
    """The first of the candidate files the hub has, and its size in bytes (when the hub says)."""
    last: Exception | None = None
    for filename in weights.filenames:
        url = huggingface_hub.hf_hub_url(weights.repo_id, filename)
        try:
            metadata = huggingface_hub.get_hf_file_metadata(url)
        except HfHubHTTPError as error:
            if getattr(error.response, "status_code", None) == 404:
                last = error
                continue
            raise
        return filename, metadata.size
    raise FileNotFoundError(f"{weights.repo_id} has none of {', '.join(weights.filenames)}") from last


def _fetch_file(weights: HubWeights, filename: str, progress: Callable[[int], None], way: OfflineWay) -> Path:
    """One file into the cache, up to :data:`TRIES` times, reporting the bytes of the attempt under way."""
    for attempt in range(1, TRIES + 1):
        watcher = _IncompleteWatcher(blobs_folder(weights.repo_id), progress)
        try:
            with watcher:
                return Path(huggingface_hub.hf_hub_download(weights.repo_id, filename))
        except KeyboardInterrupt:
            raise
        except Exception as error:  # network, HTTP or disk: tried again, then reported in one sentence
            if attempt == TRIES:
                raise unavailable([weights], way, _reason(error)) from None
            time.sleep(RETRY_PAUSE_S * attempt)
    raise AssertionError("unreachable")


def blobs_folder(repo_id: str) -> Path:
    """The folder of a model repo's files in huggingface_hub's cache (its documented layout)."""
    return Path(hub_constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "blobs"


class _IncompleteWatcher:
    """While active, reports the size of the folder's ``*.incomplete`` files written since it started.

    huggingface_hub 1.x appends to one ``<etag>.incomplete`` (a resumed file counts whole); 2.x writes a
    ``<etag>.<id>.incomplete`` per download. Files left by an earlier, killed run are not written to, so
    they do not count.
    """

    def __init__(self, folder: Path, progress: Callable[[int], None]) -> None:
        self.folder = folder
        self.progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="clipasso-download-progress", daemon=True)
        self._started = time.time()

    def __enter__(self) -> "_IncompleteWatcher":
        self._started = time.time() - 1.0  # file times may be coarser than the clock
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def written(self) -> int:
        """Bytes in the incomplete files written since the watch began."""
        size = 0
        try:
            files = list(self.folder.glob("*.incomplete"))
        except OSError:
            return 0
        for path in files:
            try:
                status = path.stat()
            except OSError:  # finished and moved into place meanwhile
                continue
            if status.st_mtime >= self._started:
                size += status.st_size
        return size

    def _watch(self) -> None:
        last = -1
        while not self._stop.wait(POLL_S):
            size = self.written()
            if size != last:
                self.progress(size)
                last = size


def _reason(error: BaseException) -> str:
    """A short reason for a failed download (the first line of the library's message)."""
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return first if len(first) <= 160 else first[:157] + "…"
