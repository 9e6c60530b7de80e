"""Which hub this is: a name that stays the same across restarts, written into everything
gridspawner leaves on hosts and clusters (GPU claims, session directories, pods), so that
after a crash a hub takes back what is its own — and only that — even when other hubs
share the same hosts, accounts or ledgers.

Where the name comes from, first match wins:

1. ``c.GridSpawner.hub_id``, when the admin sets it (the Helm chart sets it to
   ``<namespace>/<release>``);
2. JupyterHub's database is an SQLite file: the file ``gridspawner_hub_id`` next to it,
   made with a random name on the first start (it lives as long as the database does);
3. an in-memory SQLite database: the same file in JupyterHub's working directory;
4. any other database (PostgreSQL, MySQL): derived from its URL, without the password —
   two hubs whose database URLs read the same (e.g. the same service name in two
   namespaces) must then set ``hub_id`` themselves.

(When the directory of rule 2 or 3 cannot be written, the name is derived from the machine's
name and that directory.)

Outside a running hub (a backend used on its own) the name is empty: nothing is then
reclaimed, ever.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .vocabulary import CatalogError

HUB_ID_FILE = "gridspawner_hub_id"
HUB_ID_KEY = "c.GridSpawner.hub_id"
#: what a hub id may look like: it goes into file contents, labels (hashed when too long)
#: and log lines — one line, no spaces
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")

_resolved: dict[str, str] = {}


def check_hub_id(value: object, key: str = HUB_ID_KEY) -> str:
    """``value`` as a hub id; CatalogError naming ``key`` when it cannot be one."""
    if not isinstance(value, str) or not HUB_ID.fullmatch(value):
        raise CatalogError(key, "must be 1 to 200 characters: letters, digits and . _ : / @ + - "
                                f"(starting with a letter or digit), e.g. 'jhub/gpu-hub' (got {value!r})")
    return value


def _running_hub():
    """The JupyterHub application of this process (None outside a hub)."""
    jh_app = sys.modules.get("jupyterhub.app")
    if jh_app is None or not jh_app.JupyterHub.initialized():
        return None
    return jh_app.JupyterHub.instance()


def _sqlite_path(db_url: str) -> Path | None:
    """The database file of an SQLite URL (None: not SQLite; Path('') : in memory)."""
    if not db_url.startswith("sqlite"):
        return None
    rest = db_url.split(":", 1)[1] if ":" in db_url else ""
    path = rest[3:] if rest.startswith("///") else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return Path("")
    return Path(path)


def _without_password(db_url: str) -> str:
    parts = urlsplit(db_url)
    if parts.password is None:
        return db_url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}@{netloc[1]}", parts.path, parts.query, parts.fragment))


def stored_id(directory: Path) -> str:
    """The hub id kept in ``directory`` (made there, random, when missing). OSError when the
    directory cannot hold it."""
    path = directory / HUB_ID_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = ""
    if text:
        return check_hub_id(text, str(path))
    new = f"hub-{secrets.token_hex(6)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another process of this hub made it a moment ago
        return check_hub_id(path.read_text(encoding="ascii").strip(), str(path))
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(new + "\n")
    return new


def hub_id_from_db_url(db_url: str, cwd: Path | None = None) -> str:
    """The hub id for a hub whose database is ``db_url`` (rules 2 to 4 of the module)."""
    path = _sqlite_path(db_url)
    if path is None:
        digest = hashlib.sha256(_without_password(db_url).encode()).hexdigest()[:12]
        return f"db-{digest}"
    base = Path(cwd or os.getcwd())
    directory = base if path == Path("") else (base / path).parent
    try:
        return stored_id(directory)
    except OSError:  # a directory the hub may not write: still one name per database file
        digest = hashlib.sha256(f"{socket.gethostname()}\0{directory.resolve()}".encode()).hexdigest()[:12]
        return f"dir-{digest}"


def resolve_hub_id(configured: str = "") -> str:
    """This hub's id: ``configured`` (validated) when set, else from the running hub's
    database (see the module); "" outside a hub. Computed once per process."""
    if configured:
        return check_hub_id(configured)
    app = _running_hub()
    if app is None:
        return ""
    db_url = str(getattr(app, "db_url", "") or "")
    if db_url not in _resolved:
        _resolved[db_url] = hub_id_from_db_url(db_url)
    return _resolved[db_url]


def session_slug(hub_id: str, user: str, server_name: str) -> str:
    """A safe, readable name for one (user, server) of one hub: letters, digits and '-',
    at most 31 characters. Two hubs never share one (the hub id is in the hash), so two hubs
    with a user of the same name on the same host account keep apart."""
    key = f"{hub_id}\0{user}\0{server_name}" if hub_id else f"{user}\0{server_name}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9]+", "-", f"{user}-{server_name}".lower()).strip("-")[:20]
    return f"{readable}-{digest}" if readable else digest
