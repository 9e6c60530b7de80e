"""Best fit across hosts: every eligible host probed at once (`probe_all`), then ranked by
the cards a placement would take there (`rank`, pure)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping, Sequence, TypeVar

from ...gpu import place
from ..base import BackendError, Unreachable
from ..host.inventory import Inventory
from ..host.placement import Candidate, HostLogin, shortage
from ..host.refusals import Refusals
from ..host.ssh_pool import Down

if TYPE_CHECKING:
    from ...request import LaunchRequest

T = TypeVar("T")


async def probe_all(probes: Mapping[str, Callable[[], Awaitable[T]]],
                    down: Callable[[str], Down | None]) -> dict[str, T | BackendError]:
    """Run each host's probe at once. A host ``down`` knows as not answering is waited for
    only while the others are still answering: its probe goes on in the background (so the
    pool learns when it is back), and it is left out (an `Unreachable`). When every host is
    such a host, all are waited for (each within its own timeout). A probe's BackendError
    is its host's result; any other exception is raised."""
    if not probes:
        return {}
    tasks = {h: asyncio.ensure_future(probe()) for h, probe in probes.items()}
    answering = [t for h, t in tasks.items() if down(h) is None]
    await asyncio.wait(answering or list(tasks.values()))
    out: dict[str, T | BackendError] = {}
    for host, task in tasks.items():
        if not task.done():
            task.add_done_callback(_consume)
            now_down = down(host)
            why = (f"for {time.monotonic() - now_down.since:.0f} s: {now_down.error}" if now_down is not None
                   else "no answer yet")
            out[host] = Unreachable(f"{host} was left out: it has not been answering {why}")
            continue
        exc = task.exception()
        if exc is not None and not isinstance(exc, BackendError):
            raise exc
        out[host] = exc if exc is not None else task.result()
    return out


def rank(hosts: Sequence[str], results: Mapping[str, tuple[HostLogin, Inventory] | BackendError],
         request: LaunchRequest, *, entry: str, hub: str, tolerance: float, reasons: Refusals) -> list[Candidate]:
    """The candidates among ``hosts`` (each host's probe result: its login and inventory, or
    why it could not be probed), best first: the host whose chosen cards are smallest (total
    VRAM, then the largest card, then the order of ``hosts``). Without GPUs: every probed
    host in order. A host left out gets its reason in ``reasons``."""
    ranked = []
    for i, host in enumerate(hosts):
        result = results[host]
        if isinstance(result, BackendError):
            reasons.failure(result)
            continue
        login, inv = result
        if request.gpus <= 0:
            ranked.append(((0, 0, i), Candidate(login)))
            continue
        gpus = place(inv.gpus, request.gpus, request.gpu_memory, tolerance, taken=inv.claimed_except(entry, hub))
        if gpus is None:
            reasons.shortage(shortage(host, request, inv, tolerance))
            continue
        mem = [g.memory_total_mib for g in gpus]
        ranked.append(((sum(mem), max(mem), i), Candidate(login, inv)))
    ranked.sort(key=lambda r: r[0])
    return [c for _, c in ranked]


def _consume(task: asyncio.Future) -> None:
    """Retrieve a background probe's outcome (a host left out of a placement), so asyncio does
    not log "exception was never retrieved"; the pool has recorded what it needs."""
    if not task.cancelled():
        task.exception()
