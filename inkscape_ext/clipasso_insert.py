#!/usr/bin/env python3
"""Extensions → CLIPasso → Insert finished sketches: insert the results of jobs noted on images.

Images come from the selection, or all noted images when nothing is selected. A finished job's
strokes are inserted and its note removed; a failed, cancelled or forgotten job's note is removed
with a message; a running job keeps its note. When nothing could be inserted or removed the run
aborts with the reason (document untouched); otherwise leftovers are reported on stderr. A server
that does not answer keeps its jobs' notes without stopping the others.

The note names the server of its job, and a shared document may name any server: the dialog's token
goes only to the server the dialog names (loopback names count as one), other servers are asked
without it.
"""

import urllib.parse
from typing import Dict, List, Tuple

import inkex

from image_source import image_name
from pending_note import clear_note, noted_images, read_note
from sketch_client import DEFAULT_URL, ServerError, SketchClient, job_error_text, progress_text, server_url
from sketch_layers import SketchJob, add_sketch_layers


class NotAsked(Exception):
    """A noted server that is not asked: the exception's text says why, as the end of a sentence."""


class Insert(inkex.EffectExtension):
    """Insert the strokes of finished sketch jobs noted on images."""

    def add_arguments(self, pars):
        """Declare the dialog's params (clipasso_insert.inx)."""
        pars.add_argument("--url", default=DEFAULT_URL)
        pars.add_argument("--token", default="")

    def effect(self):
        """Insert each noted job that finished; remove notes of dead jobs; report the rest."""
        dialog_server = server_url(self.options.url)
        noted = self.noted_jobs()
        clients: Dict[str, Tuple[SketchClient, str]] = {}
        not_asked: Dict[str, str] = {}
        messages: List[str] = []
        for image, job in noted:
            name = image_name(image)
            if job.server not in clients and job.server not in not_asked:
                try:
                    clients[job.server] = self.connect(job.server, dialog_server)
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

    def connect(self, server: str, dialog_server: str) -> Tuple[SketchClient, str]:
        """(client, server version) for a noted server, with the dialog's token only if it is the dialog's
        server; NotAsked when the note is not a server URL or the server wants the token kept from it."""
        try:
            server_url(server)
        except ServerError:
            raise NotAsked(f"its note names “{server[:200]}”, which is not a server URL.") from None
        token = self.options.token if same_server(server, dialog_server) else ""
        client = SketchClient(server, token)
        try:
            return client, str(client.health().get("version", ""))
        except ServerError as error:
            if error.status == 401 and self.options.token and not token:
                raise NotAsked(
                    f"its job is on the server at {server}, not the one this dialog names ({dialog_server}), so "
                    f"your token was not sent to it; to insert it, enter {server} as the Server URL."
                ) from None
            if error.status is None:  # not reachable: its notes wait, the other servers' jobs are still inserted
                raise NotAsked(f"its server did not answer. {error}") from None
            raise

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
