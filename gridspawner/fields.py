"""Every choice a user makes at spawn time, described once.

A `Field` is one choice: its name (the spawn form's field and the REST ``user_options``
key), its label, what JSON value it takes, how the form's text becomes that value, which
widget the form shows, the help under it, whether an admin's preset (a profile's
``values``, ``default_options``) may set it, its REST documentation, and the `Rule` that
starts, checks and documents its values (`gridspawner.field_rules`).

Everything else is derived from `FIELDS`: the options `gridspawner.request.build_request`
accepts and the order it checks them in, the form parser (`gridspawner.form.parse`), the
preset keys the catalog accepts (`PRESET_NAMES`), the form's selects and the data its
script gets (`gridspawner.form.render`), the documentation's tables of REST keys and preset
keys (``docs/gen_field_docs.py``) and the Helm chart schema's profile values, changeable
fields and default options (``scripts/gen_chart_schema.py``).

Adding a choice is one entry here and, where it changes what runs, the backends that read
it: its checked value reaches them in ``LaunchRequest.choices`` (see the development guide).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .field_rules import (
    BackendChoice,
    BackendName,
    GpuCount,
    GpuTypeChoice,
    ImageName,
    ListChoice,
    Mounts,
    ProfileName,
    Rule,
)
from .vocabulary import plural


@dataclass(frozen=True)
class Field:
    """One choice. ``form_text``: how the form's text becomes the value — ``name`` (empty:
    left out, the default applies), ``number``, ``choice`` (a name, and "" is a choice of
    its own: "any") or ``mount_rows`` (the data mounts editor's rows). ``widget``: what the
    form shows — ``cards`` (profiles), ``mounts`` (the data mounts editor), or a select:
    ``backend``, ``image``, ``gpu_count`` and ``gpu_memory`` (coloured by capacity),
    ``per_backend`` (each option belongs to one backend) or ``choice`` ("Default" and a
    list). ``placed_after``: in the form, right after that field instead of in registry
    order. ``limits_note``: the form says where the chosen backend does not enforce the
    value (its ``resource_limits``)."""

    name: str
    label: str
    json_type: str
    rest: str
    form_text: str
    widget: str
    rule: Rule
    help: str = ""
    preset: bool = True
    preset_doc: str = ""
    half_width: bool = False
    placed_after: str | None = None
    limits_note: bool = False

    def preset_schema(self) -> dict[str, Any]:
        """The JSON schema of this field's value in a preset (the Helm chart's schema)."""
        return {"description": self.preset_doc, **self.rule.preset_schema()}


#: the registry, in the order requests are checked and the REST reference lists the keys
FIELDS: tuple[Field, ...] = (
    Field(
        "profile", "Profile", "string",
        rest="A profile key (optional).",
        form_text="name", widget="cards", rule=ProfileName(), preset=False,
    ),
    Field(
        "backend", "Where to run", "string",
        rest="A backend name.",
        form_text="name", widget="backend", rule=BackendName(),
        preset_doc="A backend name.",
    ),
    Field(
        "image", "Environment", "string",
        rest="An image key, or a container image reference (e.g. `\"registry.example.edu/lab/torch:2.4\"`) where "
             "your groups' policy allows references matching its `image_refs` patterns, on a backend that runs "
             "containers (see [Your own image](#your-own-image)).",
        form_text="name", widget="image", rule=ImageName(),
        preset_doc="An image key.",
    ),
    Field(
        "gpus", "GPUs", "integer",
        rest="Number of GPUs, an integer ≥ 0.",
        form_text="number", widget="gpu_count", rule=GpuCount(), half_width=True,
        preset_doc="Number of GPUs (an integer).",
    ),
    Field(
        "gpu_memory", "Minimum memory per GPU", "integer",
        rest="Minimum GB per GPU, one of the hub's GPU memory classes; 0 = any.",
        form_text="number", widget="gpu_memory", half_width=True,
        rule=ListChoice(source="gpu_memory_classes", optional=False, only_with_gpus=True),
        preset_doc="Minimum VRAM per GPU in GB, one of gpu_memory_classes.",
    ),
    Field(
        "gpu_type", "GPU type", "string",
        rest='A GPU type key the chosen backend offers (e.g. `"a100-80"`, `"mig-1g"`), or `""`/`null` for any '
             "GPU. Only with `gpus` ≥ 1; ignored when `gpus` is 0. The keys are the values of the form's "
             "*GPU type* list.",
        form_text="choice", widget="per_backend",
        rule=GpuTypeChoice("gpu_types", "GPU type", "Any GPU", "this backend offers no GPU type choice",
                           only_with_gpus=True),
        help="A GPU model or a MIG slice, where the chosen backend offers a choice.",
        preset_doc="A GPU type key offered by the backend set alongside it (a Kubernetes backend's gpu_types); needs backend set too.",
    ),
    Field(
        "host", "Host", "string",
        rest="A host the chosen backend lets you pick (an SSH backend whose admin set `allow_host_choice`), or "
             '`""`/`null` for any host: the backend then picks the best fit. The names are the values of the '
             "form's *Host* list.",
        form_text="choice", widget="per_backend", placed_after="backend",
        rule=BackendChoice("host_choices", "host", "Any host (best fit)",
                           "this backend places servers itself; no host choice", card_text="on {}"),
        help="A particular host, where the chosen backend lets you pick one; otherwise the best fit is chosen.",
        preset_doc="A host name offered by the backend set alongside it (an ssh backend with allow_host_choice); needs backend set too.",
    ),
    Field(
        "cpu", "CPUs", "number",
        rest="Number of CPUs, one of the hub's choices (if it offers any).",
        form_text="number", widget="choice", half_width=True, limits_note=True,
        rule=ListChoice(source="cpu_choices", integer=False, label=lambda c: plural(c, "CPU")),
        preset_doc="CPUs, one of cpu_choices.",
    ),
    Field(
        "memory", "Memory", "integer",
        rest="Memory in GB, one of the hub's choices (if it offers any).",
        form_text="number", widget="choice", half_width=True, limits_note=True,
        rule=ListChoice(source="memory_choices", label=lambda m: f"{m:g} GB", fact=lambda m: f"{m:g} GB memory"),
        preset_doc="Memory in GB, one of memory_choices.",
    ),
    Field(
        "mounts", "Data", "array",
        rest="A list of data mounts, one object per mount with the keys of the form's *Data* rows, typed "
             "secrets included (see [Data mounts](data-mounts.md)); `[]` or left out: none. Only where "
             "the hub offers storage to you.",
        form_text="mount_rows", widget="mounts", rule=Mounts(), preset=False,
    ),
)

#: the registry by name
FIELD = MappingProxyType({f.name: f for f in FIELDS})
#: every user_options key, in registry order
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
#: the keys a request is built from (all but ``profile``, which is picked first)
CHOICE_NAMES: tuple[str, ...] = tuple(n for n in OPTION_NAMES if n != "profile")
#: the keys a profile's ``values`` and ``default_options`` may set
PRESET_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS if f.preset)


def form_order() -> tuple[Field, ...]:
    """The form's selects in the order they appear (registry order, ``placed_after`` applied)."""
    selects = [f for f in FIELDS if f.widget not in ("cards", "mounts")]
    ordered = [f for f in selects if f.placed_after is None]
    for f in selects:
        if f.placed_after is not None:
            ordered.insert(next(i for i, o in enumerate(ordered) if o.name == f.placed_after) + 1, f)
    return tuple(ordered)
