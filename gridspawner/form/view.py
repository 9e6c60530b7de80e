"""The spawn form's view model: what the template reads, and the small text helpers.

Plain dataclasses and pure functions, no Jinja2: ``render.py`` fills them in, the template
only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..catalog_values import Catalog, Profile
from ..field_rules import BackendChoice, ListChoice
from ..fields import FIELDS, form_order
from ..vocabulary import plural

#: Fields the form shows as selects, in the order they appear (profiles and data mounts
#: have their own parts of the form).
FORM_FIELDS = tuple(f.name for f in form_order())

#: Longest submitted value echoed back into the form, in characters.
_MAX_ECHO = 200


@dataclass(slots=True)
class Option:
    value: str
    label: str
    selected: bool = False
    disabled: bool = False
    reason: str = ""
    data: tuple[tuple[str, str], ...] = ()  # rendered as data-<name>="<value>"

    @property
    def text(self) -> str:
        # the selected option's reason is shown under the field (a closed select cuts it off)
        return f"{self.label} — {self.reason}" if self.reason and not self.selected else self.label


@dataclass(slots=True)
class SelectField:
    name: str
    label: str
    options: list[Option]
    error: str | None = None
    help: str = ""
    note: str = ""  # a warning shown under the field (e.g. "does not fit right now")
    state: str = ""  # backend: "ok" | "busy" | "unknown" (colours the capacity dot)
    half: bool = False  # half the form's width (beside another half-width field)


@dataclass(slots=True)
class ProfileCard:
    key: str  # "" = Custom
    display_name: str
    description: str
    facts: list[str]
    runtime: str
    checked: bool


def value_key(value: Any) -> str:
    """The string a value has in the form (``2`` → "2", ``2.0`` → "2", ``0.5`` → "0.5").

    parse_form turns these strings back into the same numbers.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = str(value)
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        text = repr(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 1] + "…"


def duration_text(seconds: float) -> str:
    """3600 → "1 h", 5400 → "90 min", 172800 → "2 d"."""
    s = float(seconds)
    if s >= 86400 and s % 86400 == 0:
        return f"{s / 86400:g} d"
    if s >= 3600 and (s * 2) % 3600 == 0:
        return f"{s / 3600:g} h"
    if s >= 60 and s % 60 == 0:
        return f"{s / 60:g} min"
    return f"{s:g} s"


def limits_note(resource_limits: str) -> str:
    """What the CPU and memory fields say about a backend that does not enforce them (a
    backend's ``resource_limits``: all, some, none); nothing where it does."""
    if resource_limits == "none":
        return "Not enforced on this backend: your server may use more."
    if resource_limits == "some":
        return "Enforced only on some of this backend's hosts (those running containers)."
    return ""


def _gpu_text(gpus: Any, gb: Any) -> str:
    if not gpus:
        return "No GPU"
    size = f" ≥ {gb} GB" if gb else ""
    return f"{plural(gpus, 'GPU')}{size}"


def echo_invalid(options: list[Option], value: Any) -> None:
    """Show a submitted value that is not on offer (selected), so the user sees what was wrong."""
    if value is None:
        return
    key = value_key(value)
    if any(o.value == key for o in options):
        return
    for o in options:
        o.selected = False
    options.append(Option(key, f"{key} (not available)", selected=True, data=(("invalid", "1"),)))


def card_facts(catalog: Catalog, p: Profile) -> list[str]:
    """A profile card's short facts: where, which environment, what resources (in registry order)."""
    v = p.values
    backend = catalog.backends.get(v.get("backend")) if isinstance(v.get("backend"), str) else None
    facts = []
    for f in FIELDS:
        value = v.get(f.name)
        if f.name not in v or not f.preset:
            continue
        if f.widget == "backend":
            facts.append(catalog.backends[value].display_name)
        elif f.widget == "image":
            facts.append(catalog.images[value].display_name)
        elif f.widget == "gpu_count":
            facts.append(_gpu_text(value, v.get("gpu_memory", 0)))
        elif isinstance(f.rule, BackendChoice) and value and backend is not None:
            facts.append(f.rule.card_text.format(f.rule.offered_by(backend).get(value, value)))
        elif f.widget == "choice" and isinstance(f.rule, ListChoice) and value:
            facts.append((f.rule.fact or f.rule.label)(value))
    return facts
