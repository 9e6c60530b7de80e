"""Fault injection: the next N requests matching (method regex, path regex) misbehave."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field


@dataclass
class FaultRule:
    method: str = ".*"
    path: str = ".*"
    action: str = "error"  # error | hang | drop
    status: int = 500
    retry_after: int = 1  # seconds, for 429
    seconds: float = 0.0  # for hang: stall this long, then answer normally
    count: int = 1  # how many matching requests; -1 = until cleared
    hits: int = 0
    _m: re.Pattern = field(init=False, repr=False)
    _p: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ("error", "hang", "drop"):
            raise ValueError(f"unknown fault action {self.action!r}")
        self._m = re.compile(self.method, re.I)
        self._p = re.compile(self.path)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("method", "path", "action", "status", "retry_after",
                                              "seconds", "count", "hits")}


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, **kw) -> FaultRule:
        rule = FaultRule(**kw)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def match(self, method: str, path_qs: str) -> FaultRule | None:
        """First live rule whose regexes `search` the method and the path (with query string)."""
        with self._lock:
            for rule in self.rules:
                if rule.count == 0:
                    continue
                if rule._m.fullmatch(method) and rule._p.search(path_qs):
                    rule.hits += 1
                    if rule.count > 0:
                        rule.count -= 1
                    return rule
        return None
