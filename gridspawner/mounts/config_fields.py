"""Checks that only the ``c.GridSpawner.storage`` parsers (`config`, `config_s3`,
`config_ssh`) share: templates with ``{username}``, and `NamePattern`, the allow-list entry
for buckets and paths. The general ones (dicts, keys, names, numbers, text) are in
`gridspawner.vocabulary`."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from ..vocabulary import CONTROL, CatalogError, check_placeholders, require_text


def username_template(value: Any, key: str, *, default: str) -> str:
    """A string that may use the one placeholder ``{username}``; None → ``default``."""
    return check_placeholders(require_text(value, key, default, limit=512), key)


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


def name_patterns(value: Any, key: str) -> tuple[NamePattern, ...]:
    """A glob or 're:' regular expression, or a list of them."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise CatalogError(key, f"must be a list of glob patterns or 're:' regular expressions (got {value!r})")
    out = []
    for i, v in enumerate(value):
        if CONTROL.search(v):
            raise CatalogError(f"{key}[{i}]", "must not contain control characters")
        if v.startswith("re:"):
            try:
                re.compile(v[3:].replace("{username}", "x"))
            except re.error as e:
                raise CatalogError(f"{key}[{i}]", f"is not a valid regular expression: {e}") from None
        out.append(NamePattern(v))
    return tuple(out)
