"""The shared vocabulary every part of gridspawner may import: the error types, the patterns
names and values must match, and the small validators of admin settings.

It imports nothing from gridspawner, so it can never be part of an import cycle: a module
that needs `CatalogError` or the name pattern imports it from here, never from the module
that happens to use it most (tests/unit/test_import_graph.py keeps the package free of
cycles).

Validators take a value and the exact key it came from (``c.GridSpawner.storage['s3']
['campus'].url``), return the value as it is used, and raise `CatalogError` naming that key.
"""

from __future__ import annotations

import hashlib
import math
import re
import string
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping

# --------------------------------------------------------------------------- errors


class CatalogError(ValueError):
    """A bad admin setting. ``key`` names it the way it is written in jupyterhub_config.py."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class CatalogErrors(CatalogError):
    """Several bad settings, found in one pass: ``errors`` holds one `CatalogError` per key
    (in config order). ``key``/``message`` are the first one's, so a caller that handles a
    single CatalogError still names a real key; ``str()`` lists them all, one a line."""

    def __init__(self, errors: Iterable[CatalogError]):
        self.errors = tuple(errors)
        self.key, self.message = self.errors[0].key, self.errors[0].message
        lines = "\n".join(f"  {e}" for e in self.errors)
        ValueError.__init__(self, f"{len(self.errors)} settings are wrong:\n{lines}")


class Problems:
    """Collects CatalogErrors so that one pass over the config reports every bad key."""

    def __init__(self) -> None:
        self.errors: list[CatalogError] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run the block; a CatalogError it raises is recorded instead of propagated."""
        try:
            yield
        except CatalogErrors as e:
            self.errors.extend(e.errors)
        except CatalogError as e:
            self.errors.append(e)

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise CatalogErrors(self.errors)


class OptionsError(ValueError):
    """Invalid user options. ``errors`` maps a field name to a user-facing message."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


#: characters of a bad value quoted back in a message
MAX_SHOWN = 40


def shown(value: Any) -> str:
    """A bad value, quoted safely and briefly for an error message."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # ints over 4300 digits, absurdly nested lists
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def plural(n: float, word: str) -> str:
    """``plural(1, "GPU")`` → "1 GPU", ``plural(2.5, "CPU")`` → "2.5 CPUs"."""
    return f"{n:g} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------- patterns

#: a name the admin gives (backends, images, profiles, storage endpoints and hosts, SSH
#: hosts, GPU types) or a file name made from one: 1-63 characters, no leading punctuation
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
NAME_RULE = "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
#: a DNS host name
HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
#: a POSIX login name, as useradd accepts it by default
LOGIN = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
#: a user name that is a safe file name as it is (else `user_dir_name` makes one)
SAFE_USER = re.compile(r"[a-z0-9_][a-z0-9._-]{0,63}")
#: a data mount's folder name under the data directory
MOUNT_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: an http(s) endpoint (S3, STS): host (name, IPv4 or [IPv6]) with an optional port, and a
#: path of safe characters — nothing a shell, an rclone config line or a FUSE option reads
HTTP_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/-]*)?")
#: an S3 region ("us-east-1")
REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: S3 bucket naming rules (lower case, no "..", not an IP address); the length (3-63) apart
BUCKET = re.compile(r"(?!\d+\.\d+\.\d+\.\d+$)(?!xn--)[a-z0-9](?:[a-z0-9-]|\.(?!\.))*[a-z0-9]")
BUCKET_LENGTH = (3, 63)
#: a container image reference a user may type instead of an image key (a custom image):
#: registry/path[:tag][@digest], starting with a letter or digit — no whitespace, no
#: leading '-' (never an option to a runtime), nothing a shell reads
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
#: an admin's pattern of allowed image references (``image_refs``): fnmatch syntax, where
#: ``*`` also matches '/' (``registry.example.edu/*``), ``?`` one character
IMAGE_REF_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@*?-]{0,254}")
#: a control character (no setting that is one line of text may hold one)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: "90", "90s", "15m", "8h", "2d"
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


# --------------------------------------------------------------------------- validators


def subkey(key: str, name: Any) -> str:
    """The key of entry ``name`` inside ``key``: ``c.GridSpawner.profiles['gpu']``."""
    return f"{key}[{name!r}]"


def frozen(mapping: Mapping) -> Mapping:
    """A read-only copy."""
    return MappingProxyType(dict(mapping))


def require_dict(value: Any, key: str) -> dict:
    if not isinstance(value, Mapping):
        raise CatalogError(key, f"must be a dict (got {type(value).__name__})")
    return dict(value)


def check_keys(raw: Mapping, allowed: Iterable[str], key: str) -> None:
    """Every key of ``raw`` is one of ``allowed``; else the first unknown one is named."""
    allowed = set(allowed)
    unknown = sorted((k for k in raw if k not in allowed), key=str)
    if unknown:
        raise CatalogError(subkey(key, unknown[0]), f"unknown setting; expected one of: {', '.join(sorted(allowed))}")


def parse_given(raw: Mapping, key: str, parsers: Mapping[str, Callable[[Any, str], Any]]) -> dict[str, Any]:
    """Each setting of ``parsers`` that ``raw`` has, through its parser with its own key (in
    the order of ``parsers``); the ones left out keep their defaults."""
    return {name: parse(raw[name], subkey(key, name)) for name, parse in parsers.items() if name in raw}


def check_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise CatalogError(key, f"names must be {NAME_RULE} (got {value!r})")
    return value


def require_int(value: Any, key: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        rng = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise CatalogError(key, f"must be an integer {rng} (got {value!r})")
    return value


def require_number(value: Any, key: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum or value != value:
        raise CatalogError(key, f"must be a number >= {minimum:g} (got {value!r})")
    return float(value)


def require_text(value: Any, key: str, default: str = "", limit: int = 200) -> str:
    """One line of text (no control characters) of at most ``limit`` characters; None → ``default``."""
    if value is None:
        return default
    if not isinstance(value, str) or CONTROL.search(value) or len(value) > limit:
        raise CatalogError(key, f"must be a string of at most {limit} characters without control characters")
    return value


def choice_list(value: Any, allowed: tuple[str, ...], key: str) -> tuple[str, ...]:
    """A non-empty list of words from ``allowed`` (a single word is a list of one), without repeats."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise CatalogError(key, f"must be a non-empty list of: {', '.join(allowed)} (got {value!r})")
    for v in value:
        if v not in allowed:
            raise CatalogError(key, f"unknown choice {v!r}; expected any of: {', '.join(allowed)}")
    return tuple(dict.fromkeys(value))


def check_placeholders(value: str, key: str, names: tuple[str, ...] = ("username",)) -> str:
    """``value`` uses no ``{placeholder}`` but ``names`` (no format spec, no conversion)."""
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as e:
        raise CatalogError(key, f"is not a valid template: {e}") from None
    for _, name, spec, conversion in parts:
        if name is not None and (name not in names or spec or conversion):
            placeholders = ", ".join("{" + n + "}" for n in names)
            raise CatalogError(key, f"may only use the placeholder{'s' if len(names) > 1 else ''} "
                                    f"{placeholders} (found {{{name}}})")
    return value


def parse_duration(value: Any, key: str) -> float | None:
    """``None``/0 → no limit; a number of seconds; or "90m", "8h", "2d"."""
    if value is None or value == 0 or value == "":
        return None
    if isinstance(value, bool):
        raise CatalogError(key, "must be a duration such as 3600, '90m', '8h' or '2d'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := DURATION.fullmatch(value.strip())):
        seconds = float(m.group(1)) * DURATION_UNITS[m.group(2)]
    else:
        raise CatalogError(key, f"must be a duration such as 3600, '90m', '8h' or '2d' (got {value!r})")
    if not (math.isfinite(seconds) and seconds > 0):
        raise CatalogError(key, f"must be positive and finite (got {value!r})")
    return seconds


def user_dir_name(user: str) -> str:
    """A file name for ``user``: the name itself when it is already safe, else a readable
    part plus a hash, so two different users never share a directory."""
    if SAFE_USER.fullmatch(user) and user not in (".", ".."):
        return user
    readable = re.sub(r"[^a-z0-9._-]+", "-", user.lower()).strip("-.")[:30]
    digest = hashlib.sha256(user.encode()).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest
