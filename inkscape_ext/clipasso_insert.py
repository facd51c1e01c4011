#!/usr/bin/env python3
"""Extensions → CLIPasso → Insert finished sketches: insert the results of jobs noted on images.

Images come from the selection, or all noted images when nothing is selected. A finished job's
strokes are inserted and its note removed; a failed, cancelled or forgotten job's note is removed
with a message; a running job keeps its note. When nothing could be inserted or removed the run
aborts with the reason (document untouched); otherwise leftovers are reported on stderr.
"""

from typing import Dict, List, Tuple

import inkex

from image_source import image_name
from pending_note import clear_note, noted_images, read_note
from sketch_client import SketchClient, ServerError, job_error_text, progress_text
from sketch_layers import SketchJob, add_sketch_layers


class Insert(inkex.EffectExtension):
    """Insert the strokes of finished sketch jobs noted on images."""

    def add_arguments(self, pars):
        """Declare the dialog's one param (clipasso_insert.inx)."""
        pars.add_argument("--token", default="")

    def effect(self):
        """Insert each noted job that finished; remove notes of dead jobs; report the rest."""
        noted = self.noted_jobs()
        clients: Dict[str, Tuple[SketchClient, str]] = {}
        messages: List[str] = []
        for image, job in noted:
            if job.server not in clients:
                client = SketchClient(job.server, self.options.token)
                clients[job.server] = (client, str(client.health().get("version", "")))
            client, version = clients[job.server]
            name = image_name(image)
            try:
                state = client.job(job.job_id)
            except ServerError as error:
                if error.status != 404:
                    raise
                clear_note(image)
                messages.append(
                    f"The server no longer knows the sketch job of “{name}”, so its note was removed; "
                    "run Sketch again."
                )
                continue
            if state["status"] == "succeeded":
                add_sketch_layers(self.svg, image, client.result(job.job_id), job, version)
                clear_note(image)
            elif state["status"] in ("failed", "cancelled"):
                clear_note(image)
                messages.append(
                    f"The sketch of “{name}” {state['status']} on the server ({job_error_text(state)}), "
                    "so its note was removed; run Sketch again."
                )
            else:
                messages.append(f"The sketch of “{name}” is not finished yet ({progress_text(state)}).")
        if all(read_note(image) is not None for image, _ in noted):  # nothing inserted or cleared
            raise inkex.AbortExtension(" ".join(messages))
        if messages:
            self.msg(" ".join(messages))

    def noted_jobs(self) -> List[Tuple[inkex.BaseElement, SketchJob]]:
        """(image, job) for each image with a pending-job note: selected ones, else all in the document."""
        if self.svg.selection:
            images = list(self.svg.selection.get(inkex.Image))
            where = "the selected images"
        else:
            images = noted_images(self.svg)
            where = "this document"
        found = []
        for image in images:
            job = read_note(image)
            if job is not None:
                found.append((image, job))
        if not found:
            raise inkex.AbortExtension(
                f"No sketch is waiting to be inserted for {where}: the images carry no CLIPasso job note."
            )
        return found


if __name__ == "__main__":
    Insert().run()
