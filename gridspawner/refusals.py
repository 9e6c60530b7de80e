"""How a refused spawn is answered: invalid user options (the HTTP 400 GridSpawner raises),
and a launch that found no capacity (the words users read, `no_capacity_message`).

- **REST** (``POST /hub/api/users/NAME/server``): JupyterHub answers an error with its own
  JSON body, ``{"status": 400, "message": "..."}``, and lets the exception set response
  headers. The message names each field (``Invalid server options: gpus: …; image: …``,
  for people reading a log); the header `FIELD_ERRORS_HEADER` carries the same problems
  as JSON a script can read: a list of ``{"field": "gpus", "message": "…"}`` in the
  order they were found (``mounts[0].bucket`` for a mount's field). Documented in
  docs/user/spawn-form.md.
- **The form**: the errors are shown next to their fields by the form that comes back
  (see form/feedback.py); JupyterHub's red "Error: HTTP 400: Bad Request (…)" banner above
  it would say the same thing a second time, with internal keys, so the exception asks
  JupyterHub for no banner (``jupyterhub_message`` empty).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from tornado import web

from .backends.base import BackendError, NoCapacity, Unreachable

#: the response header with the field errors as JSON (ASCII: non-ASCII text is \\u-escaped)
FIELD_ERRORS_HEADER = "X-GridSpawner-Field-Errors"
#: bounds that keep the header under the 16 KiB a Node.js proxy accepts in a response
MAX_FIELDS = 40
MAX_MESSAGE = 300


def field_errors(errors: Mapping[str, str]) -> list[dict[str, str]]:
    """``[{"field": ..., "message": ...}]`` for ``errors`` (field → message), in order."""
    rows = []
    for field, message in list(errors.items())[:MAX_FIELDS]:
        text = str(message)
        rows.append({"field": str(field), "message": text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"})
    return rows


def refusal(errors: Mapping[str, str], *, prefix: str = "Invalid server options", form: bool = False) -> web.HTTPError:
    """The 400 for ``errors``; ``form``: raised from the form's submission (no banner)."""
    listed = "; ".join(f"{k}: {v}" for k, v in errors.items())
    err: Any = web.HTTPError(400, f"{prefix}: {listed}")
    err.headers = {FIELD_ERRORS_HEADER: json.dumps(field_errors(errors), ensure_ascii=True, separators=(",", ":"))}
    if form:
        err.jupyterhub_message = ""  # the fields carry their own messages
        err.jupyterhub_html_message = ""
    return err


def launch_failure(e: BackendError, message: str | None = None) -> web.HTTPError:
    """The HTTP error a failed launch becomes: "No capacity: …" (503) only when the backend
    found nothing free that fits; hosts that could not be reached are 503 too, any other
    failure 500. It carries the backend's ``outcome`` word for the spawn metric.
    ``message``: the words users read instead of the backend's (see `no_capacity_message`),
    in every JupyterHub version's error pages and REST answers."""
    if isinstance(e, NoCapacity):
        err = web.HTTPError(503, message or f"No capacity: {e}")
    else:
        err = web.HTTPError(503 if isinstance(e, Unreachable) else 500, message or f"Could not start your server: {e}")
    if message:
        err.jupyterhub_message = message
    err.gridspawner_outcome = e.outcome
    return err


def no_capacity_message(display_name: str, capacity: Any, gpus: int, gpu_memory: int, tolerance: float,
                        detail: str) -> str:
    """What a user reads when a launch found no room: the backend's display name and the
    reason in `Capacity.fits`' words — the same words as the form's "Does not fit right now"
    note, which the form script shows too — from a ``capacity`` probed after the refusal.
    When that capacity does not explain it (unknown, or room again since), the backend's own
    ``detail``."""
    fits, why = capacity.fits(gpus, gpu_memory, tolerance) if capacity is not None else (True, "")
    reason = why if not fits and why else detail
    return (f"No capacity on {display_name} right now: {reason}. Choose fewer GPUs, less memory per GPU "
            "or another place to run, or try again later.")


#: the form's "Does not fit right now: …" note, shown (not ``hidden``)
_SHOWN_FIT_NOTE = re.compile(r"<[^>]*\bdata-gs-note\b(?![^>]*\bhidden\b)[^>]*>\s*Does not fit right now")


#: for the form JupyterHub shows right after a refused POST (it words the banner before it
#: asks for the form, so the server cannot drop it then): with the fit note shown, the
#: banner repeating the refusal is removed in the browser
_DROP_BANNER_SCRIPT = """<script>
(function () {
  var note = document.querySelector("[data-gs-note]");
  if (!note || note.hidden) return;
  document.querySelectorAll(".spawn-error-msg").forEach(function (banner) {
    if (banner.textContent.indexOf("No capacity on ") >= 0) banner.parentNode.removeChild(banner);
  });
})();
</script>"""


def drop_repeated_banner(spawner: Any, form_html: str) -> str:
    """After a start refused for lack of capacity, JupyterHub shows the form again with the
    failure in a red banner above it, while the form itself says the same next to the GPU
    fields ("Does not fit right now: …", from the capacity probed after the refusal). When
    the form shows that note, the banner is dropped (JupyterHub reads the failed start's
    exception after asking for the form; right after a refused POST it has worded it
    already, and a small script removes it). Without the note (there is room again) the
    banner stays: the user still learns why the start failed. Returns the form's HTML."""
    future = getattr(spawner, "_spawn_future", None)
    if future is None or not future.done() or future.cancelled():
        return form_html
    exc = future.exception()
    if getattr(exc, "gridspawner_outcome", None) != "no_capacity" or not _SHOWN_FIT_NOTE.search(form_html):
        return form_html
    exc.jupyterhub_message = ""
    exc.jupyterhub_html_message = ""
    return form_html + _DROP_BANNER_SCRIPT
