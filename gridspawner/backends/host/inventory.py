"""What a host has: its GPUs and the ledger's claims on them, parsed from `scripts.probe_script`'s
output (the claims' states are decided on the host: see `ledger`)."""

from __future__ import annotations

from dataclasses import dataclass

from ...gpu import GPU, GPUProbeError, parse_nvidia_smi
from .ledger import BLOCKING, LedgerProblem, gpu_key


@dataclass(frozen=True)
class LedgerEntry:
    """One claim file: ``name`` (``<gpu key>@<slot>``, or an old one-file-per-server entry),
    its ``state`` (held, hidden, pending, stale, forged), the ``account`` that owns the file
    (who holds the claim — never what the file says), the holder's ``pid``, ``age`` in seconds
    since the file last changed, and what the file says: ``entry`` (the session), ``session``
    (its directory), ``user`` and ``owner`` (the hub)."""

    name: str
    uuids: tuple[str, ...] = ()
    state: str = "held"
    account: str = ""
    pid: int | None = None
    age: int = 0
    entry: str = ""
    session: str = ""
    user: str = ""
    owner: str = ""

    @property
    def blocking(self) -> bool:
        """Whether it keeps its GPUs from being handed out."""
        return self.state in BLOCKING


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[GPU, ...] = ()
    entries: tuple[LedgerEntry, ...] = ()
    has_nvidia_smi: bool = True
    #: set when the ledger cannot be trusted: then no GPU may be handed out on this host
    ledger_problem: LedgerProblem | None = None
    #: GPUs with more claim files than a host needs: counted as taken ("*": every GPU)
    flooded: frozenset[str] = frozenset()

    @property
    def claimed(self) -> frozenset[str]:
        """The GPUs that must not be handed out: held or pending claims (and flooded GPUs)."""
        if "*" in self.flooded:
            return frozenset(g.uuid for g in self.gpus)
        return frozenset(u for e in self.entries if e.blocking for u in e.uuids) | self.flooded

    def free(self) -> tuple[GPU, ...]:
        taken = self.claimed
        return tuple(g for g in self.gpus if g.uuid not in taken)


def parse_claim(header: str, body: list[str], keys: dict[str, str]) -> LedgerEntry:
    """One ``@@claim <name> <state> <account> <pid> <age>`` block. ``keys``: GPU key → UUID of
    this host's GPUs (a claim file names its GPU by key; an old entry by its ``uuid`` lines)."""
    parts = header.split()
    parts += ["?"] * (5 - len(parts))
    name, state, account, pid, age = parts[:5]
    values: dict[str, list[str]] = {}
    for line in body:
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key.strip(), []).append(value.strip())
    if "@" in name:
        uuid = keys.get(name.rsplit("@", 1)[0])
        uuids: tuple[str, ...] = (uuid,) if uuid else ()
    else:
        uuids = tuple(values.get("uuid", []))
    first = {k: v[0] for k, v in values.items() if v}
    return LedgerEntry(
        name=name, uuids=uuids, state=state, account=account,
        pid=int(pid) if pid.isdigit() else None, age=int(age) if age.isdigit() else 0,
        entry=first.get("entry", ""), session=first.get("session", ""),
        user=first.get("user", ""), owner=first.get("owner", ""),
    )


def parse_probe(stdout: str) -> Inventory:
    """Parse `probe_script`'s output; raises GPUProbeError when nvidia-smi failed."""
    lines = stdout.splitlines()
    if not lines or not lines[0].startswith("@@gpus ") or "@@end" not in lines:
        raise GPUProbeError(f"unexpected probe output: {stdout[-300:]!r}")
    status = lines[0].split(" ", 1)[1]
    ledger_at = next((i for i, ln in enumerate(lines) if ln.startswith("@@ledger")), None)
    if ledger_at is None:
        raise GPUProbeError(f"unexpected probe output: {stdout[-300:]!r}")
    smi_text = "\n".join(lines[1:ledger_at])
    if status == "missing":
        gpus: list[GPU] = []
    elif status != "0":
        raise GPUProbeError(f"nvidia-smi failed (exit {status}): {smi_text.strip()[-300:]}")
    else:
        gpus = parse_nvidia_smi(smi_text)
    keys = {gpu_key(g.uuid): g.uuid for g in gpus}
    ledger_line = lines[ledger_at].split(" ", 2)
    problem = None
    if len(ledger_line) > 1 and ledger_line[1] == "unsafe":
        problem = LedgerProblem.parse(ledger_line[2] if len(ledger_line) > 2 else "")
    entries: list[LedgerEntry] = []
    flooded: set[str] = set()
    header, body = None, []
    for line in lines[ledger_at + 1:]:
        if line.startswith("@@claim ") or line.startswith("@@flooded ") or line == "@@end":
            if header is not None:
                entries.append(parse_claim(header, body, keys))
            header, body = None, []
            if line.startswith("@@claim "):
                header = line[len("@@claim "):]
            elif line.startswith("@@flooded "):
                flooded.add(line.split()[1])
            else:
                break
        elif header is not None:
            body.append(line)
    return Inventory(tuple(gpus), tuple(entries), status != "missing", problem, frozenset(flooded))
