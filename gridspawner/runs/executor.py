"""The executor: a task in the service process that takes runs from the queue (the
``queued`` rows, oldest first per backend), starts them as batch jobs on their backend,
polls them, and finishes them (outputs into the run store, status, usage record).

- **Queue**: per backend, only the oldest queued run is tried (FIFO, no overtaking). A
  backend that answered NoCapacity is tried again after ``queue_retry`` seconds, doubling
  while it keeps answering so (up to ``queue_retry_max``), or at once when a run of the
  service on it ends (it freed its GPUs); while a run waits, the backend's
  running runs are polled every `FAST_POLL` seconds, so a GPU freed by a run starts the
  next within a second.
- **Restart safety**: the state is in the database. On start, running runs are re-attached
  from their saved launch state and collected when they end; queued ones stay queued; a run
  cut in ``preparing`` goes back to the queue (what its start left on a host is reclaimed
  by the backend's look for orphans, which knows the running runs' states).
- Mount credentials typed by the user are kept in memory only, until the run started. A
  queued run that needs them after a restart of the service ends ``failed``, naming the
  mount's field (`LOST_SECRETS`): it never starts without them.
- **GPU quota** (`quota`): checked again at start by the submit's own code, and watched
  while runs run, as servers are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..backends.base import BackendError, Launch, LaunchContext, NoCapacity
from ..gpu import GPU
from ..mounts.specs import strip_secrets, typed_secret_fields
from ..preparation import prepare
from ..vocabulary import OptionsError
from . import outcome
from .quota import QuotaWait, RunQuota, check_start, stop_message, watch_round
from .files import INPUT, LOG, OUTPUT, RunStoreError
from .papermill_cmd import batch_job
from .store import RunStore

log = logging.getLogger("gridspawner.runs")

#: seconds between polls of a backend's running runs while a run waits for that backend
FAST_POLL = 0.25
#: seconds between two looks for orphaned run sessions on the backends
RECONCILE_INTERVAL = 600.0
#: seconds an orphaned run session must be unchanged before it is reclaimed
RECONCILE_GRACE = 120.0
#: the error of a queued run whose typed mount credentials a restart of the service lost
LOST_SECRETS = ("the credentials typed at submit are kept only in memory and were lost when the runs service "
                "restarted; submit the run again")


def run_slug(run_id: str) -> str:
    """The session name of a run on a backend (letters, digits, '-')."""
    return f"run-{run_id}"


def launch_from_state(state: dict) -> Launch:
    gpus = tuple(GPU.from_dict(g) for g in state.get("gpus") or () if isinstance(g, dict))
    return Launch(url="", state=state, gpus=gpus)


@dataclass
class Active:
    """A run the executor is running (or starting)."""

    row: dict
    launch: Launch | None = None
    next_poll: float = 0.0
    stopping: str = ""  # "cancelled" | "timed_out" | "quota" once a stop was decided
    why: str = ""  # the quota that ran out (stopping "quota")


@dataclass
class Recorder:
    """Usage records of runs: ``open(row, launch) -> record id``, ``close(record id, reason)``."""

    open: Callable[..., Any] | None = None
    close: Callable[..., Any] | None = None


class Executor:
    def __init__(self, store: RunStore, files: Any, catalog: Any, backends: dict, *, queue_retry: float = 2.0,
                 queue_retry_max: float = 30.0, poll_interval: float = 5.0, kernel: str = "",
                 recorder: Recorder | None = None, quota: RunQuota | None = None):
        self.store, self.files, self.catalog, self.backends = store, files, catalog, backends
        self.queue_retry, self.queue_retry_max = queue_retry, queue_retry_max
        self.poll_interval, self.kernel = poll_interval, kernel
        self._misses: dict[str, int] = {}  # backend → NoCapacity answers in a row
        self._nudged: set[str] = set()  # backends nudged while a start was in flight
        self.recorder = recorder or Recorder()
        self.quota = quota or RunQuota()
        #: user → when their queued runs, waiting for GPUs at once of their quota, are tried again
        self._quota_waits: dict[str, float] = {}
        self._quota_watched = time.monotonic()
        self.active: dict[str, Active] = {}
        #: typed mount secrets of queued runs (run id → options with secrets), memory only
        self.secrets: dict[str, Any] = {}
        self._blocked: dict[str, float] = {}  # backend → when its head may be tried again
        self._starting: set[str] = set()  # backends with a start in flight
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._reconciled = 0.0
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ control
    def wake(self) -> None:
        self._wake.set()

    def nudge(self, backend: str) -> None:
        """A server on ``backend`` stopped (the hub said so, `gridspawner.runs.nudge`): its
        queue is tried at once — again right after a start in flight that found no room."""
        if backend in self._starting:
            self._nudged.add(backend)
        self._blocked.pop(backend, None)
        self._misses.pop(backend, None)
        self._quota_waits.clear()  # its GPUs no longer count against its user's quota
        self.wake()

    async def start(self) -> None:
        await self.recover()
        self._task = asyncio.ensure_future(self._loop())

    async def close(self) -> None:
        self._closing = True
        pending = {t for t in [self._task, *self._tasks] if t is not None}
        wait = 5.0  # the first cancel lets clean-up run; then cancelled again until they end:
        # Python 3.11's wait_for loses a cancel that arrives as its awaited event fires
        # (gh-86296), and the loop would otherwise go on for ever
        while pending:
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=wait)
            wait = 0.5

    def keep(self, run_id: str, options: Any) -> None:
        """Remember a queued run's typed mount secrets until it starts (memory only)."""
        if strip_secrets(options or {})[1]:
            self.secrets[run_id] = options

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def recover(self) -> None:
        """After a restart: re-attach running runs, put runs cut in ``preparing`` back."""
        for row in await self.store.in_states(("preparing", "running")):
            state = json.loads(row["launch_state"]) if row.get("launch_state") else None
            if row["status"] == "preparing" and state is None:
                await self.store.move(row["id"], ("preparing",), status="queued")
                log.info("run %s: its start was cut short by a restart; queued again", row["id"])
                continue
            if row["status"] == "preparing":
                await self.store.move(row["id"], ("preparing",), status="running", started_at=row.get("started_at") or time.time())
                row["status"] = "running"
            launch = launch_from_state(state)
            if not row.get("record_id") and self.recorder.open is not None:
                # the service stopped between marking the run running and opening its usage
                # record: open it now, from the start time the row kept
                with contextlib.suppress(Exception):
                    row["record_id"] = await self.recorder.open(row, launch)
                    await self.store.move(row["id"], None, record_id=row["record_id"])
            self.active[row["id"]] = Active(row, launch)
            log.info("run %s: re-attached on backend %s", row["id"], row["backend"])

    # ------------------------------------------------------------------ the loop
    async def _loop(self) -> None:
        while not self._closing:
            self._wake.clear()
            try:
                await self._tick()
            except Exception:  # noqa: BLE001 - the executor must go on
                log.exception("runs executor: a round failed")
            delay = self._next_delay()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _waiting(self, backend: str) -> bool:
        return backend in self._blocked

    def _next_delay(self) -> float:
        now = time.monotonic()
        times = [a.next_poll for a in self.active.values() if a.launch is not None]
        times += list(self._blocked.values()) + list(self._quota_waits.values())
        if self.quota.stop is not None:
            times.append(self._quota_watched + self.quota.interval)
        return max(0.01, min(times, default=now + 3600) - now)

    async def _tick(self) -> None:
        now = time.monotonic()
        for run_id, a in list(self.active.items()):
            if a.launch is None or a.stopping or now < a.next_poll:
                continue
            a.next_poll = now + (FAST_POLL if self._waiting(a.row["backend"]) else self.poll_interval)
            self._spawn(self._check(run_id, a))
        for user, until in list(self._quota_waits.items()):
            if until <= now:
                del self._quota_waits[user]
        for row in await self.store.heads(self._quota_waits):
            b = row["backend"]
            if b in self._starting or self._blocked.get(b, 0) > now:
                continue
            self._starting.add(b)
            self._spawn(self._start(row))
        if self.quota.stop is not None and now - self._quota_watched >= self.quota.interval:
            self._quota_watched = now
            self._spawn(self._watch_quota())
        if time.time() - self._reconciled > RECONCILE_INTERVAL:
            self._reconciled = time.time()
            self._spawn(self.reconcile())

    # ------------------------------------------------------------------ start
    async def _start(self, row: dict) -> None:
        run_id, b = row["id"], row["backend"]
        try:
            # the run stays queued while its backend looks for room (most tries of a waiting
            # run end in NoCapacity); it is "preparing" from the backend's first step past
            # placement (`_progress`) until it runs
            a = Active(row)
            self.active[run_id] = a
            try:
                launch = await self._launch(row)
            except QuotaWait as e:
                # only this user's runs wait (tried again at once when GPUs of ours or a
                # server's are freed, else after queue_retry_max); the backend's queue goes on
                self.active.pop(run_id, None)
                await self.store.move(run_id, ("preparing",), status="queued")
                self._quota_waits[row["username"]] = time.monotonic() + max(self.queue_retry, self.queue_retry_max)
                await self.note(row, str(e))
                log.info("run %s of %s waits for its GPU quota: %s", run_id, row["username"], e)
                return
            except NoCapacity as e:
                self.active.pop(run_id, None)
                await self.store.move(run_id, ("preparing",), status="queued")
                # tried again after queue_retry, doubling while nothing of ours frees GPUs
                # there (up to queue_retry_max): each try probes the hosts
                misses = self._misses.get(b, 0)
                self._misses[b] = misses + 1
                self._blocked[b] = time.monotonic() + min(self.queue_retry * 2 ** misses,
                                                          max(self.queue_retry, self.queue_retry_max))
                if b in self._nudged:  # a server stopped while this try probed: try again now
                    self._nudged.discard(b)
                    self._blocked[b] = time.monotonic()
                await self.note(row, f"waiting for free GPUs: {e}")
                log.debug("run %s waits: %s", run_id, e)
                return
            except (BackendError, OptionsError) as e:
                self.active.pop(run_id, None)
                self.secrets.pop(run_id, None)
                message = "; ".join(f"{k}: {v}" for k, v in e.errors.items()) if isinstance(e, OptionsError) else str(e)
                await self._final(row, "failed", {"cell_index": None, "ename": "", "evalue": "",
                                                  "message": f"could not start: {message}"}, None, "")
                return
            self._blocked.pop(b, None)
            self._misses.pop(b, None)
            self._nudged.discard(b)
            self.secrets.pop(run_id, None)
            a.launch = launch
            a.next_poll = time.monotonic() + FAST_POLL
            st = launch.state or {}
            models = sorted({g.name for g in launch.gpus})
            started = time.time()
            values = {"launch_state": json.dumps(st), "started_at": started, "host": str(st.get("host") or st.get("node") or ""),
                      "gpu_model": " + ".join(models), "exit_code": None, "message": ""}
            if launch.gpus:
                values["gpu_memory_gb"] = min(g.memory_gb for g in launch.gpus)
            if not await self.store.move(run_id, ("queued", "preparing"), status="running", **values):
                # cancelled while it started
                a.stopping = "cancelled"
            a.row.update(values, status="running")
            if self.recorder.open is not None:
                with contextlib.suppress(Exception):
                    a.row["record_id"] = await self.recorder.open(a.row, launch)
                    await self.store.move(run_id, None, record_id=a.row["record_id"])
            fresh = await self.store.get(run_id)
            if a.stopping or (fresh and fresh.get("cancel_requested")):
                await self._stop(run_id, a, "cancelled")
        finally:
            self._starting.discard(b)
            self.wake()

    async def _launch(self, row: dict) -> Launch:
        backend = self.backends[row["backend"]]
        options = self.secrets.get(row["id"]) or json.loads(row["options"] or "{}")
        if row["id"] not in self.secrets:
            lost = typed_secret_fields(options)
            if lost:
                raise OptionsError({f: LOST_SECRETS for f in lost})
        groups = json.loads(row.get("groups") or "[]")
        # the submit's own checks once more: options, GPU quota (QuotaWait), live mount checks
        prepared = await prepare(options, self.catalog, groups, row["username"],
                                 quota=check_start(self.quota, row["username"], groups))
        request, mounts = prepared.request, prepared.mounts
        try:
            notebook = await self.files.read(row["id"], INPUT)
        except RunStoreError as e:
            raise BackendError(f"the submitted notebook could not be read: {e}") from None
        if notebook is None:
            raise BackendError("the submitted notebook is missing from the run store")
        job = batch_job(row["id"], notebook, json.loads(row["parameters"] or "{}"), self.kernel)
        ctx = LaunchContext(user=row["username"], server_name=run_slug(row["id"]), slug=run_slug(row["id"]), env={},
                            cmd=(), args=(), log=log, mounts=mounts, progress=self._progress(row["id"]),
                            storage=self.catalog.storage if mounts else None)
        return await backend.start_batch(ctx, request, job)

    def _progress(self, run_id: str) -> Callable[[str], None]:
        """The launch's progress: past its placement (not a probe), the run is preparing."""
        marked = False

        def progress(message: str) -> None:
            nonlocal marked
            log.debug("run %s: %s", run_id, message)
            if not marked and not message.startswith("probing"):
                marked = True
                self._spawn(self.store.move(run_id, ("queued",), status="preparing"))

        return progress

    # ------------------------------------------------------------------ poll / stop / finish
    async def _check(self, run_id: str, a: Active) -> None:
        backend = self.backends[a.row["backend"]]
        try:
            code = await backend.poll_batch(a.launch)
        except BackendError as e:
            log.warning("run %s: poll failed: %s", run_id, e)
            return
        if code is None:
            limit = a.row.get("max_runtime")
            if limit and a.row.get("started_at") and time.time() - a.row["started_at"] > limit:
                await self._stop(run_id, a, "timed_out")
            return
        await self._finish(run_id, a, code)

    async def cancel(self, run_id: str) -> None:
        """Stop an active run someone asked to cancel (the row's flag is set already)."""
        a = self.active.get(run_id)
        if a is None or a.stopping:
            return
        if a.launch is None:
            a.stopping = "cancelled"  # the start sees it when it returns
            return
        await self._stop(run_id, a, "cancelled")

    async def note(self, row: dict, message: str) -> None:
        """Set an active run's message (what it waits for), when it changed."""
        if row.get("message", "") != message:
            row["message"] = message
            await self.store.move(row["id"], ("queued", "preparing", "running"), message=message)

    async def _watch_quota(self) -> None:
        """Stop the running GPU runs whose users' GPU-hours ran out (after the grace); note the
        coming stop on the others (`quota.watch_round`)."""
        running = {rid: a for rid, a in self.active.items() if a.launch is not None and not a.stopping}

        async def note(run_id: str, message: str) -> None:
            if run_id in running:
                await self.note(running[run_id].row, message)

        for run_id, why in await watch_round(self.quota, [a.row for a in running.values()], time.time(), note):
            a = running[run_id]
            if a.stopping:
                continue
            a.why, a.stopping = why, "quota"  # (no poll of it from now on)
            log.warning("run %s of %s: %s; stopping it (GPU quota)", run_id, a.row["username"], why)
            self._spawn(self._stop(run_id, a, "quota"))

    async def _stop(self, run_id: str, a: Active, why: str) -> None:
        a.stopping = why
        backend = self.backends[a.row["backend"]]
        try:
            await backend.stop(a.launch, now=True)
        except BackendError as e:
            log.warning("run %s: stop: %s", run_id, e)
        await self._finish(run_id, a, None)

    async def _finish(self, run_id: str, a: Active, code: int | None) -> None:
        backend = self.backends[a.row["backend"]]
        try:
            result = await backend.finish_batch(a.launch)
        except BackendError as e:
            log.warning("run %s: collecting its outputs failed: %s", run_id, e)
            result = None
        self.active.pop(run_id, None)
        output = result.files.get(OUTPUT) if result else None
        tail = result.log_tail if result else ""
        exit_code = result.exit_code if result and result.exit_code is not None else code
        status, error = outcome.judge(exit_code, output, tail, a.row.get("image") or "",
                                      cancelled=a.stopping == "cancelled",
                                      timed_out=a.stopping == "timed_out" or bool(result and result.timed_out),
                                      lost="" if result else "the run's outputs could not be collected",
                                      quota=stop_message(a.why) if a.stopping == "quota" else "")
        try:
            if output is not None:
                await self.files.write(run_id, OUTPUT, output)
            await self.files.write(run_id, LOG, tail.encode())
        except RunStoreError as e:
            log.warning("run %s: saving its outputs failed: %s", run_id, e)
            if status != "cancelled":
                status, error = "failed", {"cell_index": None, "ename": "", "evalue": "",
                                           "message": f"the run ended ({status}) but its outputs could not be saved: {e}"}
        await self._final(a.row, status, error, exit_code, tail, "quota" if a.stopping == "quota" else None)
        # its GPUs are free: the backend's next queued run is tried now
        self._blocked.pop(a.row["backend"], None)
        self._misses.pop(a.row["backend"], None)
        self._quota_waits.clear()
        self.wake()

    async def _final(self, row: dict, status: str, error: dict | None, exit_code: int | None, tail: str,
                     reason: str | None = None) -> None:
        now = time.time()
        await self.store.move(row["id"], ("queued", "preparing", "running"), status=status, finished_at=now,
                              error=outcome.as_json(error), exit_code=exit_code, log_tail=outcome.db_tail(tail),
                              message="")
        record = row.get("record_id")
        if record and self.recorder.close is not None:
            reason = reason or {"succeeded": "ended", "failed": "failure", "timed_out": "max_runtime"}.get(status)
            if reason is None:
                fresh = await self.store.get(row["id"]) or {}
                by = fresh.get("cancelled_by") or ""
                reason = "user" if by == row["username"] else "admin"
            with contextlib.suppress(Exception):
                await self.recorder.close(record, now, reason, (await self.store.get(row["id"]) or {}).get("cancelled_by"))
        log.info("run %s of %s: %s", row["id"], row["username"], status)

    # ------------------------------------------------------------------ orphans
    async def reconcile(self) -> None:
        """Reclaim run sessions on the backends that no running run uses (a start cut short
        by a crash of the service)."""
        for name, backend in self.backends.items():
            if not getattr(backend, "runs_batch", False):
                continue

            def known(name: str = name) -> list[dict]:
                return [a.launch.state for a in self.active.values() if a.launch is not None and a.row["backend"] == name]

            try:
                report = await backend.reconcile(known, RECONCILE_GRACE)
            except Exception as e:  # noqa: BLE001 - a look for orphans never stops the executor
                log.warning("runs: looking for orphaned runs on %s failed: %s", name, e)
                continue
            for line in report.reclaimed:
                log.warning("runs: reclaimed on %s: %s", name, line)
