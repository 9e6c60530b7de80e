"""Form data (tornado's dict of lists of strings) → user_options, before validation."""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import FIELDS


def _number(text: str) -> Any:
    """'2' → 2, '1.5' → 1.5, '' → None; anything else is returned as is for validation to reject."""
    text = text.strip()
    if text == "":
        return None
    if text.lstrip("-").isdigit() and text.isascii():
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    return value if value == value and abs(value) != float("inf") else text


def parse_form(formdata: Mapping[str, list]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, values in formdata.items():
        if key == "_xsrf" or not values:
            continue
        value = values[0]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if key in ("gpus", "gpu_memory", "cpu", "memory"):
            parsed = _number(value)
            if parsed is not None:
                options[key] = parsed
        elif key in ("profile", "backend", "image"):
            if value != "":
                options[key] = value
        elif key not in FIELDS:
            options[key] = value  # validation names unknown fields
    return options
