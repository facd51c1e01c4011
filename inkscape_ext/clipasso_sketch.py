#!/usr/bin/env python3
"""Extensions → CLIPasso → New sketch…: sketch the selected images on the sketch server, insert the strokes.

A successful run prints nothing; the one exception is a job that outlives the wait, which gets a
placeholder layer where its strokes will go (see pending_note.py) and is reported in one sentence on
stderr. Two extension-only options: *Show the live view* opens each job's page on the server in the
browser, and *Don't wait* puts a placeholder for every unfinished job at once, silently, for Update
waiting sketches to fill later. Closed shapes selected with an image (or the image's own clip-path)
become the job's mask, in the picture's pixels (drawing_mask.py). The dialog's words become the API's
params in dialog_params.py; the Server tab's URL and token are shared with the other dialogs
(extension_settings.py).
"""

import time
from typing import List, Optional, Union

import inkex

from dialog_params import (LEVEL_TICKS, add_job_arguments, canvas_size, expected_time, pen_width_param, prompt_weight,
                           quality_params, stroke_counts)
from drawing_guard import OneSentence
from drawing_mask import clip_mask, closed_shapes, selection_mask
from extension_settings import server_choice
from image_source import image_name, read_raster
from live_view import open_live_view
from pending_note import UPDATE_MENU, add_placeholder
from picture_size import picture_size
from sketch_client import FINISHED, job_error_text, open_server, progress_text
from sketch_layers import SketchJob, SketchStyle, add_sketch_layers

DIALOG_ID = "org.clipasso.sketch"


class Sketch(OneSentence, inkex.EffectExtension):
    """Send each selected image to the sketch server and insert one layer per abstraction level."""

    def add_arguments(self, pars):
        """Declare the dialog's params (clipasso.inx), each --name=value from Inkscape."""
        add_job_arguments(pars, iterations=2000, attempts=3)
        pars.add_argument("--tab", default="sketch")
        for count in LEVEL_TICKS:
            pars.add_argument(f"--level_{count}", type=inkex.Boolean, default=True)
        pars.add_argument("--pen_width", type=float, default=0.0)
        pars.add_argument("--color", type=inkex.Color, default=inkex.Color("black"))
        pars.add_argument("--visible", type=int, default=0)
        pars.add_argument("--dont_wait", type=inkex.Boolean, default=False)
        pars.add_argument("--text", default="")
        pars.add_argument("--prompt_strength", default="gentle")
        pars.add_argument("--fidelity", default="paper")
        pars.add_argument("--optimize_width", type=inkex.Boolean, default=False)
        pars.add_argument("--optimize_opacity", type=inkex.Boolean, default=False)
        pars.add_argument("--other_strokes", default="")

    def effect(self):
        """Sketch every selected image; insert finished sketches, a placeholder for each unfinished one."""
        options = self.options
        strokes = stroke_counts([count for count in LEVEL_TICKS if getattr(options, f"level_{count}")],
                                options.other_strokes)
        if options.visible and options.visible not in strokes:
            raise inkex.AbortExtension(
                f"The level left visible ({options.visible} strokes) is not one of the levels sketched "
                f"({', '.join(map(str, strokes))}); tick it, or leave the most detailed one visible."
            )
        style = SketchStyle.from_color(options.color, options.visible)
        images = self.selected_images()
        input_file = options.input_file if isinstance(options.input_file, str) else None
        pictures = [read_raster(image, input_file, self.document_path()) for image in images]
        masks = self.drawing_masks(images, pictures)

        client, health = open_server(server_choice(DIALOG_ID, options.url, options.token), "sketch")
        params = {"strokes": strokes, **quality_params(options.quality, health, options.iterations, options.seeds),
                  "seed": options.seed, **steer_params(options)}
        job_params = []
        for image, picture, mask in zip(images, pictures, masks):
            sent = dict(params)
            if options.pen_width > 0:
                sent["stroke_width"] = pen_width_param(options.pen_width, image, picture_size(picture),
                                                       canvas_size(health), image_name(image))
            if mask is not None:
                sent["mask"] = mask
            job_params.append(sent)
        for image, picture, sent in zip(images, pictures, job_params):  # every upload checked before the first is sent
            client.check_upload(picture, sent, f"The picture of “{image_name(image)}”")
        deadline = time.monotonic() + max(0, options.wait)
        submitted = [client.submit(picture, sent) for picture, sent in zip(pictures, job_params)]
        jobs = [SketchJob(answer["id"], client.url, sent, style) for answer, sent in zip(submitted, job_params)]
        if options.live_view:
            for answer in submitted:
                if answer.get("status") not in FINISHED:
                    open_live_view(client.url, answer["id"])
        if options.dont_wait:
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
            job.job_id: client.result(job.job_id, strokes) for job in jobs if states[job.job_id]["status"] == "succeeded"
        }

        version = str(health.get("version", ""))
        pending, waiting_layers = [], []
        for image, job in zip(images, jobs):
            if job.job_id in results:
                add_sketch_layers(self.svg, image, results[job.job_id], job, version)
            else:
                placeholder = add_placeholder(self.svg, image, job, version)
                waiting_layers.append(f"“{placeholder.getparent().get('inkscape:label')}”")
                pending.append(f"“{image_name(image)}” ({progress_text(states[job.job_id])})")
        if pending and not options.dont_wait:
            expected = expected_time(health, params.get("preset"))
            self.msg(
                f"Still sketching after {max(0, options.wait)} s: {', '.join(pending)}"
                f"{f'; {expected}' if expected else ''}. The layer {', '.join(waiting_layers)} waits for the "
                f"strokes: {UPDATE_MENU} fills it once the server is done."
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
            raise inkex.AbortExtension("Nothing is selected: select an image to sketch, then run New sketch again.")
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
        params.update(text=options.text.strip(), text_weight=prompt_weight(options.prompt_strength))
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


if __name__ == "__main__":
    Sketch().run()
