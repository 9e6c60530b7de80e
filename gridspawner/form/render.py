"""Render the spawn form. (Placeholder until the form issue lands: see form/templates.)"""

from __future__ import annotations

from typing import Any, Mapping

from markupsafe import escape


def render_form(*, catalog, groups, capacity: Mapping, values: Mapping[str, Any] | None, errors: Mapping[str, str]) -> str:
    rows = [f"<p class='text-danger'>{escape(k)}: {escape(v)}</p>" for k, v in errors.items()]
    rows.append("<select name='backend'>" + "".join(f"<option value='{escape(b)}'>{escape(b)}</option>" for b in catalog.backends) + "</select>")
    return "\n".join(rows)
