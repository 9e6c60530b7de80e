"""The run store: where a run's files live. Two kinds with one async interface
(``ensure`` / ``write`` / ``read`` / ``exists`` / ``remove``, and ``location`` for messages):

- `RunFiles`, a directory (0700, the service's account only), one 0700 directory per run
  holding ``input.ipynb`` (as submitted), ``output.ipynb`` (as executed, once the run ended)
  and ``log`` (the tail of papermill's output). Its default place is next to the usage
  database (`default_dir`); the rows of ``gridspawner_runs`` point here by run id.
- `gridspawner.runs.s3files.S3RunFiles`, the same files as objects in S3
  (``runs_store_url``); `gridspawner.runs.s3files.open_store` picks one from the settings.

Either raises `RunStoreError` when the store cannot be used (a clear message for the run or
the request); file I/O runs in a thread, so the event loop never waits on a disk or S3.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

INPUT, OUTPUT, LOG = "input.ipynb", "output.ipynb", "log"
#: the files a run has in the store
NAMES = (INPUT, OUTPUT, LOG)
#: a run id: what `new_run_id` makes (checked before it becomes a path or a key)
RUN_ID = re.compile(r"[a-z0-9]{12,32}")
DEFAULT_NAME = "gridspawner-runs"


class RunStoreError(OSError):
    """The run store cannot be used now (unreachable, refused, full); the message says which."""


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id or ""):
        raise ValueError(f"not a run id: {run_id!r}")
    return run_id


def check_name(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"not a run file: {name!r}")
    return name


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
    """The run store at ``root`` (made 0700 by `ensure`)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.location = str(self.root)

    def _ensure(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def dir_of(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    def _write(self, run_id: str, name: str, data: bytes) -> None:
        d = self.dir_of(run_id)
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = d / f".{check_name(name)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, d / name)

    def _read(self, run_id: str, name: str) -> bytes | None:
        try:
            return (self.dir_of(run_id) / check_name(name)).read_bytes()
        except FileNotFoundError:
            return None

    async def _io(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except ValueError:
            raise
        except OSError as e:
            raise RunStoreError(f"the run store {self.location}: {e}") from None

    async def ensure(self) -> None:
        await self._io(self._ensure)

    async def write(self, run_id: str, name: str, data: bytes) -> None:
        await self._io(self._write, run_id, name, data)

    async def read(self, run_id: str, name: str) -> bytes | None:
        return await self._io(self._read, run_id, name)

    async def exists(self, run_id: str, name: str) -> bool:
        return await self._io(lambda: (self.dir_of(run_id) / check_name(name)).is_file())

    async def remove(self, run_id: str) -> None:
        d = self.dir_of(run_id)
        await self._io(lambda: shutil.rmtree(d, ignore_errors=True))

    def close(self) -> None:
        """Nothing to release."""

