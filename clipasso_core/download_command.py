"""``clipasso download-models``: fetch both CLIP models once, with a progress bar, and say where they are.

The ``clipasso`` commands that load the models (``sketch``, ``refine``) call :func:`download_with_bar`
first, so a first run shows the download too instead of waiting silently. Registered as a
``clipasso.commands`` entry point, like the subcommands other packages add.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import constants as hub_constants
from tqdm import tqdm

from .models import DEFAULT_LOSS_MODEL, DEFAULT_PRETRAINED, DEFAULT_SALIENCY_MODEL, ModelSpec
from .weights import HubWeights, download, hub_weights, missing


def add_command(commands: argparse._SubParsersAction) -> None:
    """Add ``clipasso download-models`` (a ``clipasso.commands`` entry point)."""
    parser = commands.add_parser(
        "download-models", help="download the two CLIP models (about 1.1 GB) once, with progress",
        description="Download the CLIP models a sketch needs into the Hugging Face cache (HF_HOME), showing size, "
                    "speed and time left; a download the network cuts off is resumed. Models already there are "
                    "not downloaded again.")
    parser.add_argument("--loss-model", default=DEFAULT_LOSS_MODEL, help=f"default: {DEFAULT_LOSS_MODEL}")
    parser.add_argument("--saliency-model", default=DEFAULT_SALIENCY_MODEL, help=f"default: {DEFAULT_SALIENCY_MODEL}")
    parser.add_argument("--pretrained", default=DEFAULT_PRETRAINED, help=f"default: {DEFAULT_PRETRAINED}")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    """``clipasso download-models``: download what is missing, then list where each model's file is."""
    wanted = hub_weights(args.loss_model, args.saliency_model, args.pretrained)
    if not wanted:
        print(f"Neither {args.loss_model} nor {args.saliency_model} has {args.pretrained!r} weights on the Hugging "
              "Face hub that open_clip downloads; nothing to do.")
        return 0
    fresh = bool(missing(wanted))
    paths = download_with_bar(wanted)
    print(("Downloaded" if fresh else "Already downloaded:") + f" the CLIP models, in {hub_constants.HF_HUB_CACHE}:")
    for item, path in paths.items():
        print(f"  {item.model}: {path}")
    return 0


def download_spec(spec: ModelSpec) -> None:
    """Download the hub weights ``spec`` needs and does not have yet, with a progress bar (files given: nothing)."""
    download_with_bar(hub_weights(spec.loss_model, spec.saliency_model, spec.pretrained, spec.loss_weights,
                                  spec.saliency_weights))


def download_with_bar(weights: Sequence[HubWeights]) -> dict[HubWeights, Path]:
    """:func:`~clipasso_core.weights.download` with one tqdm bar on stderr (size, speed, time left).

    The bar appears once the download starts: offline, only the download's one-sentence error is shown.
    Its errors name the library's parameters; the ``clipasso`` command says them as its options.
    """
    bar = _DownloadBar(missing(weights))
    try:
        return download(weights, bar.report)
    finally:
        bar.close()


class _DownloadBar:
    """The line naming the models being fetched and a tqdm bar of their bytes, both shown at the first report."""

    def __init__(self, needed: Sequence[HubWeights]) -> None:
        self.needed = needed
        self.bar: tqdm | None = None

    def report(self, done: int, total: int | None) -> None:
        """Show ``done`` of ``total`` bytes (``total`` None: not known yet)."""
        if self.bar is None:
            names = " and ".join(item.label() for item in self.needed)
            print(f"Downloading the CLIP models {names} (once; they are kept in the Hugging Face cache)…",
                  file=sys.stderr)
            self.bar = tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1000, desc="CLIP models",
                            file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """End the bar, if it was shown."""
        if self.bar is not None:
            self.bar.close()
