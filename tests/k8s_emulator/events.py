"""core/v1 Events as a real cluster writes them.

Two shapes, as in a 1.33 cluster read through core/v1:
- kubelet events (old recorder): `source {component: kubelet, host}`, `firstTimestamp`,
  `lastTimestamp`, `count`, `eventTime: null`, repeated events aggregated by bumping `count`;
- scheduler events (events.k8s.io/v1 recorder): `eventTime` (micro), `reportingComponent`,
  `reportingInstance`, null first/lastTimestamp and an empty `source`.
Clients that sort on `lastTimestamp` only will meet nulls, as they would on a real cluster.
"""

from __future__ import annotations

import time

from .store import Store
from .util import rfc3339, rfc3339_micro


class EventRecorder:
    def __init__(self, store: Store):
        self.store = store
        self._agg: dict[tuple, tuple[str, str]] = {}  # (uid, reason, message, component) → (ns, name)
        self._seq = 0

    def _name(self, involved_name: str) -> str:
        self._seq += 1
        return f"{involved_name}.{time.time_ns() + self._seq:x}"

    @staticmethod
    def _ref(obj: dict, field_path: str | None) -> dict:
        meta = obj["metadata"]
        ref = {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta["name"],
               "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion", "v1"),
               "resourceVersion": meta.get("resourceVersion")}
        if field_path:
            ref["fieldPath"] = field_path
        return {k: v for k, v in ref.items() if v is not None}

    def kubelet(self, obj: dict, type_: str, reason: str, message: str, host: str,
                field_path: str | None = None) -> dict:
        ns = obj["metadata"].get("namespace") or "default"
        key = (obj["metadata"].get("uid"), reason, message, "kubelet", field_path)
        now = rfc3339()
        if key in self._agg:
            ens, ename = self._agg[key]

            def bump(ev: dict) -> None:
                ev["count"] = ev.get("count", 1) + 1
                ev["lastTimestamp"] = now

            out = self.store.mutate("events", ens, ename, bump)
            if out is not None:
                return out
        ev = {
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": self._name(obj["metadata"]["name"]), "namespace": ns},
            "involvedObject": self._ref(obj, field_path),
            "reason": reason, "message": message,
            "source": {"component": "kubelet", "host": host},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": type_,
            "eventTime": None, "reportingComponent": "kubelet", "reportingInstance": host,
        }
        out = self.store.create("events", ev)
        self._agg[key] = (ns, out["metadata"]["name"])
        return out

    def scheduler(self, pod: dict, type_: str, reason: str, message: str, action: str = "Scheduling") -> dict:
        ns = pod["metadata"].get("namespace") or "default"
        ev = {
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": self._name(pod["metadata"]["name"]), "namespace": ns},
            "involvedObject": self._ref(pod, None),
            "reason": reason, "message": message, "source": {},
            "firstTimestamp": None, "lastTimestamp": None, "type": type_,
            "eventTime": rfc3339_micro(), "action": action, "reportingComponent": "default-scheduler",
            "reportingInstance": "default-scheduler-emulator",
        }
        return self.store.create("events", ev)

    def controller(self, obj: dict, type_: str, reason: str, message: str, component: str) -> dict:
        ns = obj["metadata"].get("namespace") or "default"
        now = rfc3339()
        ev = {
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": self._name(obj["metadata"]["name"]), "namespace": ns},
            "involvedObject": self._ref(obj, None), "reason": reason, "message": message,
            "source": {"component": component}, "firstTimestamp": now, "lastTimestamp": now,
            "count": 1, "type": type_, "eventTime": None, "reportingComponent": component,
            "reportingInstance": "",
        }
        return self.store.create("events", ev)

    def forget(self, uid: str) -> None:
        for k in [k for k in self._agg if k[0] == uid]:
            del self._agg[k]
