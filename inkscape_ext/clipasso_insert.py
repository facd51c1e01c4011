#!/usr/bin/env python3
"""Extensions → CLIPasso → Update waiting sketches: fill the layers that wait for a sketch still running.

New sketch leaves a placeholder for each job it stopped waiting for (pending_note.py); earlier versions
noted the job on its image. Notes come from the selected images, or from the whole document when nothing
is selected. A finished job's strokes fill its layer (a new layer for a note on an image) and the note
goes; a failed, cancelled or forgotten job's note goes with a message; a running job keeps its note.
When nothing could be inserted or removed the run aborts with the reason (document untouched);
otherwise leftovers are reported on stderr. A server that does not answer keeps its jobs' notes
without stopping the others.

A note names the server of its job, and a shared document may name any server: the token goes only to
the shared server of the dialogs (loopback names count as one), other servers are asked without it.
"""

import urllib.parse
from typing import Dict, List, Optional, Tuple

import inkex

from drawing_guard import OneSentence
from extension_settings import DEFAULT_URL, server_choice
from image_source import image_name
from pending_note import clear_note, noted_elements, noted_image, read_note, sketch_layer_of
from sketch_client import ServerError, SketchClient, job_error_text, progress_text, server_url
from sketch_layers import SketchJob, add_sketch_layers, fill_sketch_layer

DIALOG_ID = "org.clipasso.insert"


class NotAsked(Exception):
    """A noted server that is not asked: the exception's text says why, as the end of a sentence."""


class Insert(OneSentence, inkex.EffectExtension):
    """Insert the strokes of finished sketch jobs where they wait."""

    def add_arguments(self, pars):
        """Declare the dialog's params (clipasso_insert.inx)."""
        pars.add_argument("--tab", default="update")
        pars.add_argument("--url", default=DEFAULT_URL)
        pars.add_argument("--token", default="")

    def effect(self):
        """Insert each noted job that finished; remove notes of dead jobs; report the rest."""
        choice = server_choice(DIALOG_ID, self.options.url, self.options.token)
        dialog_server = server_url(choice.url)
        choice.remember()
        noted = self.noted_jobs()
        clients: Dict[str, Tuple[SketchClient, str]] = {}
        not_asked: Dict[str, str] = {}
        messages: List[str] = []
        cleared = 0
        for element, image, job in noted:
            if image is None:
                label = sketch_layer_of(element).get("inkscape:label") or sketch_layer_of(element).get_id()
                messages.append(f"The layer “{label}” waits for the sketch of an image that is no longer in the "
                                "document; put the image back, or delete the layer.")
                continue
            name = image_name(image)
            if job.server not in clients and job.server not in not_asked:
                try:
                    clients[job.server] = self.connect(job.server, dialog_server, choice.token)
                except NotAsked as why:
                    not_asked[job.server] = str(why)
            if job.server in not_asked:
                messages.append(f"The sketch of “{name}” was left waiting: {not_asked[job.server]}")
                continue
            client, version = clients[job.server]
            try:
                state = client.job(job.job_id)
            except ServerError as error:
                if error.status != 404:
                    raise
                clear_note(element)
                cleared += 1
                messages.append(
                    f"The server no longer knows the sketch job of “{name}”, so its waiting note was removed; "
                    "run New sketch again."
                )
                continue
            if state["status"] == "succeeded":
                result = client.result(job.job_id)
                layer = sketch_layer_of(element)
                if layer is None:
                    add_sketch_layers(self.svg, image, result, job, version)
                else:
                    fill_sketch_layer(layer, image, result, job)
                clear_note(element)
                cleared += 1
            elif state["status"] in ("failed", "cancelled"):
                clear_note(element)
                cleared += 1
                messages.append(
                    f"The sketch of “{name}” {state['status']} on the server ({job_error_text(state)}), "
                    "so its waiting note was removed; run New sketch again."
                )
            else:
                messages.append(f"The sketch of “{name}” is not finished yet ({progress_text(state)}).")
        if not cleared:  # nothing inserted or cleared
            raise inkex.AbortExtension(" ".join(messages))
        if messages:
            self.msg(" ".join(messages))

    def connect(self, server: str, dialog_server: str, token: str) -> Tuple[SketchClient, str]:
        """(client, server version) for a noted server, with the token only if it is the dialogs' server;
        NotAsked when the note is not a server URL or the server wants the token kept from it."""
        try:
            server_url(server)
        except ServerError:
            raise NotAsked(f"its note names “{server[:200]}”, which is not a server URL.") from None
        sent_token = token if same_server(server, dialog_server) else ""
        client = SketchClient(server, sent_token)
        try:
            return client, str(client.health().get("version", ""))
        except ServerError as error:
            if error.status == 401 and token and not sent_token:
                raise NotAsked(
                    f"its job is on the server at {server}, not the one the dialogs use ({dialog_server}), so "
                    f"your token was not sent to it; to insert it, enter {server} as the Server URL."
                ) from None
            if error.status is None:  # not reachable: its notes wait, the other servers' jobs are still inserted
                raise NotAsked(f"its server did not answer. {error}") from None
            raise

    def noted_jobs(self) -> List[Tuple[inkex.BaseElement, Optional[inkex.BaseElement], SketchJob]]:
        """(note, image, job) for each waiting job: of the selected images, else all in the document (where a
        placeholder's image may be gone: None)."""
        found = [(element, noted_image(self.svg, element)) for element in noted_elements(self.svg)]
        where = "this document"
        if self.svg.selection:
            selected = {image.get_id() for image in self.svg.selection.get(inkex.Image)}
            found = [(element, image) for element, image in found if image is not None and image.get_id() in selected]
            where = "the selected images"
        jobs = [(element, image, read_note(element)) for element, image in found]
        if not jobs:
            raise inkex.AbortExtension(
                f"No sketch is waiting to be inserted for {where}: no layer waits for strokes (“sketching…”)."
            )
        return jobs


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def same_server(first: str, second: str) -> bool:
    """Whether two server URLs name the same server: same scheme, host (loopback names alike), port and path."""

    def key(url: str) -> Tuple[str, str, int, str]:
        parts = urllib.parse.urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if scheme == "https" else 80)
        return scheme, "loopback" if host in LOOPBACK else host, port, parts.path.rstrip("/")

    try:
        return key(first) == key(second)
    except ValueError:
        return False


if __name__ == "__main__":
    Insert().run()
