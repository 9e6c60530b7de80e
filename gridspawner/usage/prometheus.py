"""GPU use of Kubernetes servers from NVIDIA's DCGM exporter, through the admin's Prometheus
(``c.GridSpawner.gpu_metrics_prometheus_url``): one instant query per check round.

The exporter labels each GPU's series with the pod using it (``pod``, ``namespace``); when
Prometheus scrapes the exporter as a target of its own, those labels are usually renamed
``exported_pod`` / ``exported_namespace`` (the target's labels win unless the scrape config
honours the exporter's): both spellings are read, the ``exported_`` ones first.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping
from urllib.parse import urlencode

log = logging.getLogger("gridspawner.usage")

METRIC = "DCGM_FI_DEV_GPU_UTIL"
QUERY = f"max by (namespace, pod, exported_namespace, exported_pod) ({METRIC})"


def query_url(base: str) -> str:
    return f"{base.rstrip('/')}/api/v1/query?{urlencode({'query': QUERY})}"


def parse_utilization(body: Any) -> dict[tuple[str, str], float]:
    """(namespace, pod) → the highest utilisation (%) of its GPUs, from Prometheus' JSON
    answer to `QUERY`; ValueError when the answer is not a successful vector."""
    if not isinstance(body, Mapping) or body.get("status") != "success":
        raise ValueError(f"Prometheus answered {str(body)[:200]!r}")
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise ValueError(f"expected a vector, got {data.get('resultType')!r}")
    out: dict[tuple[str, str], float] = {}
    for series in data.get("result") or []:
        labels = series.get("metric") or {}
        pod = labels.get("exported_pod") or labels.get("pod")
        ns = labels.get("exported_namespace") or labels.get("namespace")
        try:
            value = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if pod and ns:
            out[(ns, pod)] = max(value, out.get((ns, pod), 0.0))
    return out


async def pod_gpu_utilization(base: str, timeout: float) -> dict[tuple[str, str], float] | None:
    """Query Prometheus (bounded by ``timeout`` seconds); None when it cannot be read (logged)."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    try:
        response = await AsyncHTTPClient().fetch(query_url(base), connect_timeout=timeout, request_timeout=timeout)
        return parse_utilization(json.loads(response.body))
    except (HTTPClientError, OSError, ValueError) as e:
        log.warning("gridspawner: cannot read GPU use from Prometheus at %s: %s", base, e)
        return None


def pod_busy(utilization: Mapping[tuple[str, str], float] | None, state: Mapping, threshold: int) -> bool | None:
    """Whether a server pod's GPUs are used (None: unknown — no answer, or no series for it)."""
    if utilization is None:
        return None
    value = utilization.get((str(state.get("namespace")), str(state.get("pod"))))
    return None if value is None else value >= threshold
