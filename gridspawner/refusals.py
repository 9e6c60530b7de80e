"""How a refused spawn (invalid user options) is answered: the HTTP 400 GridSpawner raises.

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
from typing import Any, Mapping

from tornado import web

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
