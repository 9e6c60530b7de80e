"""Form data (tornado's dict of lists of strings) → user_options, before validation.

Parsing never judges: it turns numbers into numbers and leaves anything else as the user
sent it, so `request.build_request` can reject it with a message next to the right field.
It never raises.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..fields import FIELDS, OPTION_NAMES, PRESET_NAMES

#: Fields whose form value is a number.
NUMBER_FIELDS = tuple(f.name for f in FIELDS if f.form_text == "number")
#: Fields whose form value is a name (empty: left out, the default applies).
NAME_FIELDS = tuple(f.name for f in FIELDS if f.form_text == "name")
#: Fields whose empty value is a choice of its own, kept as "" ("Any GPU" / "Any host": not
#: the default's or a profile's type or host, which leaving the key out would give).
EMPTY_IS_A_CHOICE = tuple(f.name for f in FIELDS if f.form_text == "choice")
#: Hidden inputs the form adds, one per profile: ``_fixed.<profile>`` = "backend image ...",
#: the fields that profile sets. Without JavaScript the visible fields are still submitted;
#: these say which of them to leave out, so the profile's own values apply.
FIXED_PREFIX = "_fixed."
_MAX_NUMBER_CHARS = 40
#: the "your own image" text input (where the policy allows image references): when filled
#: in, its text is the ``image`` option instead of the image select's key
IMAGE_REF_INPUT = "image_ref"
#: one data mount row's input: ``mounts-<row>-<key>`` (see `_mount_rows`)
MOUNT_FIELD = re.compile(r"mounts-([0-9]{1,3})-([a-z_]{1,20})")
#: a row with none of these filled in is an unused row and is skipped
_MOUNT_TYPED = ("bucket", "prefix", "path", "target", "user", "access_key", "secret_key", "password")
#: the inputs of the other mount type are in every row of the form: they are dropped
_MOUNT_ONLY = {
    "s3": ("endpoint", "bucket", "prefix", "credentials", "access_key", "secret_key"),
    "ssh": ("host", "path", "user", "auth", "password"),
}


def _number(text: str) -> Any:
    """'2' → 2, '1.5' → 1.5, '' → None; anything else is returned as is for validation to reject."""
    text = text.strip()
    if text == "":
        return None
    if not text.isascii() or len(text) > _MAX_NUMBER_CHARS:
        return text
    try:
        if text.lstrip("+-").isdigit():
            return int(text)
        value = float(text)
    except ValueError:
        return text
    return value if value == value and abs(value) != float("inf") else text


def _first(values: Any) -> str | None:
    if isinstance(values, (str, bytes)):
        values = [values]
    try:
        value = values[0] if values else None
    except (TypeError, KeyError, IndexError):
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def parse_form(formdata: Mapping[str, list]) -> dict[str, Any]:
    """user_options from the submitted spawn form.

    Numbers ("2" → 2, "0.5" → 0.5) for gpus/gpu_memory/cpu/memory; empty fields are left
    out (the defaults apply) except ``gpu_type`` and ``host``, whose "" means "any GPU" /
    "any host (best fit)" and is kept (the request then ignores a default's or profile's
    type or host); ``_xsrf`` is ignored; fields the chosen profile sets are left
    out; unknown keys are kept so validation names them. Data mount rows
    (``mounts-<row>-<key>``) become the ``mounts`` list, in row order, skipping unused rows.
    """
    options: dict[str, Any] = {}
    fixed: dict[str, list[str]] = {}
    try:
        items = list(formdata.items())
    except (AttributeError, TypeError):
        return options
    for key, values in items:
        if not isinstance(key, str) or key == "_xsrf":
            continue
        value = _first(values)
        if value is None:
            continue
        if key == IMAGE_REF_INPUT:
            continue  # below: it replaces the image select when filled in
        if key.startswith(FIXED_PREFIX):
            fixed[key[len(FIXED_PREFIX) :]] = value.split()
        elif key in NUMBER_FIELDS:
            parsed = _number(value)
            if parsed is not None:
                options[key] = parsed
        elif key in NAME_FIELDS:
            if value != "":
                options[key] = value
        elif key in EMPTY_IS_A_CHOICE:
            options[key] = value
        elif MOUNT_FIELD.fullmatch(key):
            continue  # collected below
        elif key not in OPTION_NAMES:
            options[key] = value  # validation names unknown fields
    rows: dict[int, dict[str, str]] = {}
    for key, values in items:
        m = MOUNT_FIELD.fullmatch(key) if isinstance(key, str) else None
        if m is None:
            continue
        value = _first(values)
        if value is not None:
            rows.setdefault(int(m.group(1)), {})[m.group(2)] = value
    ref = _first(formdata.get(IMAGE_REF_INPUT)) if hasattr(formdata, "get") else None
    if ref is not None and ref.strip():
        options["image"] = ref.strip()  # an image reference (custom image): checked as `image`
    mounts = _mount_rows(rows)
    if mounts:
        options["mounts"] = mounts
    profile = options.get("profile")
    if isinstance(profile, str) and profile in fixed:
        for f in fixed[profile]:
            if f in PRESET_NAMES:
                options.pop(f, None)
    return options


def _mount_rows(rows: Mapping[int, Mapping[str, str]]) -> list[dict[str, Any]]:
    """Form rows → ``mounts`` objects: empty inputs and the other type's inputs left out,
    the read-only checkbox as a bool, rows where nothing was typed skipped."""
    out = []
    for _, row in sorted(rows.items()):
        if not any(row.get(k, "").strip() for k in _MOUNT_TYPED):
            continue
        mtype = row.get("type", "")
        other = [k for t, keys in _MOUNT_ONLY.items() if t != mtype for k in keys]
        mount: dict[str, Any] = {}
        for k, v in row.items():
            if k == "read_only" or k in other or v == "":
                continue
            mount[k] = v if k in ("access_key", "secret_key", "password") else v.strip()
        mount["read_only"] = row.get("read_only", "") not in ("", "0", "false", "off")
        out.append(mount)
    return out
