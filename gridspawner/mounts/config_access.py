"""``c.GridSpawner.storage['access']``: which S3 endpoints and SSH hosts a group may use,
and how many mounts per server. `StorageConfig.access_for` joins a user's rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..vocabulary import CatalogError, check_keys, require_dict, require_int


@dataclass(frozen=True)
class Access:
    """What a group may use. ``None`` = every endpoint/host; ``max_mounts`` None = the global limit."""

    s3: frozenset[str] | None = None
    ssh: frozenset[str] | None = None
    max_mounts: int | None = None

    def union(self, other: "Access") -> "Access":
        def join(a, b):
            return None if a is None or b is None else a | b

        mm = None if self.max_mounts is None and other.max_mounts is None else max(self.max_mounts or 0, other.max_mounts or 0)
        return Access(join(self.s3, other.s3), join(self.ssh, other.ssh), mm)


def parse_access(rule: Any, s3: Mapping, ssh: Mapping, key: str) -> Access:
    rule = require_dict(rule, key)
    check_keys(rule, ("s3", "ssh", "max_mounts"), key)

    def names(field_: str, known: Mapping) -> frozenset[str] | None:
        v = rule.get(field_, [])
        if v == "*":
            return None
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise CatalogError(f"{key}.{field_}", f"must be a list of names or '*' (got {v!r})")
        for x in v:
            if x not in known:
                raise CatalogError(f"{key}.{field_}", f"unknown {field_} storage {x!r}; defined: {', '.join(known) or 'none'}")
        return frozenset(v)

    mm = rule.get("max_mounts")
    return Access(names("s3", s3), names("ssh", ssh), None if mm is None else require_int(mm, f"{key}.max_mounts", 0, 64))
