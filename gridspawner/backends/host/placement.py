"""Where a host launch runs, as explicit values passed from step to step (no hidden state):

- `HostLogin`: a host and the account scripts run as there (the ssh kind: one pooled
  connection per login; the hub's own machine: the hub's account);
- `Candidate`: a host a placement may try, with the probe it just made of it (if any);
- `Placement`: the login chosen, the GPUs placed there and their claim files in its ledger.

`shortage` and `describe_limits` put a request and a host's answer into words (pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...gpu import GPU, min_mib
from .inventory import Inventory

if TYPE_CHECKING:
    from ...request import LaunchRequest


@dataclass(frozen=True)
class HostLogin:
    """``host``, as ``account``: where a host script runs."""

    host: str
    account: str


@dataclass(frozen=True)
class Candidate:
    """A host to try for one launch, as the launching user's account there; ``inventory``:
    the probe the ranking just made of it (used for the first claim attempt; None: the host
    is probed under its claim lock)."""

    login: HostLogin
    inventory: Inventory | None = None


@dataclass(frozen=True)
class Placement:
    """Where one launch runs: the login, the GPUs placed there (best fit) and the claim files
    made for them in the host's ledger (empty without GPUs)."""

    login: HostLogin
    gpus: tuple[GPU, ...] = ()
    claims: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        return self.login.host

    @property
    def gpu_uuids(self) -> tuple[str, ...]:
        """The placed GPUs' UUIDs, in ``CUDA_VISIBLE_DEVICES`` order."""
        return tuple(g.uuid for g in self.gpus)


def shortage(host: str, request: LaunchRequest, inv: Inventory, tolerance: float) -> str:
    """Why ``host``'s free GPUs (``inv``) do not fit ``request``: "2 GPUs with ≥ 40 GB
    requested, 1 free on a"."""
    count, gb = request.gpus, request.gpu_memory
    if not inv.gpus:
        return f"{host} has no GPUs" + ("" if inv.has_nvidia_smi else " (no nvidia-smi found)")
    need = min_mib(gb, tolerance)
    free = sum(1 for g in inv.free() if g.memory_total_mib >= need)
    size = f" with ≥ {gb} GB" if gb else ""
    return f"{count} GPU{'s' if count != 1 else ''}{size} requested, {free} free on {host}"


def describe_limits(request: LaunchRequest) -> str:
    """The request's CPU / memory choices as words ("4 CPUs and 16 GB memory"; "" for none)."""
    parts = []
    if request.cpu:
        parts.append(f"{request.cpu:g} CPU{'s' if request.cpu != 1 else ''}")
    if request.memory:
        parts.append(f"{request.memory} GB memory")
    return " and ".join(parts)
