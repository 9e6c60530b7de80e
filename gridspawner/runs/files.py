"""The run store: a directory (0700, the service's account only), one 0700 directory per
run holding ``input.ipynb`` (as submitted), ``output.ipynb`` (as executed, once the run
ended) and ``log`` (the tail of papermill's output). Its default place is next to the usage
database (`default_dir`); the rows of ``gridspawner_runs`` point here by run id."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

INPUT, OUTPUT, LOG = "input.ipynb", "output.ipynb", "log"
#: a run id: what `new_run_id` makes (checked before it becomes a path)
RUN_ID = re.compile(r"[a-z0-9]{12,32}")
DEFAULT_NAME = "gridspawner-runs"


def default_dir(db_url: str, cwd: str | os.PathLike | None = None) -> Path:
    """``gridspawner-runs`` beside an SQLite usage database; with any other database, in the
    service's working directory (the hub's)."""
    cwd = Path(cwd or os.getcwd())
    url = make_url(db_url)
    db = url.database if url.get_backend_name() == "sqlite" else None
    if db and db != ":memory:" and not db.startswith("file:"):
        path = Path(db)
        return (path if path.is_absolute() else cwd / path).parent / DEFAULT_NAME
    return cwd / DEFAULT_NAME


class RunFiles:
    """The run store at ``root`` (made 0700 on first use)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def ensure(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def dir_of(self, run_id: str) -> Path:
        if not RUN_ID.fullmatch(run_id or ""):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.root / run_id

    def write(self, run_id: str, name: str, data: bytes) -> None:
        d = self.dir_of(run_id)
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = d / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, d / name)

    def read(self, run_id: str, name: str) -> bytes | None:
        try:
            return (self.dir_of(run_id) / name).read_bytes()
        except FileNotFoundError:
            return None

    def path(self, run_id: str, name: str) -> Path:
        return self.dir_of(run_id) / name

    def remove(self, run_id: str) -> None:
        shutil.rmtree(self.dir_of(run_id), ignore_errors=True)
