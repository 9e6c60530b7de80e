"""Render the spawn form: a view model built in Python, one autoescaped Jinja2 template.

The HTML is the *inside* of JupyterHub's own ``<form>`` (JupyterHub adds the form tag, the
XSRF field and the "Start" button). It works without JavaScript; a small inline script
(``static/form.js``) only hides, fills, locks and disables choices as the user picks.

Everything user-controlled (submitted values, error messages) reaches the page through
autoescaped expressions; data for the script goes through ``tojson`` only. The template is
compiled once, at import.

This module holds the Jinja2 environment, ``render_form`` and the assembly of the template's
context. The view model and text helpers are in ``view.py``, what each profile choice means
in ``choices.py``, capacity fit in ``fit.py``, the data mounts editor in ``mounts_view.py``;
their public names are re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ..backends.base import Capacity
from ..catalog_values import Catalog, Policy, Profile
from ..field_rules import BackendChoice, ListChoice
from ..fields import FIELD, Field, form_order
from .choices import Choice, chosen_profile, profile_choices, rendered_fields, shown_values
from .fit import NO_FIT, Fit, backend_options, capacity_state, gpu_options, per_backend_options
from .mounts_view import EMPTY_MOUNT_ROWS, MountRow, MountsView, is_mount_key, mounts_view
from .view import (
    FORM_FIELDS,
    Option,
    ProfileCard,
    SelectField,
    card_facts,
    duration_text,
    echo_invalid,
    limits_note,
    value_key,
)

__all__ = [
    "EMPTY_MOUNT_ROWS",
    "FORM_FIELDS",
    "MountRow",
    "MountsView",
    "Option",
    "ProfileCard",
    "SelectField",
    "duration_text",
    "mounts_view",
    "render_form",
    "value_key",
]

_HERE = Path(__file__).parent

#: the widgets whose selects the capacity note ("Does not fit right now: …") follows
_GPU_WIDGETS = ("gpu_count", "gpu_memory")


def _make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_HERE / "templates")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    # Our own static files, inlined: the form must not depend on a static URL route.
    env.globals["form_css"] = Markup((_HERE / "static" / "form.css").read_text("utf-8"))
    env.globals["form_js"] = Markup((_HERE / "static" / "form.js").read_text("utf-8"))
    return env


_ENV = _make_env()
_TEMPLATE = _ENV.get_template("spawn_form.html.j2")


# --------------------------------------------------------------------------- render


def render_form(
    *,
    catalog: Catalog,
    groups: Iterable[str],
    capacity: Mapping[str, Capacity] | None,
    values: Mapping[str, Any] | None,
    errors: Mapping[str, str] | None,
    username: str = "",
    ssh_public_key: str | None = None,
) -> str:
    """The spawn form's inner HTML for a user in ``groups``.

    ``capacity`` maps backend name → the cached Capacity (missing: "checking capacity…").
    ``values`` are earlier user_options (possibly invalid) to show again; None or empty: the
    defaults. ``errors`` maps a field to a message, shown next to that field; messages for
    anything that is not a field on this form are listed at the top. Never raises on bad
    ``values``/``errors``. ``ssh_public_key``: the user's hub-managed key, shown in SSH
    mount rows. Secrets in ``values`` (mount keys, passwords) are never rendered.
    """
    ctx = _context(catalog, list(groups or ()), capacity or {}, values, errors)
    ctx["mounts"] = mounts_view(catalog, list(groups or ()), values, errors, username, ssh_public_key)
    if ctx["mounts"] is not None:
        ctx["top_errors"] = [(k, v) for k, v in ctx["top_errors"] if not is_mount_key(k)]
    return _TEMPLATE.render(ctx)


def _context(catalog: Catalog, groups: list[str], capacity: Mapping, values: Any, errors: Any) -> dict:
    policy = catalog.policy_for(groups)
    profiles = catalog.profiles_for(groups)
    values = dict(values) if isinstance(values, Mapping) else {}
    errors = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, Mapping) else {}
    nothing = not policy.free_choice and not profiles

    chosen = chosen_profile(policy, profiles, values)
    choices = profile_choices(catalog, policy, profiles)
    shown = shown_values(catalog, policy, chosen, choices, values)

    # backends: what the policy allows, plus what profiles set
    profile_backends = {p.values["backend"] for p in profiles if "backend" in p.values}
    backend_names = [b for b in catalog.backends if policy.allows_backend(b) or b in profile_backends]
    rendered = rendered_fields(catalog, policy, choices, backend_names, nothing)
    cards = _profile_cards(catalog, policy, profiles, chosen)

    # errors: next to their field, or at the top
    field_names = set(rendered) | ({"profile"} if cards else set())
    field_errors = {k: v for k, v in errors.items() if k in field_names}
    top_errors = [(k, v) for k, v in errors.items() if k not in field_names]

    gmax = max((c.max_gpus for c in choices.values()), default=0)
    selects = _Selects(catalog, policy, profiles, backend_names, Fit(catalog, backend_names, capacity), shown, gmax)
    fields = {f.name: selects.build(f, field_errors.get(f.name)) for f in form_order()}
    shown_selects = [fields[f.name] for f in form_order() if f.name in rendered]
    gpu_shown = [f.name for f in shown_selects if FIELD[f.name].widget in _GPU_WIDGETS]
    # the note follows the last GPU field shown (a GPU type after the count and memory too)
    gpu_group = [f.name for f in shown_selects
                 if FIELD[f.name].widget in _GPU_WIDGETS or getattr(FIELD[f.name].rule, "only_with_gpus", False)]

    return {
        "nothing": nothing,
        "top_errors": top_errors,
        "profile_label": FIELD["profile"].label,
        "mounts_label": FIELD["mounts"].label,
        "cards": cards,
        "profile_error": field_errors.get("profile"),
        "fixed_inputs": [(k, " ".join(sorted(c.fixed))) for k, c in choices.items() if k and c.fixed],
        "fields": fields,
        "selects": shown_selects,
        "rendered": rendered,
        "fit_note": selects.fit_note,
        "no_fit": NO_FIT,
        "note_after": gpu_group[-1] if gpu_shown else None,
        "script": _script_data(catalog, backend_names, selects, choices, chosen),
        "image_ref": _image_ref_input(catalog, policy, values, "image" in rendered),
    }


def _image_ref_input(catalog: Catalog, policy: Policy, values: Mapping, image_shown: bool) -> dict | None:
    """The "your own image" text input, where the user's policy allows image references
    (``image_refs``): the allowed patterns for its help, and a reference sent before."""
    if not policy.image_refs or not image_shown:
        return None
    value = values.get("image")
    return {"patterns": list(policy.image_refs),
            "value": value if isinstance(value, str) and value not in catalog.images else ""}


class _Selects:
    """Builds the form's selects, one per field, by the field's widget."""

    def __init__(self, catalog: Catalog, policy: Policy, profiles: list[Profile], backend_names: list[str],
                 fit: Fit, shown: Mapping[str, Any], gmax: int):
        self.catalog, self.policy, self.profiles, self.backend_names = catalog, policy, profiles, backend_names
        self.fit, self.shown, self.gmax = fit, shown, gmax
        self.sel_backend = value_key(shown.get("backend"))
        self.sel_cap = fit.caps.get(self.sel_backend)
        self.backend = catalog.backends.get(self.sel_backend)
        sel_gpus = shown.get("gpus")
        self.sel_gpus = sel_gpus if isinstance(sel_gpus, int) and not isinstance(sel_gpus, bool) else 0
        self.gpu_opts, self.mem_opts, self.fit_note = gpu_options(catalog, fit, self.sel_cap, shown, gmax)

    def build(self, f: Field, error: str | None) -> SelectField:
        value = self.shown.get(f.name)
        field = SelectField(f.name, f.label, [], error, help=f.help, half=f.half_width)
        if f.widget == "backend":
            field.options = backend_options(self.catalog, self.policy, self.backend_names, self.fit,
                                            self.sel_backend, value)
            field.help = self.backend.description if self.backend and self.sel_backend in self.fit.caps else ""
            if self.sel_cap is not None:
                field.note, field.state = self.sel_cap.summary(), capacity_state(self.sel_cap)
        elif f.widget == "image":
            field.options = _image_options(self.catalog, self.policy, self.profiles, value_key(value), value)
            image = self.catalog.images.get(value_key(value))
            field.help = image.description if image else ""
        elif f.widget == "gpu_count":
            field.options, field.note = self.gpu_opts, self.fit_note
        elif f.widget == "gpu_memory":
            field.options = self.mem_opts
        elif isinstance(f.rule, BackendChoice):
            # every offered backend's choices, each tagged with its backend: the script shows
            # the chosen backend's only; without it the backend's name says which is which
            field.options = per_backend_options(self.catalog, self.backend_names, self.sel_backend, value,
                                                f.rule.any_label, f.rule.offered_by)
        elif isinstance(f.rule, ListChoice):
            field.options = _default_or_choice(f.rule.offered(self.catalog), value, f.rule.label)
        if f.limits_note:
            field.help = limits_note(self.backend.resource_limits) if self.backend else ""
        return field

    def script_counts(self) -> list[int]:
        """The GPU counts the script may ask about: the options, and a submitted count beyond them."""
        counts = list(range(1, self.gmax + 1))
        if self.sel_gpus > self.gmax:
            counts.append(self.sel_gpus)
        return counts


# --------------------------------------------------------------------------- options


def _image_options(
    catalog: Catalog, policy: Policy, profiles: list[Profile], sel_image: str, value: Any
) -> list[Option]:
    """The images the policy allows, plus what profiles set."""
    profile_images = {p.values["image"] for p in profiles if "image" in p.values}
    opts = []
    for key, img in catalog.images.items():
        if not (policy.allows_image(key) or key in profile_images):
            continue
        opts.append(
            Option(
                key,
                img.display_name,
                selected=key == sel_image,
                data=(
                    ("kinds", " ".join(sorted(img.per_kind))),
                    ("description", img.description),
                    ("policy", "1" if policy.allows_image(key) else "0"),
                ),
            )
        )
    echo_invalid(opts, value)
    return opts


def _default_or_choice(choices: Iterable[Any], value: Any, label: Callable[[Any], str]) -> list[Option]:
    """"Default" (value "") then the catalog's choices (CPU, memory)."""
    opts = [Option("", "Default", selected=value in (None, "", 0))]
    key = value_key(value)
    for c in choices:
        opts.append(Option(value_key(c), label(c), selected=value_key(c) == key))
    if value not in (None, "", 0):
        echo_invalid(opts, value)
    return opts


def _profile_cards(
    catalog: Catalog, policy: Policy, profiles: list[Profile], chosen: Profile | None
) -> list[ProfileCard]:
    """One card per visible profile, then Custom where the policy allows free choice."""
    cards = []
    for p in profiles:
        cards.append(
            ProfileCard(
                p.key,
                p.display_name,
                p.description,
                card_facts(catalog, p),
                duration_text(p.max_runtime) if p.max_runtime else "",
                checked=chosen is not None and chosen.key == p.key,
            )
        )
    if profiles and policy.free_choice:
        cards.append(
            ProfileCard(
                "",
                "Custom",
                "Choose where to run, the environment and the resources below.",
                [],
                duration_text(catalog.max_runtime) if catalog.max_runtime else "",
                checked=chosen is None,
            )
        )
    return cards


def _script_data(
    catalog: Catalog, backend_names: list[str], selects: _Selects, choices: dict[str, Choice], chosen: Profile | None
) -> dict:
    """What the inline script needs (sent through ``tojson``): the selects it drives (from
    the field registry), why GPU choices do not fit each backend (`Capacity.fits`' words),
    and what each profile choice fixes and sets."""
    counts = selects.script_counts()
    return {
        "fields": [_script_field(f) for f in form_order()],
        "noFit": NO_FIT,
        "classes": list(catalog.gpu_memory_classes),
        "backends": {name: selects.fit.script_data(name, counts) for name in backend_names},
        "choices": {
            key: {
                "fixed": sorted(c.fixed),
                "values": {k: value_key(v) for k, v in c.values.items()},
                "maxGpus": c.max_gpus,
            }
            for key, c in choices.items()
        },
        "initial": chosen.key if chosen else "",
    }


def _script_field(f: Field) -> dict:
    data: dict[str, Any] = {"name": f.name, "widget": f.widget}
    if isinstance(f.rule, BackendChoice):
        data["perBackend"] = True
    if getattr(f.rule, "only_with_gpus", False):
        data["onlyWithGpus"] = True
    if f.limits_note:
        data["limitsNote"] = True
    return data
