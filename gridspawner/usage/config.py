"""The usage settings, validated once (at hub start-up, with the catalog) into a frozen value.

Every mistake is a CatalogError naming the key (several are collected), like the catalog's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from ..vocabulary import CatalogError, Problems, parse_duration
from ..server_env import parse_stop_warnings
from .idle import IdlePolicy, parse_idle
from .periods import zone
from .pricing import Prices, parse_prices
from .quotas import QuotaSettings, parse_quotas

#: the environment variable that overrides ``c.GridSpawner.usage_db_url``
DB_URL_ENV = "GRIDSPAWNER_USAGE_DB_URL"


@dataclass(frozen=True)
class UsageConfig:
    record: bool = True
    #: the admin's URL, "" = derived from the hub's database (`store.default_url`)
    db_url: str = ""
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    prices: Prices = Prices()
    quotas: QuotaSettings = QuotaSettings()
    grace: float = 900.0
    check_interval: float = 60.0
    idle: IdlePolicy = IdlePolicy()
    #: Kubernetes GPU use: a Prometheus with the DCGM exporter's metrics ("" = none)
    prometheus_url: str = ""
    prometheus_timeout: float = 10.0


def build_usage_config(
    *,
    record_usage: Any = True,
    usage_db_url: Any = "",
    usage_timezone: Any = "UTC",
    prices: Any = None,
    default_quota: Any = None,
    group_quotas: Any = None,
    user_quotas: Any = None,
    quota_grace: Any = "15m",
    quota_check_interval: Any = 60.0,
    idle_timeout: Any = 0,
    idle_timeout_per_backend: Any = None,
    idle_timeout_per_profile: Any = None,
    idle_gpu_threshold: Any = 5,
    idle_when_gpu_use_unknown: Any = "keep",
    gpu_metrics_prometheus_url: Any = "",
    gpu_metrics_timeout: Any = 10.0,
    stop_warnings: Any = (),
    problems: Problems | None = None,
) -> UsageConfig:
    """Validate the usage traits; raises CatalogError(s) naming each bad key unless
    ``problems`` collects them (then a default value stands in for a bad one)."""
    own = problems is None
    problems = problems or Problems()
    out: dict[str, Any] = {}
    out["record"] = bool(record_usage)
    url = os.environ.get(DB_URL_ENV) or usage_db_url or ""
    with problems.collect():
        if not isinstance(url, str):
            raise CatalogError("c.GridSpawner.usage_db_url", "must be a SQLAlchemy URL such as 'postgresql://…' or ''")
        if url:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(url)
            except ArgumentError:
                raise CatalogError("c.GridSpawner.usage_db_url", "is not a database URL (e.g. 'sqlite:////srv/usage.sqlite' "
                                   "or 'postgresql://user:password@host/db')") from None
        out["db_url"] = url
    with problems.collect():
        try:
            out["timezone"] = zone(usage_timezone if isinstance(usage_timezone, str) else "")
        except ValueError as e:
            raise CatalogError("c.GridSpawner.usage_timezone", str(e)) from None
    with problems.collect():
        out["prices"] = parse_prices(prices)
    quotas = parse_quotas(default_quota, group_quotas, user_quotas, problems)
    out["quotas"] = quotas
    with problems.collect():
        if quotas.configured and not out["record"]:
            raise CatalogError("c.GridSpawner.record_usage", "must stay True while quotas are set (they count the records)")
    with problems.collect():
        grace = parse_duration(quota_grace, "c.GridSpawner.quota_grace")
        out["grace"] = grace or 0.0
    with problems.collect():
        if isinstance(quota_check_interval, bool) or not isinstance(quota_check_interval, (int, float)) or not (
            1 <= quota_check_interval <= 3600
        ):
            raise CatalogError("c.GridSpawner.quota_check_interval", "must be a number of seconds between 1 and 3600")
        out["check_interval"] = float(quota_check_interval)
    idle = parse_idle(idle_timeout, idle_timeout_per_backend, idle_timeout_per_profile, idle_gpu_threshold,
                      idle_when_gpu_use_unknown, problems)
    try:  # (a bad stop_warnings is reported by the catalog's own check)
        warnings = parse_stop_warnings(stop_warnings)
    except CatalogError:
        warnings = ()
    out["idle"] = replace(idle, warning=float(max(warnings, default=600)))
    with problems.collect():
        if idle.configured and not out["record"]:
            raise CatalogError("c.GridSpawner.record_usage", "must stay True while an idle timeout is set "
                               "(the idle policy watches the recorded servers)")
    with problems.collect():
        url = gpu_metrics_prometheus_url or ""
        if not isinstance(url, str) or (url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url)):
            raise CatalogError("c.GridSpawner.gpu_metrics_prometheus_url",
                               "must be an http(s) URL such as 'http://prometheus-server.monitoring.svc' or ''")
        out["prometheus_url"] = url.rstrip("/")
    with problems.collect():
        if isinstance(gpu_metrics_timeout, bool) or not isinstance(gpu_metrics_timeout, (int, float)) or not (
            0 < gpu_metrics_timeout <= 120
        ):
            raise CatalogError("c.GridSpawner.gpu_metrics_timeout", "must be a number of seconds above 0, at most 120")
        out["prometheus_timeout"] = float(gpu_metrics_timeout)
    if own:
        problems.raise_any()
    return UsageConfig(**out)
