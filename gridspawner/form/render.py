"""Render the spawn form: a view model built in Python, one autoescaped Jinja2 template.

The HTML is the *inside* of JupyterHub's own ``<form>`` (JupyterHub adds the form tag, the
XSRF field and the "Start" button). It works without JavaScript; a small inline script
(``static/form.js``) only hides, fills, locks and disables choices as the user picks.

Everything user-controlled (submitted values, error messages) reaches the page through
autoescaped expressions; data for the script goes through ``tojson`` only. The template is
compiled once, at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ..backends.base import Capacity
from ..catalog import Catalog, Policy, Profile
from ..request import default_values

_HERE = Path(__file__).parent

#: Fields the form can show, in the order they appear (``mounts`` has its own UI, elsewhere).
FORM_FIELDS = ("backend", "host", "image", "gpus", "gpu_memory", "gpu_type", "cpu", "memory")

#: Longest submitted value echoed back into the form, in characters.
_MAX_ECHO = 200

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


# --------------------------------------------------------------------------- view model


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


@dataclass(slots=True)
class ProfileCard:
    key: str  # "" = Custom
    display_name: str
    description: str
    facts: list[str]
    runtime: str
    checked: bool


@dataclass(slots=True)
class _Choice:
    """What one profile choice (or Custom) means for the fields, also sent to the script."""

    fixed: frozenset[str]
    values: dict[str, Any] = field(default_factory=dict)
    max_gpus: int = 0


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


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}{'' if n == 1 else 's'}"


def _gpu_text(gpus: Any, gb: Any) -> str:
    if not gpus:
        return "No GPU"
    size = f" ≥ {gb} GB" if gb else ""
    return f"{_plural(gpus, 'GPU')}{size}"


def _limit_for(catalog: Catalog, policy: Policy, profile: Profile | None) -> int:
    """The most GPUs build_request accepts for this choice (mirrors request._check_gpus)."""
    if profile is not None and profile.max_gpus is not None:
        limit = profile.max_gpus
    else:
        limit = policy.max_gpus
        if profile is not None:
            limit = max(limit, int(profile.values.get("gpus", 0)))
    return min(limit, catalog.max_gpus)


def _fixed(profile: Profile) -> frozenset[str]:
    return frozenset(f for f in profile.values if f not in profile.changeable)


def _profile_start(catalog: Catalog, policy: Policy, profile: Profile, base: dict) -> dict:
    """The values a profile starts from (mirrors request._starting_values)."""
    values = dict(base)
    values.update(profile.values)
    if "backend" in profile.values and "image" not in profile.values:
        images = policy.images
        backends = policy.backends
        if backends is not None:
            backends = backends | {profile.values["backend"]}
        values["image"] = default_values(
            catalog, Policy(backends, images, policy.max_gpus, policy.free_choice)
        ).get("image")
    return values


class _Fit:
    """Capacity of the backends the user may pick, in a form cheap to ask many times."""

    __slots__ = ("classes", "tolerance", "caps", "best", "any_best")

    def __init__(self, catalog: Catalog, names: Iterable[str], capacity: Mapping[str, Capacity]):
        self.classes = catalog.gpu_memory_classes
        self.tolerance = catalog.gpu_memory_tolerance
        self.caps: dict[str, Capacity] = {}
        self.best: dict[str, list[int] | None] = {}  # None = unknown: never blocks
        any_best = [0] * len(self.classes)
        unknown_somewhere = False
        for name in names:
            cap = capacity.get(name) if capacity is not None else None
            if not isinstance(cap, Capacity):
                cap = Capacity(backend=name)
            self.caps[name] = cap
            if cap.known:
                best = [cap.largest_free_count(gb, self.tolerance) for gb in self.classes]
                self.best[name] = best
                any_best = [max(a, b) for a, b in zip(any_best, best)]
            else:
                self.best[name] = None
                unknown_somewhere = True
        self.any_best = None if unknown_somewhere else any_best

    def fits_anywhere(self, count: int, class_index: int) -> bool:
        return count == 0 or self.any_best is None or count <= self.any_best[class_index]

    def script_data(self, name: str) -> dict:
        cap = self.caps[name]
        known = self.best[name] is not None
        data = {"known": known, "total": cap.total_gpus, "best": self.best[name] or []}
        if known and not cap.total_gpus:
            # no usable GPU at all: the reason is the same for every count, so take
            # Capacity.fits' own words rather than repeating them in the script
            data["none"] = cap.fits(1, 0, self.tolerance)[1]
        return data


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

    # ---- which choice (a profile, or "" = Custom) is selected
    visible = {p.key: p for p in profiles}
    wanted = values.get("profile")
    if isinstance(wanted, str) and wanted in visible:
        chosen: Profile | None = visible[wanted]
    elif values and policy.free_choice:
        chosen = None  # earlier options without (a valid) profile: Custom
    else:
        chosen = profiles[0] if profiles else None

    choices: dict[str, _Choice] = {}
    if policy.free_choice:
        choices[""] = _Choice(frozenset(), {}, min(policy.max_gpus, catalog.max_gpus))
    for p in profiles:
        choices[p.key] = _Choice(_fixed(p), dict(p.values), _limit_for(catalog, policy, p))

    # ---- the values shown
    base = default_values(catalog, policy)
    shown = _profile_start(catalog, policy, chosen, base) if chosen else dict(base)
    fixed_now = choices[chosen.key].fixed if chosen else frozenset()
    for f in FORM_FIELDS:
        if f in values and f not in fixed_now:
            shown[f] = values[f]

    # ---- which fields appear
    if nothing:
        rendered: set[str] = set()
    elif policy.free_choice:
        rendered = set(FORM_FIELDS)
    else:
        rendered = {f for f in FORM_FIELDS if any(f not in c.fixed for c in choices.values())}
    if not catalog.cpu_choices:
        rendered.discard("cpu")
    if not catalog.memory_choices:
        rendered.discard("memory")

    # ---- backends (what the policy allows, plus what profiles set)
    profile_backends = {p.values["backend"] for p in profiles if "backend" in p.values}
    backend_names = [b for b in catalog.backends if policy.allows_backend(b) or b in profile_backends]
    fit = _Fit(catalog, backend_names, capacity)
    if not any(catalog.backends[b].gpu_types for b in backend_names):
        rendered.discard("gpu_type")  # no backend on offer has a GPU type choice
    if not any(catalog.backends[b].host_choices for b in backend_names):
        rendered.discard("host")  # every backend on offer places servers itself
    sel_backend = value_key(shown.get("backend"))
    backend_opts = []
    for name in backend_names:
        b = catalog.backends[name]
        cap = fit.caps[name]
        backend_opts.append(
            Option(
                name,
                b.display_name,
                selected=name == sel_backend,
                reason="",
                data=(
                    ("kind", b.kind),
                    ("summary", cap.summary()),
                    ("state", _cap_state(cap)),
                    ("description", b.description),
                    ("policy", "1" if policy.allows_backend(name) else "0"),
                ),
            )
        )
    _echo_invalid(backend_opts, shown.get("backend"))
    sel_cap = fit.caps.get(sel_backend)

    # ---- images
    profile_images = {p.values["image"] for p in profiles if "image" in p.values}
    sel_image = value_key(shown.get("image"))
    image_opts = []
    for key, img in catalog.images.items():
        if not (policy.allows_image(key) or key in profile_images):
            continue
        image_opts.append(
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
    _echo_invalid(image_opts, shown.get("image"))

    # ---- GPUs and VRAM, disabled where they cannot fit
    classes = catalog.gpu_memory_classes
    gpus_value = shown.get("gpus")
    sel_count = gpus_value if isinstance(gpus_value, int) and not isinstance(gpus_value, bool) else 0
    gb_value = shown.get("gpu_memory")
    sel_class = classes.index(gb_value) if gb_value in classes and not isinstance(gb_value, bool) else 0
    tol = catalog.gpu_memory_tolerance
    gmax = max((c.max_gpus for c in choices.values()), default=0)
    gpu_opts = []
    sel_gpus_key = value_key(gpus_value)
    fit_note = ""
    for n in range(gmax + 1):
        label = "None" if n == 0 else _plural(n, "GPU")
        opt = Option(str(n), label, selected=str(n) == sel_gpus_key, data=(("label", label),))
        if n and sel_cap is not None:
            ok, reason = sel_cap.fits(n, classes[sel_class], tol)
            if not ok:
                opt.reason = reason
                # Disabled only when no backend on offer fits it: without JavaScript the user
                # may still switch to a backend that does (the script disables per backend).
                opt.disabled = not opt.selected and not fit.fits_anywhere(n, sel_class)
                if opt.selected:
                    fit_note = reason
        gpu_opts.append(opt)
    _echo_invalid(gpu_opts, gpus_value)

    sel_gb_key = value_key(gb_value)
    mem_opts = []
    for i, gb in enumerate(classes):
        label = "Any" if gb == 0 else f"{gb} GB"
        opt = Option(str(gb), label, selected=str(gb) == sel_gb_key, data=(("label", label),))
        if sel_count and sel_cap is not None:
            ok, reason = sel_cap.fits(sel_count, gb, tol)
            if not ok:
                opt.reason = reason
                opt.disabled = not opt.selected and not fit.fits_anywhere(sel_count, i)
        mem_opts.append(opt)
    _echo_invalid(mem_opts, gb_value)

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
    cpu_opts = [Option("", "Default", selected=shown.get("cpu") in (None, "", 0))]
    cpu_key = value_key(shown.get("cpu"))
    for c in catalog.cpu_choices:
        cpu_opts.append(Option(value_key(c), _plural(c, "CPU"), selected=value_key(c) == cpu_key))
    if shown.get("cpu") not in (None, "", 0):
        _echo_invalid(cpu_opts, shown.get("cpu"))
    memory_opts = [Option("", "Default", selected=shown.get("memory") in (None, "", 0))]
    memory_key = value_key(shown.get("memory"))
    for m in catalog.memory_choices:
        memory_opts.append(Option(value_key(m), f"{m:g} GB", selected=value_key(m) == memory_key))
    if shown.get("memory") not in (None, "", 0):
        _echo_invalid(memory_opts, shown.get("memory"))

    # ---- profile cards
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

    # ---- errors: next to their field, or at the top
    field_names = set(rendered) | ({"profile"} if cards else set())
    field_errors = {k: v for k, v in errors.items() if k in field_names}
    top_errors = [(k, v) for k, v in errors.items() if k not in field_names]

    sel_b = catalog.backends.get(sel_backend) if isinstance(sel_backend, str) else None
    sel_i = catalog.images.get(sel_image) if isinstance(sel_image, str) else None
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
        "cpu": SelectField("cpu", _LABELS["cpu"], cpu_opts, field_errors.get("cpu")),
        "memory": SelectField("memory", _LABELS["memory"], memory_opts, field_errors.get("memory")),
    }

    script = {
        "classes": list(classes),
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
        "script": script,
    }


def _per_backend_options(
    catalog: Catalog, backend_names: list[str], sel_backend: str, value: Any, any_label: str, offered_by
) -> list[Option]:
    """A select whose choices belong to one backend each (``offered_by(BackendConfig)``:
    key → display text): ``any_label`` (value "") first, then every offered backend's
    choices tagged ``data-backend``; the script shows the chosen backend's only, without it
    the backend's name says which is which. ``value`` is selected on the chosen backend
    where it has it, else the first backend that has it, else echoed as not available."""
    key_ = value_key(value)
    opts = [Option("", any_label, selected=value in (None, ""), data=(("label", any_label),))]
    with_choices = [b for b in backend_names if offered_by(catalog.backends[b])]
    for name in with_choices:
        b = catalog.backends[name]
        for key, text in offered_by(b).items():
            label = str(text)
            opts.append(
                Option(
                    key,
                    f"{label} ({b.display_name})" if len(with_choices) > 1 or name != sel_backend else label,
                    data=(("backend", name), ("label", label)),
                )
            )
    if key_:
        matches = [o for o in opts[1:] if o.value == key_]
        best = next((o for o in matches if dict(o.data).get("backend") == sel_backend), matches[0] if matches else None)
        if best is not None:
            best.selected = True
        else:
            _echo_invalid(opts, value)
    return opts


def _cap_state(cap: Capacity) -> str:
    if not cap.known or (cap.hosts and not any(h.reachable for h in cap.hosts)):
        return "unknown"
    return "busy" if cap.total_gpus and not cap.free_gpus else "ok"


def _echo_invalid(options: list[Option], value: Any) -> None:
    """Show a submitted value that is not on offer (selected), so the user sees what was wrong."""
    if value is None:
        return
    key = value_key(value)
    if any(o.value == key for o in options):
        return
    for o in options:
        o.selected = False
    options.append(Option(key, f"{key} (not available)", selected=True, data=(("invalid", "1"),)))


def _facts(catalog: Catalog, p: Profile) -> list[str]:
    v = p.values
    facts = []
    if "backend" in v:
        facts.append(catalog.backends[v["backend"]].display_name)
    if "image" in v:
        facts.append(catalog.images[v["image"]].display_name)
    if "gpus" in v:
        facts.append(_gpu_text(v["gpus"], v.get("gpu_memory", 0)))
    if v.get("gpu_type") and v.get("backend") in catalog.backends:
        facts.append(str(catalog.backends[v["backend"]].gpu_types.get(v["gpu_type"], v["gpu_type"])))
    if v.get("host") and v.get("backend") in catalog.backends:
        facts.append(f"on {catalog.backends[v['backend']].host_choices.get(v['host'], v['host'])}")
    if v.get("cpu"):
        facts.append(_plural(v["cpu"], "CPU"))
    if v.get("memory"):
        facts.append(f"{v['memory']:g} GB memory")
    return facts


# --------------------------------------------------------------------------- data mounts

#: how many rows the mounts editor shows without JavaScript (unused rows are skipped)
EMPTY_MOUNT_ROWS = 3
_MOUNT_KEY = re.compile(r"mounts\[([0-9]+)\]\.?(.*)")
_TEXT_KEYS = ("bucket", "prefix", "path", "user", "target")


def _is_mount_key(key: str) -> bool:
    return key == "mounts" or key.startswith("mounts[")


@dataclass(slots=True)
class MountRow:
    """One row of the mounts editor. ``values`` never holds a secret."""

    index: int
    values: dict[str, str]
    read_only: bool
    type_opts: list[Option]
    endpoint_opts: list[Option]
    host_opts: list[Option]
    mode_opts: list[Option]
    credentials_opts: list[Option]
    auth_opts: list[Option]
    errors: dict[str, str]
    other_errors: list[tuple[str, str]]

    def name(self, key: str) -> str:
        return f"mounts-{self.index}-{key}"

    def id(self, key: str) -> str:
        return f"gs-mounts-{self.index}-{key}"


@dataclass(slots=True)
class MountsView:
    rows: list[MountRow]
    template: MountRow  # the row the script copies for "Add" (index __i__)
    limit: int
    errors: list[str]  # about the whole list ("mounts", "mounts[i]")
    ssh_public_key: str | None
    user_fixed: bool  # every SSH host fixes the login name: no user input
    has_s3: bool
    has_ssh: bool


def _opts(choices: list[tuple[str, str, tuple]], value: Any) -> list[Option]:
    key = value_key(value) if value not in (None, "") else None
    opts = [Option(v, label, selected=v == key, data=data) for v, label, data in choices]
    if key is not None:
        _echo_invalid(opts, value)
    elif opts:
        opts[0].selected = True
    return opts


def mounts_view(
    catalog: Catalog, groups: list[str], values: Any, errors: Any, username: str = "", ssh_public_key: str | None = None
) -> MountsView | None:
    """The mounts editor, or None when the user may not add any mount."""
    storage = getattr(catalog, "storage", None)
    if storage is None or not storage.enabled:
        return None
    endpoints = storage.s3_for(groups)
    hosts = storage.ssh_for(groups)
    limit = storage.max_mounts_for(groups)
    if not (endpoints or hosts) or limit <= 0:
        return None
    values = values if isinstance(values, Mapping) else {}
    errors = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, Mapping) else {}
    submitted = values.get("mounts")
    rows_in = [r for r in submitted if isinstance(r, Mapping)] if isinstance(submitted, list) else []

    types = ([("s3", "S3", ())] if endpoints else []) + ([("ssh", "SSH", ())] if hosts else [])
    ep_choices = [
        (n, storage.s3[n].display_name, (("credentials", " ".join(storage.s3[n].credentials)),
                                         ("prefix", storage.s3[n].prefix_for(username))))
        for n in endpoints
    ]
    host_choices = [
        (n, storage.ssh[n].display_name, (("auth", " ".join(storage.ssh[n].auth)),
                                           ("user", storage.ssh[n].login_for(username) or "")))
        for n in hosts
    ]
    creds = list(dict.fromkeys(c for n in endpoints for c in storage.s3[n].credentials))
    auths = list(dict.fromkeys(a for n in hosts for a in storage.ssh[n].auth))
    cred_labels = {"sts": "Temporary (hub)", "keys": "My access key"}
    auth_labels = {"key": "The hub's key", "password": "Password"}

    row_errors: dict[int, dict[str, str]] = {}
    list_errors: list[str] = []
    for k, v in errors.items():
        if k == "mounts":
            list_errors.append(v)
            continue
        m = _MOUNT_KEY.fullmatch(k)
        if m:
            row_errors.setdefault(int(m.group(1)), {})[m.group(2)] = v

    def row(i: int, raw: Mapping) -> MountRow:
        vals = {k: value_key(raw.get(k)) for k in _TEXT_KEYS if isinstance(raw.get(k), (str, int, float))}
        mine = row_errors.get(i, {})
        shown_fields = {"type", "endpoint", "host", "bucket", "prefix", "path", "user", "target", "mode",
                        "read_only", "credentials", "auth", "access_key", "secret_key", "password"}
        return MountRow(
            index=i,
            values=vals,
            read_only=raw.get("read_only") is True,
            type_opts=_opts(types, raw.get("type")),
            endpoint_opts=_opts(ep_choices, raw.get("endpoint")),
            host_opts=_opts(host_choices, raw.get("host")),
            mode_opts=_opts([("mount", "Mount", ()), ("copy", "Copy", ())], raw.get("mode")),
            credentials_opts=_opts([(c, cred_labels.get(c, c), ()) for c in creds], raw.get("credentials")),
            auth_opts=_opts([(a, auth_labels.get(a, a), ()) for a in auths], raw.get("auth")),
            errors={k: v for k, v in mine.items() if k in shown_fields},
            other_errors=[(k or "row", v) for k, v in mine.items() if k not in shown_fields],
        )

    rows = [row(i, r) for i, r in enumerate(rows_in)]
    if isinstance(submitted, list) and len(rows_in) != len(submitted):
        list_errors.append("some rows were not objects and are not shown")
    while len(rows) < min(max(EMPTY_MOUNT_ROWS, len(rows_in)), limit) or (not rows and limit):
        rows.append(row(len(rows), {}))
    for i in row_errors:
        if i >= len(rows):
            list_errors.extend(f"mount {i + 1}: {v}" for v in row_errors[i].values())
    template = row(0, {})
    template.index = "__i__"  # type: ignore[assignment]  # the script numbers new rows
    return MountsView(
        rows=rows,
        template=template,
        limit=limit,
        errors=list_errors,
        ssh_public_key=ssh_public_key if hosts else None,
        user_fixed=all(storage.ssh[n].user is not None for n in hosts),
        has_s3=bool(endpoints),
        has_ssh=bool(hosts),
    )
