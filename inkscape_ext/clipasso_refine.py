#!/usr/bin/env python3
"""Extensions → CLIPasso → Refine: optimise a sketch layer's (or any drawing's) strokes again, keeping the locked ones.

The designer selects strokes of a sketch layer (or makes it the current layer), or selects a picture
together with paths drawn over it by hand. The strokes go to the sketch server as the starting point, in
the picture's pixels; strokes locked in Inkscape (and, with the option, the selected ones) stay where they
are. *Add strokes* asks the server for that many new ones where the picture is salient and the strokes
leave it uncovered; *Tidy* leaves specks and near-duplicates out. The result becomes a new layer right
above the old sketch layer (or the drawn paths' layer), and the old strokes are hidden. A successful run
prints nothing; any problem aborts with one sentence and leaves the document untouched. Quality, the
live view and the shared Server tab work as in New sketch.
"""

import time

import inkex

from dialog_params import add_job_arguments, canvas_size, quality_params
from drawing_guard import OneSentence
from extension_settings import server_choice
from image_source import image_name, read_raster
from live_view import open_live_view
from picture_size import picture_size
from refine_layers import RefineError, add_refined_layer, drawing_strokes, read_strokes, sketch_layer_of
from server_api import COMPLETING_API_VERSION, api_version
from sketch_client import FINISHED, job_error_text, open_server, progress_text

DIALOG_ID = "org.clipasso.refine"


class Refine(OneSentence, inkex.EffectExtension):
    """Send a sketch layer's strokes back to the sketch server and insert the refined ones above it."""

    def add_arguments(self, pars):
        """Declare the dialog's params (clipasso_refine.inx), each --name=value from Inkscape."""
        add_job_arguments(pars, iterations=300, attempts=1)
        pars.add_argument("--tab", default="refine")
        pars.add_argument("--lock_selected", type=inkex.Boolean, default=False)
        pars.add_argument("--add_strokes", type=int, default=0)
        pars.add_argument("--tidy", type=inkex.Boolean, default=True)

    def effect(self):
        """Refine the selected sketch layer (or drawing) and insert the result above it."""
        options = self.options
        selection = list(self.svg.selection.values())
        locked_too = set(selection) if options.lock_selected else set()
        adding = options.add_strokes > 0
        input_file = options.input_file if isinstance(options.input_file, str) else None
        images = [element for element in selection if isinstance(element, inkex.Image)]
        if images:
            strokes, picture = self.drawing(images, selection, locked_too, input_file)
        else:
            layer = sketch_layer_of(selection, self.svg.get_current_layer())
            strokes = read_strokes(self.svg, layer, locked_too, adding)
            picture = read_raster(strokes.image, input_file, self.document_path())
        client, health = open_server(server_choice(DIALOG_ID, options.url, options.token), "refine")
        if (adding or options.tidy) and api_version(health) < COMPLETING_API_VERSION:
            raise RefineError(f"The sketch server at {client.url} is too old to add strokes or tidy them (it speaks "
                              f"API revision {api_version(health)}, they need {COMPLETING_API_VERSION}); "
                              "update CLIPasso where it runs, or set Add strokes to 0 and untick Tidy.")
        params = {
            "init_paths": strokes.paths,
            "locked": strokes.locked,
            **quality_params(options.quality, health, options.iterations, options.seeds),
            "seed": options.seed,
            "stroke_width": round(strokes.stroke_width * canvas_size(health) / max(strokes.pixels), 4),
            **({"add_strokes": options.add_strokes} if adding else {}),
            **({"tidy": True} if options.tidy else {}),
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
        asked = len(strokes.paths) + max(0, options.add_strokes)
        levels = client.result(job_id, None if options.tidy else [asked])["levels"]
        if len(levels) != 1 or not len(strokes.paths) <= levels[0]["strokes"] <= asked:
            raise RefineError(f"The server sent {' and '.join(str(level['strokes']) for level in levels)} strokes "
                              f"where {asked} were asked for, so nothing was inserted; check that it is a CLIPasso "
                              "sketch server of the same version.")
        add_refined_layer(strokes, levels[0], job_id, params.get("preset", "custom"))

    def drawing(self, images, selection, locked_too, input_file):
        """The strokes drawn over the one selected picture (and its file's bytes)."""
        if len(images) > 1:
            raise RefineError(f"The selection holds {len(images)} pictures; select one picture with the strokes "
                              "drawn over it, then run Refine again.")
        (image,) = images
        picture = read_raster(image, input_file, self.document_path())
        pixels = picture_size(picture)
        if pixels is None:
            raise RefineError(f"The size of the picture of “{image_name(image)}” cannot be read, so its strokes "
                              "cannot be placed on it.")
        paths = [element for element in selection if element is not image]
        return drawing_strokes(image, pixels, paths, locked_too, self.options.add_strokes > 0), picture


if __name__ == "__main__":
    Refine().run()
