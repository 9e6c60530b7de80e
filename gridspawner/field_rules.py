"""The rules the field registry (`gridspawner.fields`) names: how a kind of choice starts
(the default), is checked in a user's request (`check`), is checked in an admin's preset
(`check_preset`: a profile's values, ``default_options``), and what JSON a preset value is
(`preset_schema`, for the Helm chart's schema). Pure: no I/O.

A request is checked field by field in the registry's order; each rule reads what the
fields before it decided (the backend before the image, the GPU count before the GPU type)
from the `Checking` it is given, and writes its messages there. Messages are user-facing
and name the field they are stored under.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .catalog_values import BackendConfig, Catalog, Policy, Profile, gpu_type_memory_problem
from .mounts.specs import parse_mounts
from .vocabulary import IMAGE_REF, NAME, CatalogError, OptionsError, require_int, shown


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Checking:
    """One request being checked: what the user sent (``options``), the values to check (the
    defaults and the profile's, overlaid with ``options``), what the fields checked so far
    decided (``checked``) and the messages (``errors``: field → message)."""

    def __init__(self, catalog: Catalog, policy: Policy, profile: Profile | None, options: Mapping,
                 values: dict, groups: list[str], username: str, errors: dict[str, str]):
        self.catalog, self.policy, self.profile = catalog, policy, profile
        self.options, self.values, self.groups, self.username = options, values, groups, username
        self.errors = errors
        self.checked: dict[str, Any] = {}

    @property
    def allowed(self) -> Policy:
        """What the user may pick: the policy, plus the chosen profile's own values."""
        return self.policy.with_profile(self.profile) if self.profile is not None else self.policy

    @property
    def backend(self) -> BackendConfig | None:
        """The chosen backend, once checked and valid."""
        name = self.checked.get("backend")
        return self.catalog.backends[name] if name else None

    def fixed(self, name: str) -> bool:
        """Whether the chosen profile sets ``name`` and the user may not change it."""
        p = self.profile
        return p is not None and name in p.values and name not in p.changeable


class Preset:
    """An admin preset being checked (a profile's ``values`` or ``default_options``), inside
    `gridspawner.catalog.build_catalog`: ``cat`` is the catalog so far (``backends`` and
    ``images`` are `gridspawner.catalog_presets.Known` sections; a list that failed is None),
    ``key`` the preset's config key, ``max_gpus`` the preset's own GPU cap (None: the hub's)."""

    def __init__(self, values: Mapping, key: str, cat: Mapping, max_gpus: int | None):
        self.values, self.key, self.cat, self.max_gpus = values, key, cat, max_gpus

    def key_of(self, name: str) -> str:
        return f"{self.key}[{name!r}]"

    @property
    def backend(self) -> Any:
        return self.values.get("backend")

    def backend_config(self) -> BackendConfig | None:
        """The preset's backend, when it names one whose own entry parsed."""
        known = self.cat["backends"]
        return known.parsed[self.backend] if known.usable(self.backend) else None


_NAME_SCHEMA = {"type": "string", "pattern": f"^{NAME.pattern}$"}


class Rule:
    """A kind of choice. The defaults suit a value the user picks freely: starts as the
    admin's default, taken as sent, no preset check beyond the JSON type."""

    def default(self, name: str, catalog: Catalog, policy: Policy, start: Mapping[str, Any]) -> Any:
        """The value a form starts from / a REST request falls back to; ``start`` holds the
        defaults of the fields before this one."""
        return catalog.defaults.get(name)

    def value_to_check(self, name: str, c: Checking) -> Any:
        return c.values.get(name)

    def check(self, name: str, value: Any, c: Checking) -> Any:
        return value

    def check_preset(self, name: str, value: Any, p: Preset) -> None:
        """Raise CatalogError (naming ``p.key_of(name)``) when a preset's value could fail at spawn time."""

    def preset_schema(self) -> dict:
        return {}


@dataclass(frozen=True)
class BackendName(Rule):
    """The name of a configured backend the user may use."""

    def default(self, name, catalog, policy, start):
        allowed = [b for b in catalog.backends if policy.allows_backend(b)]
        backend = catalog.defaults.get(name)
        return backend if backend in allowed else (allowed[0] if allowed else None)

    def check(self, name, value, c):
        if not isinstance(value, str):
            c.errors[name] = f"must be a backend name (got {shown(value)})"
        elif value not in c.catalog.backends:
            c.errors[name] = f"unknown backend {shown(value)}"
        elif not c.allowed.allows_backend(value):
            c.errors[name] = f"backend {value!r} is not available to you"
        else:
            return value
        return None

    def check_preset(self, name, value, p):
        if not isinstance(value, str) or not p.cat["backends"].knows(value):
            raise CatalogError(p.key_of(name), f"unknown backend {value!r}")

    def preset_schema(self):
        return dict(_NAME_SCHEMA)


@dataclass(frozen=True)
class ImageName(Rule):
    """The key of a configured image the user may use, with something to run on the chosen backend."""

    def default(self, name, catalog, policy, start):
        backend = start.get("backend")
        kind = catalog.backends[backend].kind if backend else None
        images = [i for i, img in catalog.images.items() if policy.allows_image(i) and (kind is None or img.runs_on(kind))]
        image = catalog.defaults.get(name)
        return image if image in images else (images[0] if images else None)

    def check(self, name, value, c):
        kind = c.backend.kind if c.backend is not None else None
        if not isinstance(value, str):
            c.errors[name] = f"must be an image name (got {shown(value)})"
        elif value not in c.catalog.images and c.allowed.image_refs:
            return _image_ref(name, value, c)
        elif value not in c.catalog.images:
            c.errors[name] = f"unknown image {shown(value)}; choose one from the list"
        elif not c.allowed.allows_image(value):
            c.errors[name] = f"image {value!r} is not available to you"
        elif kind is not None and not c.catalog.images[value].runs_on(kind):
            c.errors[name] = f"image {value!r} cannot run on this backend"
        else:
            return value
        return None

    def check_preset(self, name, value, p):
        images = p.cat["images"]
        if not isinstance(value, str) or not images.knows(value):
            raise CatalogError(p.key_of(name), f"unknown image {value!r}")
        backend = p.backend_config()
        if backend is not None and images.usable(value) and not images.parsed[value].runs_on(backend.kind):
            raise CatalogError(p.key_of(name), f"image {value!r} has nothing to run on backend {p.backend!r}")

    def preset_schema(self):
        return dict(_NAME_SCHEMA)


def _image_ref(name: str, value: str, c: Checking) -> str | None:
    """A user's image reference instead of an image key (a custom image): a strict
    pattern, one of the policy's ``image_refs``, and a backend that runs containers."""
    allowed = ", ".join(c.allowed.image_refs)
    if not IMAGE_REF.fullmatch(value):
        c.errors[name] = (f"{shown(value)} is neither an image from the list nor a valid image reference "
                          "(letters, digits, '.', '_', '-', '/', ':', '@'; starting with a letter or digit)")
    elif not c.allowed.allows_image_ref(value):
        c.errors[name] = f"image reference {value!r} is not allowed for you; allowed: {allowed}"
    elif c.backend is not None and c.backend.image_ref_problem:
        c.errors[name] = f"backend {c.backend.name!r} cannot run your own image: {c.backend.image_ref_problem}"
    else:
        return value
    return None


@dataclass(frozen=True)
class GpuCount(Rule):
    """A whole number of GPUs, at most what the user's policy or profile allows."""

    def default(self, name, catalog, policy, start):
        return min(catalog.defaults.get(name, 0), policy.max_gpus)

    def check(self, name, value, c):
        if not is_int(value):
            c.errors[name] = f"must be a whole number (got {shown(value)})"
            return 0
        if value < 0:
            c.errors[name] = "must not be negative"
            return 0
        limit = c.catalog.gpu_limit(c.policy, c.profile)
        if value > limit:
            c.errors[name] = f"at most {limit} GPU{'s' if limit != 1 else ''} allowed for you"
            return 0
        return value

    def check_preset(self, name, value, p):
        limit = p.cat["max_gpus"] if p.max_gpus is None else p.max_gpus
        if require_int(value, p.key_of(name)) > limit:
            raise CatalogError(p.key_of(name), f"is above the maximum of {limit}")

    def preset_schema(self):
        return {"type": "integer", "minimum": 0}


@dataclass(frozen=True)
class ListChoice(Rule):
    """One of a list of numbers: the catalog's list named ``source`` (``cpu_choices``), or
    the fixed ``values``. ``optional``: None (or 0) means no choice — the backend's default
    applies — and a hub that offers no list refuses any value; otherwise the value must be
    on the list (which then holds the default, 0). ``only_with_gpus``: without GPUs the
    value is checked, then dropped (0). ``label``: an option's text in the form; ``fact``:
    the text on a profile card (default: the label)."""

    source: str | None = None
    values: tuple = ()
    integer: bool = True
    optional: bool = True
    only_with_gpus: bool = False
    label: Callable[[Any], str] = lambda v: f"{v:g}"
    fact: Callable[[Any], str] | None = None

    def offered(self, catalog: Any) -> tuple:
        """The list on offer; ``catalog`` is a Catalog or the dict build_catalog fills (None: the list is wrong)."""
        if self.source is None:
            return self.values
        return catalog[self.source] if isinstance(catalog, Mapping) else getattr(catalog, self.source)

    def default(self, name, catalog, policy, start):
        return catalog.defaults.get(name, None if self.optional else 0)

    def check(self, name, value, c):
        choices = self.offered(c.catalog)
        if self.optional:
            if value is None or (value == 0 and is_number(value)):
                return None
            if not choices:
                c.errors[name] = "this hub does not offer a choice here"
                return None
        ok = is_int(value) if self.integer else is_number(value)
        if not ok or value not in choices:
            c.errors[name] = f"must be one of {', '.join(f'{v:g}' for v in choices)} (got {shown(value)})"
            return choices[0] if choices else 0
        if self.only_with_gpus and not c.checked.get("gpus"):
            return 0
        return value

    def check_preset(self, name, value, p):
        choices = self.offered(p.cat)
        if choices is None or (self.optional and value is None):
            return
        ok = is_int(value) if self.integer else is_number(value)
        if not ok or value not in choices:
            what = f"the {self.source}" if self.source else "the offered values"
            raise CatalogError(p.key_of(name), f"must be one of {what} {list(choices)}")

    def preset_schema(self):
        schema: dict[str, Any] = {"type": "integer" if self.integer else "number", "minimum": 0}
        if self.values:
            schema["enum"] = list(self.values)
        return schema


@dataclass(frozen=True)
class BackendChoice(Rule):
    """A key of what the chosen backend offers for this field (its `BackendConfig` attribute
    ``offers``: key → display text), or None: no choice, the backend decides. A value the
    user did not send — a default's, or a changeable preset's — yields to "no choice" where
    the chosen backend does not offer it. ``only_with_gpus``: without GPUs the choice means
    nothing and is dropped (a form keeps its last selection). ``any_label``: the form's
    option for no choice; ``none_offered``: the message when the backend offers nothing;
    ``card_text``: a profile card's fact, with ``{}`` for the display text."""

    offers: str
    noun: str
    any_label: str
    none_offered: str
    only_with_gpus: bool = False
    card_text: str = "{}"

    def offered_by(self, backend: BackendConfig) -> Mapping[str, str]:
        return getattr(backend, self.offers)

    def _offered(self, value: Any, catalog: Catalog, backend: str | None) -> Any:
        return value if backend is not None and value in self.offered_by(catalog.backends[backend]) else None

    def default(self, name, catalog, policy, start):
        # a default is offered by the default backend only
        return self._offered(catalog.defaults.get(name), catalog, start.get("backend"))

    def value_to_check(self, name, c):
        value = c.values.get(name)
        backend = c.checked.get("backend")
        if name in c.options or backend is None or c.fixed(name):
            return value
        return self._offered(value, c.catalog, backend)

    def check(self, name, value, c):
        if self.only_with_gpus and not c.checked.get("gpus"):
            return None
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            c.errors[name] = f"must be a {self.noun} name (got {shown(value)})"
            return None
        if c.backend is None:
            return None  # the backend's own error says what is wrong
        offered = self.offered_by(c.backend)
        if not offered:
            c.errors[name] = self.none_offered
        elif value not in offered:
            c.errors[name] = f"unknown {self.noun} {shown(value)}; choose one of: {', '.join(offered)}"[:280]
        else:
            return value
        return None

    def check_preset(self, name, value, p):
        """Offered by the backend the preset also fixes, so a preset can never fail at spawn time."""
        if "backend" in p.values and not p.cat["backends"].usable(p.backend):
            return  # its backend is reported already
        if value is None:
            return
        if not isinstance(value, str):
            raise CatalogError(p.key_of(name), f"must be a {self.noun} name (got {value!r})")
        if p.backend is None:
            raise CatalogError(p.key_of(name), f"needs 'backend' set alongside it: {self.noun}s are offered per backend")
        offered = self.offered_by(p.backend_config())
        if value not in offered:
            raise CatalogError(
                p.key_of(name),
                f"backend {p.backend!r} offers no {self.noun} {value!r}"
                + (f"; it offers: {', '.join(offered)}" if offered else f" (it offers no {self.noun} choice)"),
            )

    def preset_schema(self):
        return dict(_NAME_SCHEMA)


@dataclass(frozen=True)
class GpuTypeChoice(BackendChoice):
    """A `BackendChoice` of GPU types, some of fixed size (MIG slices): such a type must have
    at least the ``gpu_memory`` asked for (`gpu_type_memory_problem`). The message goes next
    to ``gpu_memory``, or next to the GPU type when a profile fixes the memory."""

    def check(self, name, value, c):
        gpu_type = super().check(name, value, c)
        memory = c.checked.get("gpu_memory", 0)
        if c.backend is not None and gpu_type is not None and "gpu_memory" not in c.errors:
            problem = gpu_type_memory_problem(c.backend, gpu_type, memory)
            if problem:
                c.errors[name if c.fixed("gpu_memory") else "gpu_memory"] = problem
        return gpu_type

    def check_preset(self, name, value, p):
        super().check_preset(name, value, p)
        memory, backend = p.values.get("gpu_memory", 0), p.backend_config()
        # a preset that could never start (with any GPU count) is refused now
        if backend is not None and is_int(memory):
            problem = gpu_type_memory_problem(backend, value, memory)
            if problem:
                raise CatalogError(p.key_of("gpu_memory"), problem)


@dataclass(frozen=True)
class Mounts(Rule):
    """``mounts``: data mount objects, checked against the storage the user's groups may use
    (`gridspawner.mounts.specs.parse_mounts`; messages under ``mounts[i].field``). Only what
    the user sent counts: no default, no preset."""

    def default(self, name, catalog, policy, start):
        return ()

    def value_to_check(self, name, c):
        return c.options.get(name)

    def check(self, name, value, c):
        try:
            specs, _ = parse_mounts(value, c.catalog.storage, c.groups, c.username)
        except OptionsError as e:
            c.errors.update(e.errors)
            return ()
        if c.backend is not None and c.backend.kind == "kubernetes":
            csi = c.catalog.storage.kubernetes.csi
            for i, spec in enumerate(specs):
                if spec.mode == "mount" and spec.type not in csi:
                    c.errors[f"{name}[{i}].mode"] = (
                        f"this backend cannot mount {spec.type} storage (no CSI driver configured); use mode 'copy'"
                    )
        return specs


@dataclass(frozen=True)
class ProfileName(Rule):
    """``profile``: a preset offered to the user, picked before any other field is checked
    (its values are where the others start; see `gridspawner.request.build_request`)."""
