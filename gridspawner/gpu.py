"""GPU inventory and placement: pure functions, shared by every host-based backend.

VRAM is asked for in GB (what users read on spec sheets) and reported by the driver in MiB,
always a little less than the marketing number (an "A10 24 GB" reports 23028 MiB, a
"T4 16 GB" 15360 MiB). ``tolerance`` absorbs that gap: a card satisfies ``gb`` when it has
at least ``gb * 1024 * (1 - tolerance)`` MiB.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

#: nvidia-smi arguments whose output `parse_nvidia_smi` reads.
NVIDIA_SMI_ARGS = (
    "--query-gpu=index,uuid,name,memory.total,memory.used",
    "--format=csv,noheader,nounits",
)


@dataclass(frozen=True)
class GPU:
    index: int
    uuid: str
    name: str
    memory_total_mib: int
    memory_used_mib: int = 0

    @property
    def memory_gb(self) -> int:
        """The nominal size a user would recognise (23028 MiB → 24, 81920 MiB → 80)."""
        return nominal_gb(self.memory_total_mib)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "memory_total_mib": self.memory_total_mib,
            "memory_used_mib": self.memory_used_mib,
        }

    @classmethod
    def from_dict(cls, d: dict) -> GPU:
        return cls(int(d["index"]), str(d["uuid"]), str(d["name"]), int(d["memory_total_mib"]), int(d.get("memory_used_mib", 0)))


class GPUProbeError(ValueError):
    pass


def nominal_gb(mib: int) -> int:
    """Round reported MiB up to the marketed GB figure (GiB, rounded to nearest)."""
    gib = mib / 1024
    # cards report 2-7% less than their nominal size; round to the nearest even GB above 8
    for size in (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 16, 20, 24, 32, 40, 48, 64, 80, 94, 96, 128, 141, 144, 180, 192, 256, 288):
        if gib <= size and gib >= size * 0.9:
            return size
    return round(gib)


def parse_nvidia_smi(text: str) -> list[GPU]:
    """Parse ``nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits``."""
    gpus = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 5:
            raise GPUProbeError(f"unexpected nvidia-smi line: {','.join(row)[:200]!r}")
        index, uuid, name, total, used = (c.strip() for c in row)
        try:
            gpus.append(GPU(int(index), uuid, name, int(float(total)), int(float(used)) if used not in ("", "[N/A]") else 0))
        except (ValueError, OverflowError) as e:  # OverflowError: int(float("inf"))
            raise GPUProbeError(f"unexpected nvidia-smi line: {','.join(row)[:200]!r}") from e
    return gpus


def min_mib(gb: int | float, tolerance: float) -> int:
    """The fewest MiB a card may report and still count as ``gb`` GB."""
    return int(gb * 1024 * (1 - tolerance)) if gb > 0 else 0


def satisfies(gpu: GPU, gb: int | float, tolerance: float) -> bool:
    return gpu.memory_total_mib >= min_mib(gb, tolerance)


def place(
    gpus: Sequence[GPU], count: int, gb: int | float, tolerance: float, taken: Iterable[str] = ()
) -> tuple[GPU, ...] | None:
    """Best fit: the ``count`` smallest free cards with at least ``gb`` GB, or None.

    Picking the smallest cards that satisfy the request keeps big cards free for requests
    that need them.
    """
    if count <= 0:
        return ()
    taken = set(taken)
    fits = sorted(
        (g for g in gpus if g.uuid not in taken and satisfies(g, gb, tolerance)),
        key=lambda g: (g.memory_total_mib, g.index),
    )
    if len(fits) < count:
        return None
    return tuple(sorted(fits[:count], key=lambda g: g.index))


def describe(gpus: Sequence[GPU]) -> str:
    """'GPUs 0,1 — 2× A100 80 GB' (or 'no GPU')."""
    if not gpus:
        return "no GPU"
    kinds = Counter((g.name, g.memory_gb) for g in gpus)
    what = ", ".join(f"{n}× {name} {gb} GB" for (name, gb), n in kinds.items())
    label = "GPU" if len(gpus) == 1 else "GPUs"
    return f"{label} {','.join(str(g.index) for g in gpus)} — {what}"
