"""Capacity in the spawn form: what fits where, and the options it colours or disables.

``_Fit`` condenses the cached capacity of the backends on offer; the builders here make the
backend, GPU-count and GPU-memory options from it (a choice that fits on no backend on offer
is disabled; without JavaScript the user may still switch to a backend where it fits), and
the per-backend selects (GPU type, host) whose choices belong to one backend each.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..backends.base import Capacity
from ..catalog import Catalog, Policy
from .view import Option, _echo_invalid, _plural, limits_note, value_key


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


def _cap_state(cap: Capacity) -> str:
    if not cap.known or (cap.hosts and not any(h.reachable for h in cap.hosts)):
        return "unknown"
    return "busy" if cap.total_gpus and not cap.free_gpus else "ok"


def _backend_options(
    catalog: Catalog, policy: Policy, backend_names: list[str], fit: _Fit, sel_backend: str, value: Any
) -> list[Option]:
    """One option per backend on offer, with its capacity summary and state for the script."""
    opts = []
    for name in backend_names:
        b = catalog.backends[name]
        cap = fit.caps[name]
        opts.append(
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
                    ("limits-note", limits_note(b.resource_limits)),
                    ("policy", "1" if policy.allows_backend(name) else "0"),
                ),
            )
        )
    _echo_invalid(opts, value)
    return opts


def _gpu_options(
    catalog: Catalog, fit: _Fit, sel_cap: Capacity | None, shown: Mapping[str, Any], gmax: int
) -> tuple[list[Option], list[Option], str]:
    """The GPU-count and GPU-memory options, disabled where they cannot fit, and the note
    shown under the GPU count when the selected count does not fit the selected backend."""
    classes = catalog.gpu_memory_classes
    gpus_value = shown.get("gpus")
    sel_count = gpus_value if isinstance(gpus_value, int) and not isinstance(gpus_value, bool) else 0
    gb_value = shown.get("gpu_memory")
    sel_class = classes.index(gb_value) if gb_value in classes and not isinstance(gb_value, bool) else 0
    tol = catalog.gpu_memory_tolerance
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
    return gpu_opts, mem_opts, fit_note


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

