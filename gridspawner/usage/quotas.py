"""GPU quotas: the admin's limits, who they apply to, refusals at submit, and when a running
server must stop because its user ran out. Pure: usage numbers come in, decisions go out.

Limits (keys of a quota dict):

- ``gpu_hours_per_day`` / ``_per_week`` / ``_per_month``: GPU-hours (GPUs × hours) one user
  may use in that calendar period;
- ``gpus_at_once``: GPUs one user's running servers may hold together;
- in `group_quotas` only, the same for the whole group together: ``group_gpu_hours_per_day``
  / ``_per_week`` / ``_per_month`` and ``group_gpus_at_once``.

A user's own limits come from ``user_quotas[name]`` (each key given there wins), then from
the groups of ``group_quotas`` they are in — the most generous: a limit applies only when
every such group sets it, at the largest value — and from ``default_quota`` when they are in
none of them. Group limits apply to every member, each group on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ..vocabulary import CatalogError, Problems
from .periods import PERIOD_WORDS, PERIODS

USER_KEYS = tuple(f"gpu_hours_per_{p}" for p in PERIODS) + ("gpus_at_once",)
GROUP_KEYS = tuple(f"group_{k}" for k in USER_KEYS)


@dataclass(frozen=True)
class Limits:
    """One set of limits: GPU-hours per period (missing: no limit) and GPUs at once."""

    gpu_hours: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    gpus_at_once: int | None = None

    @property
    def empty(self) -> bool:
        return not self.gpu_hours and self.gpus_at_once is None


@dataclass(frozen=True)
class QuotaSettings:
    default: Limits = Limits()
    groups: Mapping[str, Limits] = field(default_factory=lambda: MappingProxyType({}))
    group_pools: Mapping[str, Limits] = field(default_factory=lambda: MappingProxyType({}))
    users: Mapping[str, tuple[Limits, frozenset[str]]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def configured(self) -> bool:
        return not self.default.empty or bool(self.groups) or bool(self.group_pools) or bool(self.users)

    def limits_for(self, user: str, groups: Iterable[str]) -> Limits:
        """The user's own limits (see the module's rules)."""
        mine = [self.groups[g] for g in sorted(set(groups)) if g in self.groups]
        base = _most_generous(mine) if mine else self.default
        override = self.users.get(user)
        if override is None:
            return base
        limits, keys = override
        hours = {p: h for p, h in base.gpu_hours.items() if f"gpu_hours_per_{p}" not in keys}
        hours.update(limits.gpu_hours)
        at_once = limits.gpus_at_once if "gpus_at_once" in keys else base.gpus_at_once
        return Limits(MappingProxyType(hours), at_once)

    def pools_for(self, groups: Iterable[str]) -> dict[str, Limits]:
        """The group-wide limits that apply to a member of ``groups``, by group."""
        return {g: self.group_pools[g] for g in sorted(set(groups)) if g in self.group_pools}


def _most_generous(all_limits: list[Limits]) -> Limits:
    hours = {}
    for p in PERIODS:
        values = [lim.gpu_hours.get(p) for lim in all_limits]
        if all(v is not None for v in values):
            hours[p] = max(values)
    at_once = [lim.gpus_at_once for lim in all_limits]
    return Limits(MappingProxyType(hours), max(at_once) if all(v is not None for v in at_once) else None)


# --------------------------------------------------------------------------- config


def _parse_limits(raw: Any, key: str, keys: tuple[str, ...], prefix: str = "") -> tuple[Limits, frozenset[str]]:
    if not isinstance(raw, Mapping):
        raise CatalogError(key, f"must be a dict with any of {', '.join(keys)} (got {type(raw).__name__})")
    for k in raw:
        if k not in keys:
            raise CatalogError(f"{key}[{k!r}]", f"unknown key; known keys: {', '.join(keys)}")
    hours = {}
    for p in PERIODS:
        name = f"{prefix}gpu_hours_per_{p}"
        if name in raw:
            v = raw[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise CatalogError(f"{key}[{name!r}]", f"must be a number of GPU-hours ≥ 0 (got {v!r})")
            hours[p] = float(v)
    at_once = None
    name = f"{prefix}gpus_at_once"
    if name in raw:
        v = raw[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise CatalogError(f"{key}[{name!r}]", f"must be a whole number of GPUs ≥ 0 (got {v!r})")
        at_once = v
    return Limits(MappingProxyType(hours), at_once), frozenset(str(k).removeprefix(prefix) for k in raw)


def parse_quotas(default: Any, groups: Any, users: Any, problems: Problems | None = None) -> QuotaSettings:
    """Validate ``c.GridSpawner.default_quota``, ``group_quotas`` and ``user_quotas``; every
    bad key is reported (CatalogError, or CatalogErrors for several)."""
    own = problems is None
    problems = problems or Problems()
    out: dict[str, Any] = {"default": Limits(), "groups": {}, "group_pools": {}, "users": {}}
    with problems.collect():
        out["default"] = _parse_limits(default or {}, "c.GridSpawner.default_quota", USER_KEYS)[0]
    with problems.collect():
        if not isinstance(groups or {}, Mapping):
            raise CatalogError("c.GridSpawner.group_quotas", "must be a dict: group name → limits")
        for g, raw in (groups or {}).items():
            key = f"c.GridSpawner.group_quotas[{g!r}]"
            with problems.collect():
                if not isinstance(raw, Mapping):
                    raise CatalogError(key, "must be a dict of limits")
                mine = {k: v for k, v in raw.items() if not str(k).startswith("group_")}
                pool = {k: v for k, v in raw.items() if str(k).startswith("group_")}
                member = _parse_limits(mine, key, USER_KEYS + GROUP_KEYS)[0]
                shared = _parse_limits(pool, key, GROUP_KEYS, prefix="group_")[0]
                if not member.empty:
                    out["groups"][str(g)] = member
                if not shared.empty:
                    out["group_pools"][str(g)] = shared
    with problems.collect():
        if not isinstance(users or {}, Mapping):
            raise CatalogError("c.GridSpawner.user_quotas", "must be a dict: user name → limits")
        for u, raw in (users or {}).items():
            with problems.collect():
                out["users"][str(u)] = _parse_limits(raw, f"c.GridSpawner.user_quotas[{u!r}]", USER_KEYS)
    if own:
        problems.raise_any()
    return QuotaSettings(out["default"], MappingProxyType(out["groups"]), MappingProxyType(out["group_pools"]),
                         MappingProxyType(out["users"]))


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Standing:
    """What one user (or one group, ``group`` set) has used: GPU-hours per period so far
    (running servers counted up to now) and the GPUs running now."""

    gpu_hours: Mapping[str, float]
    gpus_running: int
    group: str | None = None


def fmt_hours(x: float) -> str:
    """GPU-hours as people read them: ``100``, ``98.5``, ``7.25``, ``0.0031`` (three
    significant digits below 100, so a small quota does not read as 0)."""
    if x >= 100 or x == 0:
        text = f"{x:.1f}"
        return text[:-2] if text.endswith(".0") else text
    return f"{x:.3g}"


def _who(standing: Standing) -> tuple[str, str]:
    return ("you have", "you already use") if standing.group is None else (
        f"the group {standing.group} has", f"the group {standing.group} already uses")


class QuotaRefusal(str):
    """A quota refusal: its text (what the form shows at the field), and whether waiting lifts
    it — ``waits``: a GPUs-at-once limit the request fits once running GPUs end (a queued run
    waits; a spawn is refused all the same), with ``wait_text`` saying what it waits for."""

    waits: bool
    wait_text: str

    def __new__(cls, text: str, waits: bool = False, wait_text: str = "") -> "QuotaRefusal":
        obj = super().__new__(cls, text)
        obj.waits, obj.wait_text = waits, wait_text
        return obj


def refusal(limits: Limits, standing: Standing, gpus: int, resets: Mapping[str, str]) -> QuotaRefusal | None:
    """Why a new server with ``gpus`` GPUs may not start under ``limits`` (None: it may).
    ``resets`` maps a period to when it starts again (``"on 1 July"``). Servers without
    GPUs are never refused. GPU-hours used up come first (waiting does not lift them)."""
    if gpus <= 0:
        return None
    has, uses = _who(standing)
    for p in PERIODS:
        limit = limits.gpu_hours.get(p)
        if limit is None:
            continue
        used = standing.gpu_hours.get(p, 0.0)
        if used >= limit:
            again = f"; GPU servers can start again {resets[p]}" if p in resets else ""
            return QuotaRefusal(f"{has} used {fmt_hours(used)} of {fmt_hours(limit)} GPU-hours {PERIOD_WORDS[p]}{again} "
                                "(a server without GPUs can still start)")
    most = limits.gpus_at_once
    if most is not None and standing.gpus_running + gpus > most:
        running = standing.gpus_running
        if running:
            whose = "" if standing.group is None else f" by the group {standing.group}"
            return QuotaRefusal(
                f"{uses} {running} GPU{'s' if running != 1 else ''} in running servers and may hold at most "
                f"{most} at once; ask for at most {max(0, most - running)} or stop a server",
                waits=gpus <= most, wait_text=f"waiting: {running} of {most} GPUs at once in use{whose} "
                                              f"(this run needs {gpus})")
        return QuotaRefusal(f"at most {most} GPU{'s' if most != 1 else ''} at once (you asked for {gpus})")
    return None


@dataclass(frozen=True)
class QuotaStop:
    """A GPU quota that runs (or ran) out: ``out_at`` (epoch s) is when; a running GPU
    server of the user is stopped at ``out_at + grace``."""

    out_at: float
    message: str


def quota_out(limits: Limits, standing: Standing, period_ends: Mapping[str, float], now: float) -> QuotaStop | None:
    """When the user's (or group's) GPU-hours run out at the current rate (its running
    GPUs): the earliest period whose limit is reached before the period ends. None when no
    limit runs out this period (or nothing runs)."""
    rate = standing.gpus_running
    if rate <= 0:
        return None
    found: QuotaStop | None = None
    for p in PERIODS:
        limit = limits.gpu_hours.get(p)
        if limit is None or p not in period_ends:
            continue
        used = standing.gpu_hours.get(p, 0.0)
        # usage grows linearly while the same GPUs run: it crosses the limit at out_at
        out_at = now + (limit - used) / rate * 3600.0
        if out_at >= period_ends[p]:
            continue
        if found is None or out_at < found.out_at:
            whose = "your" if standing.group is None else f"the group {standing.group}'s"
            found = QuotaStop(out_at, f"{whose} {fmt_hours(limit)} GPU-hours for {PERIOD_WORDS[p]} run out")
    return found
