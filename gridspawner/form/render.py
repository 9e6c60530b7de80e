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
from ..catalog import Catalog, Policy, Profile
from .choices import _chosen, _Choice, _choices, _rendered, _shown
from .fit import _backend_options, _cap_state, _Fit, _gpu_options, _per_backend_options
from .mounts_view import EMPTY_MOUNT_ROWS, MountRow, MountsView, _is_mount_key, mounts_view
from .view import (
    FORM_FIELDS,
    Option,
    ProfileCard,
    SelectField,
    _echo_invalid,
    _facts,
    _plural,
    duration_text,
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

_LABELS = {
    "profile": "Profile",
    "backend": "Where to run",
    "host": "Host",
    "image": "Environment",
    "gpus": "GPUs",
    "gpu_memory": "Minimum memory per GPU",
    "gpu_type": "GPU type",
    "cpu": "CPUs",
    "memory": "Memory",
}


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
        ctx["top_errors"] = [(k, v) for k, v in ctx["top_errors"] if not _is_mount_key(k)]
    return _TEMPLATE.render(ctx)


def _context(catalog: Catalog, groups: list[str], capacity: Mapping, values: Any, errors: Any) -> dict:
    policy = catalog.policy_for(groups)
    profiles = catalog.profiles_for(groups)
    values = dict(values) if isinstance(values, Mapping) else {}
    errors = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, Mapping) else {}
    nothing = not policy.free_choice and not profiles

    chosen = _chosen(policy, profiles, values)
    choices = _choices(catalog, policy, profiles)
    shown = _shown(catalog, policy, chosen, choices, values)

    # ---- backends (what the policy allows, plus what profiles set)
    profile_backends = {p.values["backend"] for p in profiles if "backend" in p.values}
    backend_names = [b for b in catalog.backends if policy.allows_backend(b) or b in profile_backends]
    fit = _Fit(catalog, backend_names, capacity)
    rendered = _rendered(catalog, policy, choices, backend_names, nothing)
    sel_backend = value_key(shown.get("backend"))
    backend_opts = _backend_options(catalog, policy, backend_names, fit, sel_backend, shown.get("backend"))
    sel_cap = fit.caps.get(sel_backend)

    sel_image = value_key(shown.get("image"))
    image_opts = _image_options(catalog, policy, profiles, sel_image, shown.get("image"))

    # ---- GPUs and VRAM, disabled where they cannot fit
    gmax = max((c.max_gpus for c in choices.values()), default=0)
    gpu_opts, mem_opts, fit_note = _gpu_options(catalog, fit, sel_cap, shown, gmax)

    # ---- GPU type: every offered backend's types, each tagged with its backend; the script
    # shows the chosen backend's only, without it the backend's name says which is which
    type_opts = _per_backend_options(
        catalog, backend_names, sel_backend, shown.get("gpu_type"), "Any GPU", lambda b: b.gpu_types
    )

    # ---- host: like GPU types, every offered backend's hosts tagged with their backend
    host_opts = _per_backend_options(
        catalog, backend_names, sel_backend, shown.get("host"), "Any host (best fit)", lambda b: b.host_choices
    )

    # ---- CPU and memory
    cpu_opts = _default_or_choice(catalog.cpu_choices, shown.get("cpu"), lambda c: _plural(c, "CPU"))
    memory_opts = _default_or_choice(catalog.memory_choices, shown.get("memory"), lambda m: f"{m:g} GB")

    cards = _profile_cards(catalog, policy, profiles, chosen)

    # ---- errors: next to their field, or at the top
    field_names = set(rendered) | ({"profile"} if cards else set())
    field_errors = {k: v for k, v in errors.items() if k in field_names}
    top_errors = [(k, v) for k, v in errors.items() if k not in field_names]

    sel_b = catalog.backends.get(sel_backend) if isinstance(sel_backend, str) else None
    sel_i = catalog.images.get(sel_image) if isinstance(sel_image, str) else None
    unlimited = limits_note(sel_b.resource_limits) if sel_b else ""
    fields = {
        "backend": SelectField(
            "backend",
            _LABELS["backend"],
            backend_opts,
            field_errors.get("backend"),
            help=sel_b.description if sel_b and sel_backend in fit.caps else "",
            note=sel_cap.summary() if sel_cap is not None else "",
            state=_cap_state(sel_cap) if sel_cap is not None else "",
        ),
        "image": SelectField(
            "image", _LABELS["image"], image_opts, field_errors.get("image"), help=sel_i.description if sel_i else ""
        ),
        "gpus": SelectField("gpus", _LABELS["gpus"], gpu_opts, field_errors.get("gpus"), note=fit_note),
        "gpu_memory": SelectField("gpu_memory", _LABELS["gpu_memory"], mem_opts, field_errors.get("gpu_memory")),
        "host": SelectField(
            "host",
            _LABELS["host"],
            host_opts,
            field_errors.get("host"),
            help="A particular host, where the chosen backend lets you pick one; otherwise the best fit is chosen.",
        ),
        "gpu_type": SelectField(
            "gpu_type",
            _LABELS["gpu_type"],
            type_opts,
            field_errors.get("gpu_type"),
            help="A GPU model or a MIG slice, where the chosen backend offers a choice.",
        ),
        "cpu": SelectField("cpu", _LABELS["cpu"], cpu_opts, field_errors.get("cpu"), help=unlimited),
        "memory": SelectField("memory", _LABELS["memory"], memory_opts, field_errors.get("memory"), help=unlimited),
    }

    return {
        "nothing": nothing,
        "top_errors": top_errors,
        "labels": _LABELS,
        "cards": cards,
        "profile_error": field_errors.get("profile"),
        "fixed_inputs": [(k, " ".join(sorted(c.fixed))) for k, c in choices.items() if k and c.fixed],
        "fields": fields,
        "rendered": rendered,
        "fit_note": fit_note,
        "script": _script_data(catalog, backend_names, fit, choices, chosen),
    }


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
    _echo_invalid(opts, value)
    return opts


def _default_or_choice(choices: Iterable[Any], value: Any, label: Callable[[Any], str]) -> list[Option]:
    """"Default" (value "") then the catalog's choices (CPU, memory)."""
    opts = [Option("", "Default", selected=value in (None, "", 0))]
    key = value_key(value)
    for c in choices:
        opts.append(Option(value_key(c), label(c), selected=value_key(c) == key))
    if value not in (None, "", 0):
        _echo_invalid(opts, value)
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
                _facts(catalog, p),
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
    catalog: Catalog, backend_names: list[str], fit: _Fit, choices: dict[str, _Choice], chosen: Profile | None
) -> dict:
    """What the inline script needs (sent through ``tojson``)."""
    return {
        "classes": list(catalog.gpu_memory_classes),
        "backends": {name: fit.script_data(name) for name in backend_names},
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
