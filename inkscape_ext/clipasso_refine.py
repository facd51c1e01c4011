#!/usr/bin/env python3
"""Extensions → CLIPasso → Refine: optimise a sketch layer's strokes again, keeping the locked ones.

The designer selects strokes of a sketch layer (or makes it the current layer). All its strokes go to
the sketch server as the starting point, in the pixels of the image the sketch was made for; strokes
locked in Inkscape (and, with the option, the selected ones) stay where they are. The refined strokes
become a new sublayer right above the old one, which is hidden. A successful run prints nothing; any
problem aborts with one sentence and leaves the document untouched. Quality, the live view and the
shared Server tab work as in New sketch.
"""

import time

import inkex

from dialog_params import canvas_size, quality_params
from drawing_guard import OneSentence
from extension_settings import DEFAULT_URL, server_choice
from image_source import image_name, read_raster
from live_view import open_live_view
from refine_layers import add_refined_layer, read_strokes, sketch_layer_of
from sketch_client import FINISHED, job_error_text, open_server, progress_text

DIALOG_ID = "org.clipasso.refine"


class Refine(OneSentence, inkex.EffectExtension):
    """Send a sketch layer's strokes back to the sketch server and insert the refined ones above it."""

    def add_arguments(self, pars):
        """Declare the dialog's params (clipasso_refine.inx), each --name=value from Inkscape."""
        pars.add_argument("--tab", default="refine")
        pars.add_argument("--quality", default="auto")
        pars.add_argument("--lock_selected", type=inkex.Boolean, default=False)
        pars.add_argument("--live_view", type=inkex.Boolean, default=True)
        pars.add_argument("--iterations", type=int, default=300)
        pars.add_argument("--seeds", type=int, default=1)
        pars.add_argument("--seed", type=int, default=0)
        pars.add_argument("--url", default=DEFAULT_URL)
        pars.add_argument("--token", default="")
        pars.add_argument("--wait", type=int, default=300)

    def effect(self):
        """Refine the selected sketch layer and insert the result above it."""
        options = self.options
        selection = list(self.svg.selection.values())
        layer = sketch_layer_of(selection, self.svg.get_current_layer())
        strokes = read_strokes(self.svg, layer, set(selection) if options.lock_selected else set())
        input_file = options.input_file if isinstance(options.input_file, str) else None
        picture = read_raster(strokes.image, input_file, self.document_path())
        client, health = open_server(server_choice(DIALOG_ID, options.url, options.token), "refine")
        params = {
            "init_paths": strokes.paths,
            "locked": strokes.locked,
            **quality_params(options.quality, health, options.iterations, options.seeds),
            "seed": options.seed,
            "stroke_width": round(strokes.stroke_width * canvas_size(health) / max(strokes.pixels), 4),
        }
        client.check_upload(picture, params, f"The picture of “{image_name(strokes.image)}”")
        deadline = time.monotonic() + max(0, options.wait)
        submitted = client.submit(picture, params)
        job_id = submitted["id"]
        if options.live_view and submitted.get("status") not in FINISHED:
            open_live_view(client.url, job_id)
        state = client.wait([job_id], deadline)[job_id]
        if state["status"] in ("failed", "cancelled"):
            raise inkex.AbortExtension(
                f"The refine {state['status']} on the server: {job_error_text(state).strip().rstrip('.')}."
            )
        if state["status"] != "succeeded":
            raise inkex.AbortExtension(
                f"The refine is not finished after {max(0, options.wait)} s ({progress_text(state)}); "
                "the document is unchanged. Raise the wait time in the Server tab and run Refine again: "
                "the server keeps the job and answers at once when it is done."
            )
        (level,) = client.result(job_id, [len(strokes.paths)])["levels"]
        add_refined_layer(strokes, level, job_id, params.get("preset", "custom"))


if __name__ == "__main__":
    Refine().run()
