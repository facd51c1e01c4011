"""Which sketch servers this extension can talk to, read from their ``GET /v1/health``. Standard library only.

A server says ``api_version``: the revision of the v1 API it speaks (one without the field speaks
revision 1). Revisions only add to the API, so this extension works with any server of the revision it
needs or a later one, and refuses an older one in one sentence.
"""

from typing import Optional

NEEDED_API_VERSION = 2
"""Revision 2 added presets and the models' state, which the dialogs use."""
COMPLETING_API_VERSION = 3
"""Revision 3 added add_strokes and tidy, which Refine sends when Add strokes or Tidy is set."""


def api_version(health: dict) -> int:
    """The revision of the v1 API a server speaks (1 when its health does not say)."""
    return health.get("api_version", 1)

def api_problem(health: dict, url: str) -> Optional[str]:
    """Why this extension cannot use the server at ``url`` that answered ``health``, or None."""
    version = api_version(health)
    if not isinstance(version, int) or isinstance(version, bool):
        return (f"The program answering at {url} is not a CLIPasso sketch server (its api_version is not a "
                "number); check the server URL.")
    if version < NEEDED_API_VERSION:
        return (
            f"The sketch server at {url} is older than this extension (it speaks API revision {version}, the "
            f"extension needs {NEEDED_API_VERSION}); update CLIPasso where that server runs and restart it, or "
            "reinstall the extension that came with it."
        )
    return None


def models_state(health: dict) -> Optional[str]:
    """The state the server reports for its CLIP models (missing, downloading, loading, ready, unloaded,
    failed), or None when it reports none (a Ray server, or an older one)."""
    models = health.get("models")
    state = models.get("state") if isinstance(models, dict) else None
    return state if isinstance(state, str) else None
