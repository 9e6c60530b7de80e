"""`HostBackend`: servers on hosts reached through a `Transport` (local machine or SSH).

It places GPUs (best fit, `gridspawner.gpu.place`), claims them in the on-host ledger (the
only source of truth, so a restarted hub or a second hub on the same host never hands out a
GPU twice), starts the server with a launch script, and forwards a local TCP port to the
server's unix socket. Subclasses say which hosts exist and how to reach them.

This file holds what every step shares (the hooks subclasses override, running a script at a
`HostLogin`, the GPU probe, capacity); the rooms beside it are mixed in: `launching` (the
start path: placement, GPU claims, launch), `running` (restore, poll, stop, credential
renewal, stops file), `reconcile` (crash recovery) and `batch` (notebook runs).
"""

from __future__ import annotations

import asyncio
import getpass
import math
import socket
import time
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Sequence

from ...gpu import GPUProbeError
from ..base import Backend, BackendError, Capacity, HostCapacity, Launch, LaunchContext
from .batch import HostBatchMixin
from .down_hosts import DownHosts
from .forwards import SessionForwards
from .gpu_use import GpuUse, parse_use, use_lines
from .inventory import Inventory, parse_probe
from .launch_scripts import LaunchSpec
from .launching import HostLaunchMixin
from .ledger_problems import LedgerProblem, problem_message
from .mount_reports import log_cleanup
from .placement import Candidate, HostLogin, Placement
from .probe_scripts import probe_script
from .reconcile import HostReconcileMixin
from .refusals import Refusals
from .running import HostRunningMixin
from .saved_state import check_state
from .settings import HostSettings
from .transport import RunResult, Transport, run_script

if TYPE_CHECKING:
    from ...request import LaunchRequest


class HostBackend(HostLaunchMixin, HostRunningMixin, HostReconcileMixin, HostBatchMixin, Backend):
    """The host backend, generic over its transport (``settings``: a `HostSettings`). Each step
    gets where it runs as a value: a `HostLogin` (host, account) for a script, a `Placement`
    for a launch; a running server's login is read back from its saved state (`login_of`)."""

    settings: HostSettings
    #: the STS credentials of a live S3 mount can be replaced (`renew_credentials`)
    renews_credentials = True

    def __init__(self, name: str, settings: Any, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self._locks: dict[str, asyncio.Lock] = {}
        self._forwards = SessionForwards()
        self._down = DownHosts()
        self._init_reconcile()
        self._gpu_use: dict[str, GpuUse] = {}  # host -> GPU use its last probe saw

    # ------------------------------------------------------------------ what subclasses provide
    @abstractmethod
    def hosts(self) -> Sequence[str]:
        """The hosts to place on, in order of preference."""

    @abstractmethod
    async def transport(self, login: HostLogin) -> Transport:
        """The (pooled) transport to ``login``; raises BackendError when it is unreachable."""

    def account_for(self, host: str, user: str | None) -> str:
        """The account ``user`` (a hub user; None: background work such as probes) runs as on
        ``host``. The hub's machine: the hub's own account."""
        return getpass.getuser()

    def session_root(self, login: HostLogin) -> str:
        """The session root on ``login.host`` for ``login.account``."""
        return self.settings.session_root

    def owner(self) -> str:
        """Who holds a ledger entry (shown to admins reading the ledger)."""
        return f"{getpass.getuser()}@{socket.gethostname()} backend {self.name}"

    def ledger_shared(self, host: str) -> bool:
        """Whether several accounts of this backend write ``host``'s ledger (then only a
        directory root owns is safe: see `ledger`). The hub's machine: one account."""
        return False

    def limits_resources(self, host: str) -> bool:
        """Whether servers on ``host`` are held to the request's ``cpu`` / ``memory``: the
        backend's `resource_limits` answer (the ssh kind asks the host's runtime)."""
        return self.resource_limits(self.settings) == "all"

    def down_grace(self) -> float:
        """Seconds a host that does not answer a poll still counts as running its servers;
        after that they are declared stopped (and stopped for good once the host answers
        again). The hub's machine: forever (a failed poll there is no dead server)."""
        return math.inf

    async def _candidates(self, ctx: LaunchContext, request: LaunchRequest, reasons: Refusals) -> list[Candidate]:
        """The hosts to try for a launch, best first, as ``ctx.user``'s account (the ssh kind
        ranks them by best fit across hosts); a host left out gets its reason in ``reasons``."""
        return [Candidate(HostLogin(h, self.account_for(h, ctx.user))) for h in self.hosts()]

    async def _prepare(self, ctx: LaunchContext, placement: Placement, request: LaunchRequest,
                       spec: LaunchSpec) -> tuple[LaunchSpec, dict]:
        """Adapt the launch to its host (the ssh kind: runtime, hub API tunnel, certificates);
        returns the spec to run and extra JSON-able state to save. Default: as is."""
        return spec, {}

    async def _reattach(self, transport: Transport, state: dict) -> None:
        """After a hub restart, rebuild what a server needs besides its relay (the ssh kind:
        the hub API tunnel). Default: nothing."""

    def _release_tunnels(self, session_dir: str) -> None:
        """The server of ``session_dir`` has ended: drop what only it held (the ssh kind: its
        hub API tunnel). Default: nothing."""

    # ------------------------------------------------------------------ helpers
    def probe_login(self, host: str) -> HostLogin:
        """Where background probes of ``host`` run (the probe account)."""
        return HostLogin(host, self.account_for(host, None))

    def login_of(self, state: dict) -> HostLogin:
        """Where a running server's scripts run: the account in its saved state (a state
        saved without one: the account background work uses)."""
        host = state["host"]
        return HostLogin(host, state.get("account") or self.account_for(host, None))

    async def _run(self, login: HostLogin, script: str, what: str, timeout: float | None = None) -> RunResult:
        """Run a script at ``login`` (`transport.run_script`), within ``command_timeout`` by default."""
        timeout = self.settings.command_timeout if timeout is None else timeout
        return await run_script(await self.transport(login), script, timeout, what, login.host)

    async def _probe(self, login: HostLogin, nvidia_smi: Sequence[str] | None = None) -> Inventory:
        """What ``login.host`` has (GPUs, ledger claims, ``login.account``'s sessions)."""
        s, host = self.settings, login.host
        script = probe_script(nvidia_smi or s.nvidia_smi, s.ledger_dir, shared=self.ledger_shared(host),
                                      grace=s.ledger_grace, session_root=self.session_root(login))
        # GPU use for the idle policy rides on the same command (no extra connection)
        result = await self._run(login, script + use_lines(nvidia_smi or s.nvidia_smi), "probing GPUs")
        self._gpu_use[host] = parse_use(result.stdout, time.time())
        try:
            inv = parse_probe(result.stdout)
        except GPUProbeError as e:
            raise BackendError(f"cannot read the GPUs of {host}: {e}") from None
        self._remember_probe(host, inv)  # what a look for orphans reads (`reconcile`)
        self._reap_abandoned(host)
        return inv

    def _ledger_error(self, host: str, problem: LedgerProblem) -> BackendError:
        return BackendError(problem_message(host, self.settings.ledger_dir, problem,
                                                   shared=self.ledger_shared(host)))

    def _host_capacity(self, host: str, inv: Inventory) -> HostCapacity:
        """What the form and the metrics show for ``host`` (an unsafe ledger: its error)."""
        if inv.ledger_problem is not None:
            return HostCapacity(name=host, gpus=inv.gpus, error=str(self._ledger_error(host, inv.ledger_problem)))
        return HostCapacity(name=host, gpus=inv.gpus, free=frozenset(g.uuid for g in inv.free()))

    def _report_mounts_left(self, host: str, session_dir: str, result: RunResult) -> None:
        """Log mounts that could not be unmounted and writes kept because they were not uploaded."""
        log_cleanup(self.log, host, session_dir, result.stdout, self.settings.flush_timeout)

    def _check_state(self, state: Any) -> dict:
        return check_state(state, tuple(self.hosts()), self.name)

    def gpu_busy(self, launch: Launch, threshold: int, max_age: float) -> bool | None:
        """From the host's last capacity probe (`gpu_use`): whether the server's GPUs are in
        use by its processes; None when unknown (no probe younger than ``max_age`` s)."""
        st = launch.state
        use = self._gpu_use.get(st.get("host"))
        if use is None or time.time() - use.at > max_age or not isinstance(st.get("pid"), int):
            return None
        return use.busy((g.uuid for g in launch.gpus), st["pid"], threshold)

    async def probe_capacity(self) -> Capacity:
        """Every host probed at once (as the probe account); a host that cannot be reached
        is listed with its error (the form shows it as unreachable)."""
        async def one(host: str) -> HostCapacity:
            try:
                inv = await self._probe(self.probe_login(host))
            except BackendError as e:
                return HostCapacity(name=host, error=str(e))
            return self._host_capacity(host, inv)

        hosts = await asyncio.gather(*(one(h) for h in self.hosts()))
        return Capacity(backend=self.name, hosts=tuple(hosts), updated=time.time())

    async def close(self) -> None:
        await self._forwards.close()

