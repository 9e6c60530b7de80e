"""What a host has: its GPUs and the ledger's claims, parsed from `scripts.probe_script`'s output."""

from __future__ import annotations

from dataclasses import dataclass

from ...gpu import GPU, GPUProbeError, parse_nvidia_smi


@dataclass(frozen=True)
class LedgerEntry:
    name: str
    uuids: tuple[str, ...] = ()
    owner: str = ""
    user: str = ""
    pid: int | None = None
    created: int = 0


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[GPU, ...] = ()
    entries: tuple[LedgerEntry, ...] = ()
    has_nvidia_smi: bool = True

    @property
    def claimed(self) -> frozenset[str]:
        return frozenset(u for e in self.entries for u in e.uuids)

    def free(self) -> tuple[GPU, ...]:
        taken = self.claimed
        return tuple(g for g in self.gpus if g.uuid not in taken)


def parse_ledger_entry(name: str, text: str) -> LedgerEntry:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key.strip(), []).append(value.strip())
    pid = values.get("pid", [""])[-1]
    created = values.get("created", ["0"])[0]
    return LedgerEntry(
        name=name,
        uuids=tuple(values.get("uuid", [])),
        owner=values.get("owner", [""])[0],
        user=values.get("user", [""])[0],
        pid=int(pid) if pid.isdigit() else None,
        created=int(created) if created.isdigit() else 0,
    )


def parse_probe(stdout: str) -> Inventory:
    """Parse `probe_script`'s output; raises GPUProbeError when nvidia-smi failed."""
    lines = stdout.splitlines()
    if not lines or not lines[0].startswith("@@gpus ") or "@@end" not in lines:
        raise GPUProbeError(f"unexpected probe output: {stdout[-300:]!r}")
    status = lines[0].split(" ", 1)[1]
    ledger_at = lines.index("@@ledger")
    smi_text = "\n".join(lines[1:ledger_at])
    if status == "missing":
        gpus: list[GPU] = []
    elif status != "0":
        raise GPUProbeError(f"nvidia-smi failed (exit {status}): {smi_text.strip()[-300:]}")
    else:
        gpus = parse_nvidia_smi(smi_text)
    entries, name, body = [], None, []
    for line in lines[ledger_at + 1 :]:
        if line.startswith("@@entry ") or line == "@@end":
            if name is not None:
                entries.append(parse_ledger_entry(name, "\n".join(body)))
            name, body = (line[len("@@entry ") :], []) if line != "@@end" else (None, [])
            if line == "@@end":
                break
        elif name is not None:
            body.append(line)
    return Inventory(tuple(gpus), tuple(entries), status != "missing")
