"""What a host has: its GPUs, the ledger's claims on them and the session directories of the
probing account, parsed from `probe_scripts.probe_script`'s output (the claims' states are decided
on the host: see `ledger`)."""

from __future__ import annotations

from dataclasses import dataclass

from ...gpu import GPU, GPUProbeError, parse_nvidia_smi
from .ledger import BLOCKING, gpu_key
from .ledger_problems import LedgerProblem


@dataclass(frozen=True)
class LedgerEntry:
    """One claim file: ``name`` (``<gpu key>@<slot>``, or an old one-file-per-server entry),
    its ``state`` (held, hidden, pending, stale, forged), the ``account`` that owns the file
    (who holds the claim — never what the file says), the holder's ``pid``, ``age`` in seconds
    since the file last changed, and what the file says: ``entry`` (the session), ``session``
    (its directory), ``user``, ``owner`` (the hub, for people), ``hub`` and ``backend`` (the
    hub's id and backend name; empty in files made before hubs had ids)."""

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
    hub: str = ""
    backend: str = ""

    @property
    def blocking(self) -> bool:
        """Whether it keeps its GPUs from being handed out."""
        return self.state in BLOCKING


@dataclass(frozen=True)
class SessionDir:
    """A session directory in the probing account's session root that carries an owner mark
    (``hub``, ``backend``, ``host``: written by the launch script): its server's ``pid``
    (None: not started), whether that process runs, whether the launch script that made the
    directory still runs (``launching``: no server yet), and ``age``, seconds since the
    directory, its pid file or its launcher file last changed."""

    name: str
    pid: int | None = None
    running: bool = False
    launching: bool = False
    age: int = 0
    hub: str = ""
    backend: str = ""


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[GPU, ...] = ()
    entries: tuple[LedgerEntry, ...] = ()
    has_nvidia_smi: bool = True
    #: set when the ledger cannot be trusted: then no GPU may be handed out on this host
    ledger_problem: LedgerProblem | None = None
    #: GPUs with more claim files than a host needs: counted as taken ("*": every GPU)
    flooded: frozenset[str] = frozenset()
    #: the marked session directories in ``sessions_root`` of ``sessions_account`` (the
    #: account that probed); both None when the probe did not list them
    sessions: tuple[SessionDir, ...] = ()
    sessions_account: str | None = None
    sessions_root: str | None = None

    @property
    def claimed(self) -> frozenset[str]:
        """The GPUs that must not be handed out: held or pending claims (and flooded GPUs)."""
        if "*" in self.flooded:
            return frozenset(g.uuid for g in self.gpus)
        return frozenset(u for e in self.entries if e.blocking for u in e.uuids) | self.flooded

    def free(self) -> tuple[GPU, ...]:
        taken = self.claimed
        return tuple(g for g in self.gpus if g.uuid not in taken)

    def claimed_except(self, entry: str, hub: str) -> frozenset[str]:
        """`claimed`, less the GPUs held only by claims of session ``entry`` of hub ``hub``:
        a server of that session the hub lost (a crash mid-launch). Its launch now replaces
        it (the launch script stops it first), so it does not count against this launch."""
        if not hub or "*" in self.flooded:
            return self.claimed
        return frozenset(u for e in self.entries if e.blocking and not (e.entry == entry and e.hub == hub)
                         for u in e.uuids) | self.flooded


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
        hub=first.get("hub", ""), backend=first.get("backend", ""),
    )


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_sessions(lines: list[str]) -> tuple[list[str], tuple[SessionDir, ...], str | None, str | None]:
    """Take the ``@@sessions <account> <root>`` block (``@@session <name> <pid or -> <running
    0|1> <launching 0|1> <age>`` + ``key=value`` lines each) out of ``lines``: (the other
    lines, the directories, the account, the root)."""
    rest: list[str] = []
    found: list[SessionDir] = []
    account = root = None
    header: list[str] | None = None
    values: dict[str, str] = {}

    def flush() -> None:
        if header is not None:
            name, pid, running, launching, age = (header + ["?"] * 5)[:5]
            found.append(SessionDir(name=name, pid=_int(pid), running=running == "1", launching=launching == "1",
                                    age=_int(age) or 0, hub=values.get("hub", ""), backend=values.get("backend", "")))

    in_block = False
    for line in lines:
        if line.startswith("@@sessions "):
            parts = line.split(" ", 2)
            account, root = (parts + ["", ""])[1:3]
            in_block = True
            continue
        if in_block and line.startswith("@@session "):
            flush()
            header, values = line.split()[1:], {}
            continue
        if in_block and not line.startswith("@@"):
            key, sep, value = line.partition("=")
            if sep and header is not None:
                values.setdefault(key.strip(), value.strip())
            continue
        if in_block:
            flush()
            header, in_block = None, False
        rest.append(line)
    flush()
    return rest, tuple(found), account, root


def parse_probe(stdout: str) -> Inventory:
    """Parse `probe_script`'s output; raises GPUProbeError when nvidia-smi failed."""
    lines, sessions, sessions_account, sessions_root = parse_sessions(stdout.splitlines())
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
    return Inventory(tuple(gpus), tuple(entries), status != "missing", problem, frozenset(flooded),
                     sessions, sessions_account, sessions_root)
