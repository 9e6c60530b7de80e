"""Prices: what an hour of a server costs, from the admin's ``c.GridSpawner.prices``. Pure.

A GPU's price per hour is found, in this order: its model (nvidia-smi's name, matched
against the ``gpu_models`` globs, case-insensitively, first match in the admin's order), its
memory (``gpu_memory``: the price of the largest class at most the card's nominal GB), then
``gpu_hour``; none of them set: 0. CPUs and memory add ``cpu_hour`` per CPU and
``memory_gb_hour`` per GB the user chose (a backend's default size is not priced).

A record keeps the rate in effect when its server started (`rate_of`), so a later price
change does not rewrite history.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..vocabulary import CatalogError
from ..gpu import GPU

_KEY = "c.GridSpawner.prices"
_KEYS = ("currency", "gpu_hour", "gpu_models", "gpu_memory", "cpu_hour", "memory_gb_hour")


@dataclass(frozen=True)
class Prices:
    """Validated prices (per hour, in ``currency``)."""

    currency: str = ""
    gpu_hour: float = 0.0
    #: (glob, price), in the admin's order
    gpu_models: tuple[tuple[str, float], ...] = ()
    #: (nominal GB, price), smallest class first
    gpu_memory: tuple[tuple[int, float], ...] = ()
    cpu_hour: float = 0.0
    memory_gb_hour: float = 0.0
    configured: bool = field(default=False, compare=False)

    # ------------------------------------------------------------------ one GPU
    def model_price(self, model: str) -> float | None:
        name = (model or "").lower()
        for pattern, price in self.gpu_models:
            if name and fnmatch.fnmatchcase(name, pattern.lower()):
                return price
        return None

    def memory_price(self, gb: int) -> float | None:
        """The price of the largest memory class at most ``gb`` (None: no class fits)."""
        found = None
        for size, price in self.gpu_memory:
            if size <= gb:
                found = price
        return found

    def gpu_price(self, model: str, gb: int) -> float:
        """Per hour of one GPU of ``model`` with ``gb`` nominal GB."""
        for price in (self.model_price(model), self.memory_price(gb)):
            if price is not None:
                return price
        return self.gpu_hour

    def estimate_gpu_price(self, min_gb: int, model: str = "") -> float:
        """Per hour of one GPU for a request of at least ``min_gb`` GB (before placement): a
        known model's price, else the smallest memory class that fits the request (best fit
        places the smallest card that does), else the class rule for ``min_gb`` itself."""
        if model:
            price = self.model_price(model)
            if price is not None:
                return price
        for size, price in self.gpu_memory:
            if size >= min_gb:
                return price
        return self.gpu_price("", min_gb)

    # ------------------------------------------------------------------ a server
    def extras(self, cpu: float | None, memory: int | None) -> float:
        return (cpu or 0) * self.cpu_hour + (memory or 0) * self.memory_gb_hour

    def rate_of(self, gpus: Sequence[GPU], requested_gpus: int, min_gb: int, model: str,
                cpu: float | None, memory: int | None) -> float:
        """Per hour of a running server: each placed GPU at its own price (GPUs the backend
        could not describe at the estimate for the request), plus CPU and memory."""
        known = sum(self.gpu_price(g.name, g.memory_gb) for g in gpus)
        unknown = max(0, requested_gpus - len(gpus)) * self.estimate_gpu_price(min_gb, model)
        return round(known + unknown + self.extras(cpu, memory), 6)

    def script_data(self, memory_classes: Iterable[int], gpu_types: Mapping[str, Mapping[str, str]]) -> dict:
        """What the form's script needs to estimate the cost of a choice: the per-GPU price
        for each offered memory class and for each backend's GPU types (by display name)."""
        types = {}
        for backend, offered in gpu_types.items():
            priced = {key: self.model_price(name) for key, name in offered.items()}
            types[backend] = {k: p for k, p in priced.items() if p is not None}
        return {
            "currency": self.currency,
            "perGpu": {str(gb): self.estimate_gpu_price(int(gb)) for gb in memory_classes},
            "gpuTypes": types,
            "cpuHour": self.cpu_hour,
            "memoryGbHour": self.memory_gb_hour,
        }


def format_money(amount: float, currency: str) -> str:
    """``12.50 EUR`` (two decimals; four below 0.01, so a cheap hour is not shown as 0.00)."""
    digits = 4 if 0 < abs(amount) < 0.01 else 2
    text = f"{amount:,.{digits}f}"
    return f"{text} {currency}".strip()


def _price(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise CatalogError(key, f"must be a price per hour: a number ≥ 0 (got {value!r})")
    return float(value)


def parse_prices(raw: Any) -> Prices:
    """Validate ``c.GridSpawner.prices``; raises CatalogError naming the key."""
    if raw is None or raw == {}:
        return Prices()
    if not isinstance(raw, Mapping):
        raise CatalogError(_KEY, f"must be a dict (got {type(raw).__name__})")
    unknown = [k for k in raw if k not in _KEYS]
    if unknown:
        raise CatalogError(f"{_KEY}[{unknown[0]!r}]", f"unknown key; known keys: {', '.join(_KEYS)}")
    currency = raw.get("currency", "")
    if not isinstance(currency, str) or len(currency) > 16:
        raise CatalogError(f"{_KEY}['currency']", "must be a short text such as 'EUR' or 'CHF'")
    models = raw.get("gpu_models") or {}
    if not isinstance(models, Mapping):
        raise CatalogError(f"{_KEY}['gpu_models']", "must be a dict: GPU model (a glob such as '*A100*') → price per hour")
    parsed_models = []
    for pattern, price in models.items():
        if not isinstance(pattern, str) or not pattern.strip():
            raise CatalogError(f"{_KEY}['gpu_models']", f"keys must be GPU model names or globs (got {pattern!r})")
        parsed_models.append((pattern.strip(), _price(price, f"{_KEY}['gpu_models'][{pattern!r}]")))
    memory = raw.get("gpu_memory") or {}
    if not isinstance(memory, Mapping):
        raise CatalogError(f"{_KEY}['gpu_memory']", "must be a dict: memory class in GB → price per hour")
    parsed_memory = []
    for size, price in memory.items():
        where = f"{_KEY}['gpu_memory'][{size!r}]"
        try:
            gb = int(size) if not isinstance(size, bool) and str(size).strip().isdigit() else None
        except ValueError:
            gb = None
        if gb is None:
            raise CatalogError(where, "keys must be memory sizes in whole GB, such as 16 or '80'")
        parsed_memory.append((gb, _price(price, where)))
    return Prices(
        currency=currency.strip(),
        gpu_hour=_price(raw.get("gpu_hour", 0), f"{_KEY}['gpu_hour']"),
        gpu_models=tuple(parsed_models),
        gpu_memory=tuple(sorted(parsed_memory)),
        cpu_hour=_price(raw.get("cpu_hour", 0), f"{_KEY}['cpu_hour']"),
        memory_gb_hour=_price(raw.get("memory_gb_hour", 0), f"{_KEY}['memory_gb_hour']"),
        configured=True,
    )
