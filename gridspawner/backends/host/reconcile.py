"""Crash recovery on hosts: `HostReconcileMixin`, the part of `HostBackend` that finds the
sessions a crashed hub left on its hosts and reclaims them (see `orphans` for the rules and
`gridspawner.reconcile` for when it runs).

It reads the hosts from the last capacity probe when that is recent enough (the probe lists
every claim of the ledger and the probing account's session directories), so a look costs no
extra SSH connection and, most of the time, no extra command; only an orphan costs a script,
run as the account that owns it. A launch and a reclaim of the same session never overlap in
one hub process: a launch waits for a reclaim in progress, and a session being launched is
never reclaimed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import getpass
import logging
import time
from typing import Any, Callable, Iterable, Iterator

from ..base import BackendError, Reconciled
from .inventory import Inventory
from .orphans import Orphan, find_orphans, parse_reclaim, reclaim_script


class HostReconcileMixin:
    """Orphan sessions on hosts. Needs ``hosts``, ``_probe``, ``_run``, ``ledger_shared`` and
    ``settings`` of `HostBackend`."""

    name: str
    hub_id: str
    log: logging.Logger
    settings: Any

    def _init_reconcile(self) -> None:
        #: slug -> launches of that session in flight in this process (never reclaimed)
        self._in_flight: collections.Counter[str] = collections.Counter()
        #: slug -> the reclaim of that session in progress (a launch of it waits for it)
        self._reclaiming: dict[str, asyncio.Future] = {}
        #: host -> (time.monotonic() of the probe, what it found)
        self._inventories: dict[str, tuple[float, Inventory]] = {}
        #: slug -> (hub user, time.monotonic() noted, hosts still to look at): launches that
        #: JupyterHub says were cut short (`note_cut_short`)
        self._cut_short: dict[str, tuple[str, float, set[str]]] = {}
        #: orphans left alone because a live process holds their GPUs (warned about once)
        self._held_warned: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ bookkeeping
    @contextlib.contextmanager
    def _launching(self, slug: str) -> Iterator[None]:
        """Marks the session ``slug`` in flight while a launch of it runs."""
        self._in_flight[slug] += 1
        try:
            yield
        finally:
            self._in_flight[slug] -= 1
            if self._in_flight[slug] <= 0:
                del self._in_flight[slug]

    async def _wait_reclaim(self, slug: str) -> None:
        """Wait until a reclaim of session ``slug`` in progress has ended (it stops the
        session's old server: the launch must not race it)."""
        pending = self._reclaiming.get(slug)
        if pending is not None:
            await asyncio.shield(pending)

    def _remember_probe(self, host: str, inv: Inventory) -> None:
        self._inventories[host] = (time.monotonic(), inv)

    async def _recent_inventories(self, max_age: float, hosts: Iterable[str] | None = None) -> dict[str, Inventory]:
        """Each reachable host's inventory (of ``hosts``; default all): the last probe's when
        it is at most ``max_age`` seconds old, else a new probe. Hosts that do not answer are
        left out."""
        now = time.monotonic()
        out: dict[str, Inventory] = {}
        missing = []
        for host in self.hosts() if hosts is None else hosts:
            got = self._inventories.get(host)
            if got is not None and now - got[0] <= max_age:
                out[host] = aged(got[1], now - got[0])
            else:
                missing.append(host)

        async def probe(host: str) -> Inventory | None:
            try:
                return await self._probe(host)
            except BackendError as e:
                self.log.debug("no look for orphans on %s now: %s", host, e)
                return None

        for host, inv in zip(missing, await asyncio.gather(*(probe(h) for h in missing))):
            if inv is not None:
                out[host] = inv
        return out

    # ------------------------------------------------------------------ accounts
    def _may_act_as(self, host: str, account: str, user: str) -> bool:
        """Whether this backend would run ``user``'s server on ``host`` as ``account`` (it
        reclaims nothing of an account it does not use). The hub's machine: its own account."""
        return account == getpass.getuser()

    def _as_account(self, account: str) -> contextlib.AbstractContextManager:
        """Scripts run as ``account`` inside this context (the ssh kind: its connection)."""
        return contextlib.nullcontext()

    def _account_of(self, host: str, user: str) -> str:
        """The account ``user``'s servers run as on ``host`` (the hub's machine: its own)."""
        return getpass.getuser()

    def _session_root_of(self, host: str, account: str) -> str:
        return self.settings.session_root

    # ------------------------------------------------------------------ launches cut short
    def note_cut_short(self, user: str, server_name: str, slug: str) -> None:
        """JupyterHub believed ``user``'s server ran but has no launch state for it: a launch
        cut short by a crash. Its session directory is looked for at the next looks on every
        host whose probe cannot list it (one account per hub user: the probe account cannot
        read the others' session roots), as ``user``'s account there."""
        if self.hub_id and slug not in self._cut_short:
            self.log.info("%s: the launch of server %r was cut short (the hub stopped before saving it); "
                          "looking for what it left", user, server_name)
            self._cut_short[slug] = (user, time.monotonic(), set(self.hosts()))

    async def _look_for_cut_short(self, inventories: dict[str, Inventory], grace: float, report: Reconciled) -> None:
        s = self.settings
        expire = grace + s.mount_timeout + 2 * s.command_timeout  # the longest a launch script may still run
        todo = []
        for slug, (user, since, hosts) in list(self._cut_short.items()):
            if time.monotonic() - since > expire or not hosts:
                del self._cut_short[slug]
                continue
            if self._in_flight[slug] or slug in self._reclaiming:
                continue
            for host in sorted(hosts):
                try:
                    account = self._account_of(host, user)
                except BackendError:
                    hosts.discard(host)
                    continue
                inv = inventories.get(host)
                if inv is None:
                    continue  # not answering now: the next look tries again
                if inv.sessions_account == account:
                    hosts.discard(host)  # its listing shows this account's sessions: the look covers it
                    continue
                root = self._session_root_of(host, account).rstrip("/")
                todo.append((slug, host, Orphan(host=host, session_dir=f"{root}/{slug}", account=account, user=user,
                                                why="its launch was cut short (JupyterHub found no state for it)")))
        for slug, host, orphan in todo:
            if slug in self._reclaiming:
                continue
            self._reclaiming[slug] = asyncio.get_running_loop().create_future()
            how = await self._reclaim_one(slug, orphan, grace, report)
            if how and not how.startswith(("kept launching", "kept recent")):  # else: look again next time
                entry = self._cut_short.get(slug)
                if entry is not None:
                    entry[2].discard(host)

    # ------------------------------------------------------------------ the look
    async def reconcile(self, known: Callable[[], Iterable[dict]], grace: float, *,
                        probe_max_age: float = 0.0) -> Reconciled:
        """Reclaim the sessions of this hub on this backend's hosts that no server the hub
        knows uses (`orphans`). ``known()`` is asked after the hosts were looked at."""
        report = Reconciled(backend=self.name)
        if not self.hub_id:
            return report
        inventories = await self._recent_inventories(probe_max_age)
        report.looked_at = sorted(inventories)
        orphans = self._orphans(inventories, known, grace)
        if orphans and probe_max_age > 0:
            # a probe from before a stop or a launch that ended since would show its session:
            # the hosts with candidates are looked at again, now, before anything is decided
            again = sorted({o.host for o in orphans})
            inventories.update(await self._recent_inventories(0, again))
            orphans = self._orphans({h: inventories[h] for h in again if h in inventories}, known, grace)
        todo = []
        for o in orphans:
            if not self._may_act_as(o.host, o.account, o.user):
                report.kept.append(f"{o.session_dir} on {o.host}: account {o.account} is not one this backend uses")
                continue
            slug = o.session_dir.rsplit("/", 1)[-1]
            if self._in_flight[slug] or slug in self._reclaiming:
                continue  # a launch of it started after the look: it replaces it itself
            self._reclaiming[slug] = asyncio.get_running_loop().create_future()
            todo.append((slug, o))
        await asyncio.gather(*(self._reclaim_one(slug, o, grace, report) for slug, o in todo))
        if self._cut_short:
            await self._look_for_cut_short(inventories, grace, report)
        return report

    def _orphans(self, inventories: dict[str, Inventory], known: Callable[[], Iterable[dict]], grace: float) -> list[Orphan]:
        sessions = [st.get("session_dir") for st in known() if isinstance(st, dict)]  # asked after the look
        return find_orphans(inventories, hub=self.hub_id, backend=self.name, known_sessions=sessions,
                            in_flight=self._in_flight, grace=grace)

    async def _reclaim_one(self, slug: str, o: Orphan, grace: float, report: Reconciled) -> str:
        """Run `reclaim_script` for ``o`` (whose ``_reclaiming`` future the caller made) and
        report it; returns what happened (`parse_reclaim`'s first value, "" on failure)."""
        s = self.settings
        script = reclaim_script(o.session_dir, o.claims, ledger_dir=s.ledger_dir, hub=self.hub_id, backend=self.name,
                                grace=grace, shared=self.ledger_shared(o.host), interrupt_timeout=s.interrupt_timeout,
                                term_timeout=s.term_timeout, kill_timeout=s.kill_timeout,
                                flush_wait=s.flush_timeout)
        budget = s.interrupt_timeout + s.term_timeout + s.kill_timeout + s.flush_timeout + 2 * s.command_timeout
        where = f"{o.session_dir} on {o.host} (account {o.account}" + (f", user {o.user}" if o.user else "") + ")"
        try:
            with self._as_account(o.account):
                result = await self._run(o.host, script, "reclaiming an orphaned session", budget)
        except BackendError as e:
            report.errors.append(f"{where}: {e}")
            self.log.warning("could not reclaim the orphaned session %s: %s", where, e)
            return ""
        finally:
            self._reclaiming.pop(slug).set_result(None)
            self._inventories.pop(o.host, None)  # out of date now: the next look probes again
        how, freed, held, mounts_left = parse_reclaim(result.stdout)
        if not how or how.startswith("kept"):
            report.kept.append(f"{where}: {how[5:] if how else 'the script failed: ' + result.stderr.strip()[-200:]}")
            self.log.debug("left the session %s alone: %s", where, how or result.stderr.strip()[-200:])
            return how
        if how == "stopped none" and held and not freed:
            # no server, no directory, but a live process holds its GPUs: never freed, said once
            report.kept.append(f"{where}: a process still holds {', '.join(held)}")
            if (o.host, o.session_dir) not in self._held_warned:
                self._held_warned.add((o.host, o.session_dir))
                self.log.warning("left the GPU claims %s of %s alone: no server this hub knows uses them and the "
                                 "session directory is gone, but their process (%s) still runs; stop it by hand",
                                 ", ".join(held), where, o.pid or "?")
            return "kept held"
        what = {"stopped none": "nothing ran any more", "survived": "its server survived SIGKILL"}.get(
            how, f"stopped its server (process {o.pid or '?'}) with SIG{how.split()[-1]}")
        gpus = f"; freed GPU claim{'s' if len(freed) != 1 else ''} {', '.join(freed)}" if freed else ""
        kept = f"; kept claim{'s' if len(held) != 1 else ''} {', '.join(held)}" if held else ""
        left = f"; data mounts left mounted ({mounts_left.strip()}), so the directory was kept" if mounts_left else ""
        line = f"{where}: {what}{gpus}{kept}{left} — {o.why}"
        report.reclaimed.append(line)
        report.freed_claims += len(freed)
        self.log.warning("reclaimed the orphaned session %s", line)
        return how


def aged(inv: Inventory, seconds: float) -> Inventory:
    """``inv`` as it would read ``seconds`` after its probe: every claim and session older."""
    if seconds < 1:
        return inv
    add = int(seconds)
    return dataclasses.replace(
        inv,
        entries=tuple(dataclasses.replace(e, age=e.age + add) for e in inv.entries),
        sessions=tuple(dataclasses.replace(d, age=d.age + add) for d in inv.sessions),
    )
