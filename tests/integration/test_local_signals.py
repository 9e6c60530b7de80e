"""Signals the hub's process ignores must not reach the local backend's servers.

A hub started by ``nohup``, from a shell without job control or by some service managers
ignores SIGINT / SIGHUP / SIGQUIT (or SIGTERM); an ignored disposition survives fork and
exec, and sh cannot reset it, so a server would ignore the stop ladder's SIGINT. Here the
test's own process ignores them while the backend launches a real server (the stand-in of
test_local_backend), and the server's /proc/PID/status must show none of them ignored.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_local_backend import accounts, context, env, gone, launch, request, root  # noqa: F401 (fixtures)

from gridspawner.backends.host import transport

#: what the hub's process ignores in these tests (SIGPIPE: Python ignores it already)
HUB_IGNORES = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def ignored(pid: int) -> set[int]:
    """The signals process ``pid`` ignores (its SigIgn mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask & (1 << (n - 1))}
    raise AssertionError(f"no SigIgn in /proc/{pid}/status")


class Dispositions:
    """While active, this (main-thread) process gives ``signals`` the ``handler`` (SIG_IGN:
    as a nohup'd hub would)."""

    def __init__(self, handler, *signals: int):
        self.handler = handler
        self.signals = signals
        self.old: dict[int, object] = {}

    def __enter__(self):
        self.old = {s: signal.signal(s, self.handler) for s in self.signals}

    def __exit__(self, *exc):
        for s, handler in self.old.items():
            signal.signal(s, handler)


async def test_a_server_launched_by_a_hub_ignoring_signals_gets_their_defaults_and_stops_on_sigint(env, caplog):
    backend = env.backend(interrupt_timeout=30, term_timeout=30, kill_timeout=3)
    with Dispositions(signal.SIG_IGN, *HUB_IGNORES):
        result = await launch(env, backend, context(), request(0, 0))
    pid = result.state["pid"]
    assert not ignored(pid) & set(HUB_IGNORES), f"server {pid} ignores {sorted(ignored(pid) & set(HUB_IGNORES))}"
    # and the first rung ends it (the rung stop() reports; 30 s per rung: no escalation meant)
    caplog.set_level(logging.INFO, logger=backend.log.name)
    await backend.stop(result)
    assert gone(pid)
    assert any("(SIGINT)" in r.getMessage() for r in caplog.records if r.name == backend.log.name), caplog.text
    assert env.ledger() == {} and env.sessions() == []


def test_child_argv_is_unchanged_when_nothing_is_ignored_or_blocked():
    with Dispositions(signal.SIG_DFL, *HUB_IGNORES):  # (whatever the test runner was started with)
        assert transport.child_argv(["/bin/sh", "-s"]) == ["/bin/sh", "-s"]


def test_a_wrapped_child_gets_every_default_back_and_nothing_blocked():
    """The wrapper's own interpreter ignores SIGPIPE and SIGXFSZ as it starts: what it execs
    must not inherit that (nor the hub's ignored and blocked signals)."""
    with Dispositions(signal.SIG_IGN, *HUB_IGNORES):
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
        try:
            argv = transport.child_argv(["/bin/sh", "-c", "exec grep -E '^Sig(Ign|Blk):' /proc/self/status"])
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": os.defpath})
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    assert argv[0] == sys.executable, argv
    masks = {line.split(":")[0]: int(line.split()[1], 16) for line in out.stdout.splitlines()}
    assert set(masks) == {"SigIgn", "SigBlk"}, out
    for name, mask in masks.items():
        held = {n for n in range(1, 65) if mask & (1 << (n - 1))} & set(transport.WRAPPER_RESETS)
        assert not held, f"{name}: {sorted(held)}"


@pytest.mark.parametrize("sig", HUB_IGNORES)
def test_child_argv_wraps_for_each_ignored_or_blocked_signal(sig):
    others = [s for s in HUB_IGNORES if s != sig]
    with Dispositions(signal.SIG_DFL, *others), Dispositions(signal.SIG_IGN, sig):
        argv = transport.child_argv(["/bin/sh", "-s"])
    assert argv[-2:] == ["/bin/sh", "-s"] and str(int(sig)) in argv[-3].split(",")
    with Dispositions(signal.SIG_DFL, *HUB_IGNORES):
        signal.pthread_sigmask(signal.SIG_BLOCK, [sig])
        try:
            argv = transport.child_argv(["/bin/sh", "-s"])
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    assert argv[-2:] == ["/bin/sh", "-s"] and str(int(sig)) in argv[-3].split(",")
    assert set(transport.CHILD_DEFAULT_SIGNALS) >= set(HUB_IGNORES)
