#!/usr/bin/env python3
"""Extensions → CLIPasso → Sketch…: sketch the selected images on the sketch server, insert the strokes.

A successful run prints nothing; the one exception is a job that outlives the wait, which is noted
on its image (saved with the document) and reported in one sentence on stderr. Two extension-only
options: *Show the live view* opens each job's page on the server in the browser, and *Don't wait*
notes every unfinished job on its image at once, silently, for Insert finished sketches to add later.
Closed shapes selected with an image (or the image's own clip-path) become the job's mask, in the
picture's pixels (drawing_mask.py).
"""

import time
from typing import List, Optional, Union

import inkex

from drawing_mask import clip_mask, closed_shapes, selection_mask
from image_source import image_name, read_raster
from live_view import open_live_view
from pending_note import write_note
from picture_size import picture_size
from sketch_client import DEFAULT_URL, FINISHED, SketchClient, ServerError, job_error_text, progress_text
from sketch_layers import SketchJob, SketchStyle, add_sketch_layers

INSERT_MENU = "Extensions → CLIPasso → Insert finished sketches"


class Sketch(inkex.EffectExtension):
    """Send each selected image to the sketch server and insert one layer per abstraction level."""

    def add_arguments(self, pars):
        """Declare the dialog's params (clipasso.inx), each --name=value from Inkscape."""
        pars.add_argument("--tab", default="sketch")
        pars.add_argument("--strokes", default="4,8,16,32")
        pars.add_argument("--iterations", type=int, default=2000)
        pars.add_argument("--seeds", type=int, default=3)
        pars.add_argument("--seed", type=int, default=0)
        pars.add_argument("--stroke_width", type=float, default=3.0)
        pars.add_argument("--color", type=inkex.Color, default=inkex.Color("black"))
        pars.add_argument("--visible", type=int, default=0)
        pars.add_argument("--text", default="")
        pars.add_argument("--text_weight", type=float, default=0.1)
        pars.add_argument("--fidelity", default="paper")
        pars.add_argument("--optimize_width", type=inkex.Boolean, default=False)
        pars.add_argument("--optimize_opacity", type=inkex.Boolean, default=False)
        pars.add_argument("--url", default=DEFAULT_URL)
        pars.add_argument("--token", default="")
        pars.add_argument("--wait", type=int, default=300)
        pars.add_argument("--live_view", type=inkex.Boolean, default=True)
        pars.add_argument("--dont_wait", type=inkex.Boolean, default=False)

    def effect(self):
        """Sketch every selected image; insert finished sketches, note unfinished jobs."""
        params = {
            "strokes": parse_stroke_counts(self.options.strokes),
            "iterations": self.options.iterations,
            "seeds": self.options.seeds,
            "seed": self.options.seed,
            "stroke_width": self.options.stroke_width,
            **steer_params(self.options),
        }
        if self.options.visible and self.options.visible not in params["strokes"]:
            raise inkex.AbortExtension(
                f"The visible level ({self.options.visible} strokes) is not one of the stroke counts "
                f"{self.options.strokes}; pick one of them, or 0 for the most detailed."
            )
        style = SketchStyle.from_color(self.options.color, self.options.visible)
        images = self.selected_images()
        input_file = self.options.input_file if isinstance(self.options.input_file, str) else None
        pictures = [read_raster(image, input_file, self.document_path()) for image in images]
        masks = self.drawing_masks(images, pictures)
        job_params = [params if mask is None else {**params, "mask": mask} for mask in masks]

        client = SketchClient(self.options.url, self.options.token)
        health = client.health()
        if health.get("models_error"):
            raise ServerError(f"The sketch server cannot sketch: {health['models_error']}")
        for image, picture, sent in zip(images, pictures, job_params):  # every upload checked before the first is sent
            client.check_upload(picture, sent, f"The picture of “{image_name(image)}”")
        deadline = time.monotonic() + max(0, self.options.wait)
        submitted = [client.submit(picture, sent) for picture, sent in zip(pictures, job_params)]
        jobs = [SketchJob(answer["id"], client.url, sent, style) for answer, sent in zip(submitted, job_params)]
        if self.options.live_view:
            for answer in submitted:
                if answer.get("status") not in FINISHED:
                    open_live_view(client.url, answer["id"])
        if self.options.dont_wait:
            states = {answer["id"]: answer for answer in submitted}
        else:
            states = client.wait([job.job_id for job in jobs], deadline)

        failures = [
            failure_sentence(image, states[job.job_id])
            for image, job in zip(images, jobs)
            if states[job.job_id]["status"] in ("failed", "cancelled")
        ]
        if failures:
            raise inkex.AbortExtension(" ".join(failures))
        results = {
            job.job_id: client.result(job.job_id, params["strokes"]) for job in jobs if states[job.job_id]["status"] == "succeeded"
        }

        pending = []
        for image, job in zip(images, jobs):
            if job.job_id in results:
                add_sketch_layers(self.svg, image, results[job.job_id], job, str(health.get("version", "")))
            else:
                write_note(image, job)
                pending.append(f"“{image_name(image)}” ({progress_text(states[job.job_id])})")
        if pending and not self.options.dont_wait:
            self.msg(
                f"Still sketching after {max(0, self.options.wait)} s: {', '.join(pending)}; the job is noted "
                f"on its image, and {INSERT_MENU} adds the strokes once the server is done."
            )

    def drawing_masks(self, images: List[inkex.Image], pictures: List[bytes]) -> List[Optional[Union[str, List[str]]]]:
        """Each image's mask: the selected closed shapes over it, else its own clip-path, else None.

        AbortExtension when a selected closed shape lies over none of the images, or when a picture that
        needs a mask has a size that cannot be read.
        """
        shapes = closed_shapes([element for element in self.svg.selection.values() if not isinstance(element, inkex.Image)])
        used = set()
        masks: List[Optional[Union[str, List[str]]]] = []
        for image, picture in zip(images, pictures):
            if not shapes and not image.get("clip-path"):
                masks.append(None)
                continue
            pixels = picture_size(picture)
            if pixels is None:
                raise inkex.AbortExtension(
                    f"The size of the picture of “{image_name(image)}” cannot be read, so no mask can be drawn "
                    "on it; leave the shapes out of the selection."
                )
            found = selection_mask(shapes, image, pixels)
            used.update(id(shape) for shape, _ in found)
            paths = [d for _, d in found] or clip_mask(image, pixels)
            masks.append(None if not paths else paths[0] if len(paths) == 1 else paths)
        stray = [shape for shape in shapes if id(shape) not in used]
        if stray:
            raise inkex.AbortExtension(
                f"The shape “{image_name(stray[0])}” lies over none of the selected images; move it over the part "
                "of the picture to sketch, or leave it out of the selection."
            )
        return masks

    def selected_images(self) -> List[inkex.Image]:
        """The selected images, also those inside selected groups; AbortExtension when there are none."""
        if not self.svg.selection:
            raise inkex.AbortExtension("Nothing is selected: select an image to sketch, then run Sketch again.")
        images = list(self.svg.selection.get(inkex.Image))
        if not images:
            raise inkex.AbortExtension(
                "The selection contains no image: select a raster image (or a group holding one) to sketch."
            )
        return images


def failure_sentence(image: inkex.Image, state: dict) -> str:
    """One sentence saying that the image's job failed (and why) or was cancelled."""
    if state["status"] == "cancelled":
        return (f"The sketch of “{image_name(image)}” was cancelled on the server (from its live page, say), so "
                "nothing was inserted.")
    return f"The sketch of “{image_name(image)}” failed on the server: {sentence(job_error_text(state))}"


def steer_params(options) -> dict:
    """The Steer tab's choices that differ from the paper's run (the run stays the paper's when none do)."""
    params = {}
    if options.text.strip():
        params.update(text=options.text.strip(), text_weight=options.text_weight)
    if options.fidelity != "paper":
        params["fidelity"] = options.fidelity
    if options.optimize_width:
        params["optimize_width"] = True
    if options.optimize_opacity:
        params["optimize_opacity"] = True
    return params


def sentence(text: str) -> str:
    """text ending with one full stop (the server's messages bring their own)."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def parse_stroke_counts(text: str) -> List[int]:
    """Parse "4,8,16,32" into sorted distinct positive stroke counts; AbortExtension on anything else."""
    try:
        counts = sorted({int(part) for part in text.replace(",", " ").split()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise inkex.AbortExtension(
            f"The stroke counts “{text}” are not a list of whole numbers like 4,8,16,32."
        )
    return counts


if __name__ == "__main__":
    Sketch().run()
