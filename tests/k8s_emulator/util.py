"""Small pure helpers shared by the emulator: quantities, timestamps, selectors, Status objects.

Everything here mirrors apimachinery behaviour closely enough that a client cannot tell the
difference for the requests gridspawner and kubespawner make.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable

# ------------------------------------------------------------------ quantities
QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DEC = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
        "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
        "P": Decimal(10**15), "E": Decimal(10**18)}
QUANTITY_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


class QuantityError(ValueError):
    pass


def parse_quantity(value: Any) -> Decimal:
    """'500m' → 0.5, '1Gi' → 1073741824, 2 → 2. Raises QuantityError like the apiserver."""
    if isinstance(value, bool):
        raise QuantityError(QUANTITY_MESSAGE)
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    s = str(value).strip()
    m = QUANTITY_RE.match(s)
    if not m:
        raise QuantityError(QUANTITY_MESSAGE)
    number, suffix = m.groups()
    try:
        base = Decimal(number)
    except InvalidOperation:
        raise QuantityError(QUANTITY_MESSAGE) from None
    if suffix in _BIN:
        return base * _BIN[suffix]
    if suffix in _DEC:
        return base * _DEC[suffix]
    if suffix[:1] in ("e", "E"):
        try:
            return base * (Decimal(10) ** int(suffix[1:]))
        except ValueError:
            raise QuantityError(QUANTITY_MESSAGE) from None
    raise QuantityError(QUANTITY_MESSAGE)


def canonical_quantity(value: Any) -> str:
    """How the apiserver echoes a quantity back: numbers become strings, '0.5' → '500m'."""
    if isinstance(value, str):
        m = QUANTITY_RE.match(value.strip())
        if m and m.group(2) == "" and "." in m.group(1):
            d = Decimal(m.group(1))
            return _plain(d)
        return value
    return _plain(Decimal(str(value)))


def _plain(d: Decimal) -> str:
    if d == d.to_integral_value():
        return str(int(d))
    milli = d * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return str(d)


# ------------------------------------------------------------------ time
def rfc3339(t: float | None = None) -> str:
    """Second precision, 'Z' suffix: metav1.Time."""
    t = time.time() if t is None else t
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: float | None = None) -> str:
    """metav1.MicroTime (events' eventTime)."""
    t = time.time() if t is None else t
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------ Status objects
class ApiError(Exception):
    """Raised by handlers; becomes a metav1.Status response."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict:
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    s: dict = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason}
    if details:
        s["details"] = details
    s["code"] = code
    return s


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource})


def already_exists(resource: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists', {"name": name, "kind": resource})


def conflict(resource: str, name: str) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    {"name": name, "kind": resource})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


@dataclass
class Cause:
    field: str
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotFound, FieldValueForbidden, ...
    message: str  # 'Invalid value: "x": ...' as the apiserver words it

    def as_dict(self) -> dict:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def invalid(kind: str, name: str, causes: list[Cause]) -> ApiError:
    text = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
    if len(causes) > 1:
        text = "[" + text + "]"
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}',
                    {"name": name, "kind": kind, "causes": [c.as_dict() for c in causes]})


# ------------------------------------------------------------------ label selectors
@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in, notin, =, !=, exists, !, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        v = labels.get(self.key)
        if self.op in ("=", "==", "in"):
            return has and v in self.values
        if self.op in ("!=", "notin"):
            return not has or v not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("gt", "lt"):
            if not has:
                return False
            try:
                a, b = int(v), int(self.values[0])
            except ValueError:
                return False
            return a > b if self.op == "gt" else a < b
        return False


_LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                           r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")
_CMP_RE = re.compile(r"^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)$")


def parse_label_selector(selector: str | None) -> list[Requirement]:
    """Parse `k=v,k2 in (a,b),!k3,k4` (apimachinery labels.Parse). Raises ApiError 400."""
    if not selector:
        return []
    reqs = []
    for part in _split_top(selector):
        m = _SET_RE.match(part)
        if m:
            key, op, vals = m.group(1), m.group(2), tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(key, op, vals))
        elif part.startswith("!"):
            reqs.append(Requirement(part[1:].strip(), "!"))
        else:
            m = _CMP_RE.match(part)
            if m:
                key, op, val = m.groups()
                op = {"==": "=", ">": "gt", "<": "lt"}.get(op, op)
                if op in ("gt", "lt") and not re.fullmatch(r"-?\d+", val):
                    raise bad_request("unable to parse requirement: for 'gt', 'lt' operators, "
                                      "the value must be an integer")
                reqs.append(Requirement(key, op, (val,)))
            elif re.fullmatch(r"\S+", part):
                reqs.append(Requirement(part, "exists"))
            else:
                raise bad_request(f"unable to parse requirement: found '{part}', expected: identifier")
        key = reqs[-1].key
        if not _LABEL_KEY_RE.match(key):
            raise bad_request(f"unable to parse requirement: invalid label key \"{key}\"")
    return reqs


def labels_match(reqs: Iterable[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


# ------------------------------------------------------------------ field selectors
def _get(obj: dict, dotted: str) -> Any:
    cur: Any = obj
    for p in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


# Fields each resource supports in fieldSelector (pkg/registry/*/strategy.go ToSelectableFields).
_COMMON = ("metadata.name", "metadata.namespace")
SELECTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": _COMMON + ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                       "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
                       "status.nominatedNodeName"),
    "events": _COMMON + ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                         "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                         "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    "secrets": _COMMON + ("type",),
    "nodes": _COMMON + ("spec.unschedulable",),
    "namespaces": _COMMON + ("status.phase",),
    "persistentvolumeclaims": _COMMON,
    "services": _COMMON,
    "configmaps": _COMMON,
}


def _field_value(resource: str, obj: dict, field: str) -> str:
    if field == "spec.hostNetwork":
        return "true" if _get(obj, field) else "false"
    if field == "spec.unschedulable":
        return "true" if _get(obj, field) else "false"
    if field == "source" and resource == "events":
        return _get(obj, "source.component") or ""
    if field == "status.podIPs":
        ips = _get(obj, "status.podIPs") or []
        return ips[0]["ip"] if ips else ""
    v = _get(obj, field)
    return "" if v is None else str(v)


def parse_field_selector(resource: str, selector: str | None) -> Callable[[dict], bool]:
    """A predicate for `a=b,c!=d`. Unsupported field → ApiError 400 like the apiserver."""
    if not selector:
        return lambda obj: True
    terms = []
    for part in [p for p in selector.split(",") if p.strip()]:
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        field, op, value = m.groups()
        if field not in SELECTABLE_FIELDS.get(resource, _COMMON):
            raise bad_request(f'field label not supported: {field}')
        terms.append((field, op, value))

    def pred(obj: dict) -> bool:
        for field, op, value in terms:
            actual = _field_value(resource, obj, field)
            if (actual == value) != (op != "!="):
                return False
        return True

    return pred
