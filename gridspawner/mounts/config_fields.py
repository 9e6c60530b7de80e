"""Field checks shared by the ``c.GridSpawner.storage`` parsers (`config`, `config_s3`,
`config_ssh`, `config_access`): each takes a value and the exact key it came from, returns
the value as it is used, and raises `CatalogError` naming that key. Also `NamePattern`, the
allow-list entry for buckets and paths."""

from __future__ import annotations

import fnmatch
import re
import string
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..catalog import CatalogError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _k(key: str, name: Any) -> str:
    return f"{key}[{name!r}]"


def _dict(value: Any, key: str) -> dict:
    if not isinstance(value, Mapping):
        raise CatalogError(key, f"must be a dict (got {type(value).__name__})")
    return dict(value)


def _keys(raw: Mapping, allowed: Iterable[str], key: str) -> None:
    unknown = sorted((k for k in raw if k not in set(allowed)), key=str)
    if unknown:
        raise CatalogError(_k(key, unknown[0]), f"unknown setting; expected one of: {', '.join(sorted(allowed))}")


def _name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise CatalogError(key, f"names must be 1-63 letters, digits, '.', '_' or '-' (got {value!r})")
    return value


def _text(value: Any, key: str, default: str = "", limit: int = 200) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or _CONTROL.search(value) or len(value) > limit:
        raise CatalogError(key, f"must be a string of at most {limit} characters without control characters")
    return value


def _int(value: Any, key: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        rng = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise CatalogError(key, f"must be an integer {rng} (got {value!r})")
    return value


def _number(value: Any, key: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum or value != value:
        raise CatalogError(key, f"must be a number >= {minimum:g} (got {value!r})")
    return float(value)


def _choices(value: Any, allowed: tuple[str, ...], key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise CatalogError(key, f"must be a non-empty list of: {', '.join(allowed)} (got {value!r})")
    for v in value:
        if v not in allowed:
            raise CatalogError(key, f"unknown choice {v!r}; expected any of: {', '.join(allowed)}")
    return tuple(dict.fromkeys(value))


def _template(value: Any, key: str, *, default: str) -> str:
    """A string that may use the one placeholder ``{username}``."""
    value = _text(value, key, default, limit=512)
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as e:
        raise CatalogError(key, f"is not a valid template: {e}") from None
    for _, name, spec, conversion in parts:
        if name is not None and (name != "username" or spec or conversion):
            raise CatalogError(key, f"may only use the placeholder {{username}} (found {{{name}}})")
    return value


# --------------------------------------------------------------------------- patterns


@dataclass(frozen=True)
class NamePattern:
    """An allow-list entry: a glob (``fnmatch``: ``*`` matches any characters, '/' included)
    or, written ``"re:…"``, a regular expression. Always matched against the WHOLE value.
    ``{username}`` is replaced by the (escaped) user name before matching."""

    source: str

    def matches(self, value: str, username: str = "") -> bool:
        if self.source.startswith("re:"):
            pattern = self.source[3:].replace("{username}", re.escape(username))
        else:
            escaped = re.sub(r"([*?\[\]])", r"[\1]", username)  # the name matches itself only
            pattern = fnmatch.translate(self.source.replace("{username}", escaped))
        return re.fullmatch(pattern, value, flags=re.DOTALL) is not None


def _patterns(value: Any, key: str) -> tuple[NamePattern, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise CatalogError(key, f"must be a list of glob patterns or 're:' regular expressions (got {value!r})")
    out = []
    for i, v in enumerate(value):
        if _CONTROL.search(v):
            raise CatalogError(f"{key}[{i}]", "must not contain control characters")
        if v.startswith("re:"):
            try:
                re.compile(v[3:].replace("{username}", "x"))
            except re.error as e:
                raise CatalogError(f"{key}[{i}]", f"is not a valid regular expression: {e}") from None
        out.append(NamePattern(v))
    return tuple(out)
