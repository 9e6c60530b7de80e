"""The stops file on hosts: a pure builder of the script that writes it.

Each server's environment names ``$S/stops.json`` (`gridspawner.server_env.stops_file_env`)
in its private session directory; gridspawner's JupyterLab extension re-reads it for stops
the hub plans besides the maximum run time in the environment (a GPU quota running out,
later an idle stop). Format: docs/admin/lab-extension.md. The file is replaced atomically
(written beside it, then renamed), private to the server's account (umask 077), and only
while the session directory exists (a stopped server's is gone: nothing is written).
"""

from __future__ import annotations

import shlex
from typing import Iterable, Mapping

from ...server_env import STOPS_FILE_NAME
from ...stops import stops_document
from .confine import AS_ACCOUNT, as_account_script

q = shlex.quote

#: what the script prints when it wrote the file / found no session directory
WRITTEN = "stops-written"
NO_SESSION = "no-session"


def stops_script(session_dir: str, entries: Iterable[Mapping]) -> str:
    """sh that replaces ``session_dir``/stops.json with ``entries``; prints ``@@stops-written``
    or ``@@no-session``."""
    path = f"{session_dir.rstrip('/')}/{STOPS_FILE_NAME}"
    # written as the directory's owner (root's launch hands it to the server's account): a
    # symlink planted there never makes root overwrite another file
    write = as_account_script(f"""umask 077
tmp={q(session_dir.rstrip('/'))}/.{STOPS_FILE_NAME}.$$
printf '%s\\n' {q(stops_document(entries))} >"$tmp" && mv -f "$tmp" {q(path)} && echo "@@{WRITTEN}"
""")
    return f"""{{
S={q(session_dir)}
if [ ! -d "$S" ] || [ -L "$S" ]; then echo "@@{NO_SESSION}"; exit 0; fi
{AS_ACCOUNT}{write}}} </dev/null
"""
