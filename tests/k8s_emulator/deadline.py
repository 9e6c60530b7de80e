"""A pod's ``spec.activeDeadlineSeconds``, as the kubelet and the API server treat it.

- **Kubelet** (`watch`): counted from the pod's ``status.startTime`` (set when the node
  accepted the pod, before the image pull), read afresh on every look (a patch may lower it).
  Once passed, the kubelet records a Warning event ``DeadlineExceeded``, sets the pod's phase
  ``Failed`` with ``reason: DeadlineExceeded`` and the message below, stops its containers
  (SIGTERM, then SIGKILL after the pod's grace period) and keeps the pod object (nothing is
  deleted: its log can still be read). A pod that ended by itself first is left alone.
- **API server** (`update_problem`): an update may lower the deadline or set one where there
  was none, never raise or remove it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING

from .util import rfc3339

if TYPE_CHECKING:
    from .kubelet import Kubelet

REASON = "DeadlineExceeded"
MESSAGE = "Pod was active on the node longer than the specified deadline"
#: seconds between two looks at a pod's deadline
LOOK_INTERVAL = 0.05


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def update_problem(old: dict, new: dict) -> str | None:
    """Why the API server refuses a pod update's ``spec.activeDeadlineSeconds`` (None: it may)."""
    before, after = old.get("activeDeadlineSeconds"), new.get("activeDeadlineSeconds")
    if after is None:
        return None if before is None else "must not update from a positive integer to nil value"
    if before is not None and after > before:
        return f"Invalid value: {after}: must be less than or equal to previous value"
    return None


async def watch(kubelet: "Kubelet", ns: str, name: str, uid: str) -> None:
    """End the pod at its deadline (see the module), unless it is over or gone first."""
    while True:
        pod = kubelet.current(ns, name, uid)
        if pod is None or pod["status"].get("phase") in ("Succeeded", "Failed"):
            return
        secs, start = pod["spec"].get("activeDeadlineSeconds"), pod["status"].get("startTime")
        if secs is not None and start and time.time() >= _epoch(start) + secs:
            break
        await asyncio.sleep(LOOK_INTERVAL)
    kubelet.event(pod, "Warning", REASON, MESSAGE)
    task = kubelet.tasks.get(uid)
    if task is not None:
        task.cancel()  # a container still starting never starts now

    def failed(p: dict) -> None:
        p["status"].update(phase="Failed", reason=REASON, message=MESSAGE)
        for s in p["status"].get("containerStatuses") or []:
            st = s.get("state") or {}
            if "terminated" not in st:
                s.update(ready=False, started=False, state={"terminated": {
                    "exitCode": 137, "reason": "Error", "startedAt": (st.get("running") or {}).get("startedAt", rfc3339()),
                    "finishedAt": rfc3339(), "containerID": s.get("containerID", "")}})
        kubelet._recompute_ready(p)

    # the status first: the containers' exits that follow see a pod that is over
    kubelet._update(ns, name, uid, failed)
    if kubelet.run_pods:
        await kubelet.stop_processes(uid, pod["spec"].get("terminationGracePeriodSeconds", 30))
    kubelet.cluster.scheduler.kick()  # its resources are free
