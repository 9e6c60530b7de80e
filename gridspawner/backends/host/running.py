"""A server once it runs on a host: `HostRunningMixin`, the part of `HostBackend` that
re-attaches after a hub restart, polls, stops (the INT → TERM → KILL ladder, then the
session's mounts, directory and GPU claims), renews mount credentials and writes the stops
file.

A host that does not answer a poll counts as running its servers for `down_grace` seconds;
after that they are declared stopped, and stopped for good once the host answers again
(`_reap_abandoned`, from the next probe), so their GPUs are freed.

It uses what `HostBackend` provides: ``settings``, ``transport``, ``login_of``, ``_run``,
``_check_state``, ``down_grace``, ``_reattach``, ``_release_tunnels``,
``_report_mounts_left``, ``_forwards`` and ``_down``; and ``_end_batch_tree`` of
`HostBatchMixin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from ...mounts.resolved import S3Secret
from ..base import BackendError, Launch
from .mount_reports import markers
from .probe_scripts import poll_script
from .saved_state import claims_of, launch_of
from .scripts import parse_marker, renew_script, stop_script
from .stops_file import WRITTEN, stops_script


class HostRunningMixin:
    """``restore``, ``poll``, ``stop``, ``renew_credentials`` and ``announce_stops`` for
    `HostBackend`."""

    log: logging.Logger
    settings: Any

    async def restore(self, state: dict) -> Launch:
        """Re-attach after a hub restart: the relay on the saved port (created even while the
        host is down: it works once the host is back), then what `_reattach` rebuilds."""
        state = self._check_state(state)
        s = self.settings
        transport = await self.transport(self.login_of(state))
        forward = await self._forwards.reopen(transport, state["session_dir"], state["socket"], s.relay_host,
                                              int(state["relay_port"] or 0), f"on {state['host']}")
        await self._reattach(transport, state)
        return launch_of(state, s.relay_host, forward.port)

    async def _server_gone(self, session_dir: str) -> None:
        """The server of ``session_dir`` ended or was stopped: its relay and tunnels go."""
        await self._forwards.drop(session_dir)
        self._release_tunnels(session_dir)

    async def poll(self, launch: Launch) -> int | None:
        """None while running. A host that cannot be reached counts as running for
        `down_grace` seconds; after that the server is declared stopped (and stopped for
        good when the host is back, so its GPUs are freed)."""
        st = launch.state
        s = self.settings
        script = poll_script(st["session_dir"], int(st["pid"]), ledger_dir=st.get("ledger_dir"),
                                     ledger_entry=st.get("ledger_entry"), data_link=st.get("data_link"),
                                     ledger_claims=claims_of(st), flush_wait=s.flush_timeout)
        try:
            # a server found gone is cleaned up at once, after its mounts' last uploads
            result = await self._run(self.login_of(st), script, "checking the server", s.command_timeout + s.flush_timeout)
        except BackendError as e:
            return await self._poll_unanswered(st, e)
        self._down.answered(st["session_dir"])
        if parse_marker(result.stdout, "running") is not None:
            return None
        self._report_mounts_left(st["host"], st["session_dir"], result)
        await self._server_gone(st["session_dir"])
        return 1

    async def _poll_unanswered(self, st: dict, error: BackendError) -> int | None:
        grace = self.down_grace()
        if grace == math.inf:  # a host we cannot reach right now is not a dead server
            self.log.warning("poll of %s: %s", st["session_dir"], error)
            return None
        down = self._down.unanswered(st["session_dir"])
        if down < grace:
            self.log.warning("poll of %s: %s (down for %.0f of %g s)", st["session_dir"], error, down, grace)
            return None
        self.log.error("%s on %s: host unreachable for %.0f s; declaring the server stopped",
                       st["session_dir"], st["host"], down)
        self._down.give_up(st)
        await self._server_gone(st["session_dir"])
        return 1

    def _reap_abandoned(self, host: str) -> None:
        """Stop servers that poll gave up on while ``host`` was down (it answers again)."""
        states = self._down.take_given_up(host)
        if not states:
            return

        async def reap() -> None:
            for st in states:
                with contextlib.suppress(Exception):
                    await self.stop(Launch(url="", state=st), now=True)
                    self.log.warning("stopped %s on %s: it was declared stopped while the host was down",
                                     st["session_dir"], host)

        asyncio.ensure_future(reap())

    async def stop(self, launch: Launch, now: bool = False) -> None:
        s, st = self.settings, launch.state
        await self._end_batch_tree(st)  # a batch job's kernel is in a process group of its own
        self._down.answered(st.get("session_dir"))
        script = stop_script(
            st["session_dir"], st.get("pid"), ledger_dir=st.get("ledger_dir"), ledger_entry=st.get("ledger_entry"),
            interrupt_timeout=s.interrupt_timeout, term_timeout=s.term_timeout, kill_timeout=s.kill_timeout, now=now,
            data_link=st.get("data_link"), ledger_claims=claims_of(st), flush_wait=s.flush_timeout,
        )
        budget = s.kill_timeout + (0 if now else s.interrupt_timeout + s.term_timeout) + s.flush_timeout + s.command_timeout
        try:
            result = await self._run(self.login_of(st), script, "stopping the server", budget)
        finally:
            await self._server_gone(st["session_dir"])
        self._report_mounts_left(st["host"], st["session_dir"], result)
        how = parse_marker(result.stdout, "stopped")
        if how is None:
            raise BackendError(f"server process {st.get('pid')} on {st['host']} survived SIGKILL")
        self.log.info("stopped %s on %s (%s)", st["session_dir"], st["host"], "already gone" if how == "none" else f"SIG{how}")

    async def renew_credentials(self, launch: Launch, secrets: dict[int, S3Secret]) -> list[int]:
        """Replace the STS credentials of the server's live S3 mounts (index → new
        credentials) in their credential files, which rclone reads again by itself.
        Returns the indexes renewed; raises BackendError when the host cannot be reached."""
        st = launch.state
        try:
            script = renew_script(st["session_dir"], secrets)
        except ValueError as e:
            raise BackendError(f"cannot renew mount credentials: {e}") from None
        result = await self._run(self.login_of(st), script, "renewing data mount credentials")
        return [int(i) for i in markers(result.stdout, "renewed") if i.isdigit()]

    async def announce_stops(self, launch: Launch, entries: list[dict]) -> bool:
        """Write the server's stops file (`stops_file`); False when its session is gone."""
        st = launch.state
        result = await self._run(self.login_of(st), stops_script(st["session_dir"], entries), "writing the stops file")
        return parse_marker(result.stdout, WRITTEN) is not None
