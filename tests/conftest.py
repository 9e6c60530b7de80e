"""Shared fixtures. Hub-level fixtures start a REAL JupyterHub and configurable-http-proxy
(see tests/hubtools); tests that use them are marked ``hub``."""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import hubtools` in any import mode

from hubtools import Hub  # noqa: E402

_names = itertools.count(1)


@pytest.fixture(scope="session")
def artifacts_dir(request) -> Path:
    """Where tests leave files worth looking at (screenshots); the path is printed at the end
    of the run. Set GRIDSPAWNER_ARTIFACTS to choose it."""
    path = Path(os.environ.get("GRIDSPAWNER_ARTIFACTS") or tempfile.mkdtemp(prefix="gridspawner-artifacts-"))
    path.mkdir(parents=True, exist_ok=True)
    request.config._gridspawner_artifacts = str(path)
    return path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    d = getattr(config, "_gridspawner_artifacts", None)
    if d and any(Path(d).iterdir()):
        terminalreporter.write_line(f"gridspawner test artifacts: {d}")


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """One real hub + proxy shared by the session, with the default GridSpawner test config
    (tests/hubtools/hub.py:default_grid_config). Tests use their own user names and stop
    their servers; a test that needs another config uses `make_hub`."""
    h = Hub(workdir=tmp_path_factory.mktemp("hub"))
    try:
        h.start()
        yield h
    finally:
        h.close()
        _report_leftovers(h)


@pytest.fixture
def make_hub(tmp_path_factory):
    """Factory: ``make_hub(grid=..., start=True, **Hub kwargs)`` → a hub closed at teardown."""
    made: list[Hub] = []

    def make(grid: dict | None = None, *, start: bool = True, wait: bool = True, **kw) -> Hub:
        h = Hub(grid, workdir=tmp_path_factory.mktemp("hub"), **kw)
        made.append(h)
        if start:
            h.start(wait=wait)
        return h

    yield make
    for h in made:
        h.close()
        _report_leftovers(h)


def _report_leftovers(h: Hub) -> None:
    left = h.leftover_pids()
    assert not left, f"processes left behind by the test hub: {left}"


@pytest.fixture
def username(request) -> str:
    """A user name unique in this session (hub tests share one hub)."""
    base = "".join(ch for ch in request.node.name.lower() if ch.isalnum())[:16] or "user"
    return f"{base}{next(_names)}"


@pytest.fixture(scope="session")
def slurm_lab():
    """A real Slurm cluster (tests/slurmlab: login node + two GPU compute nodes in network
    namespaces, munge, slurmctld, slurmd, slurmdbd with its own MariaDB), started once per
    session (about 5-8 s here) and torn down by PID at the end. Tests submit as
    ``slurm_lab.user`` through the login node and cancel the jobs they submitted."""
    from slurmlab import SlurmLab, available

    reason = available()
    if reason:
        pytest.skip(reason)
    with SlurmLab() as lab:
        yield lab
