"""What an unsafe ledger (see `ledger`'s rules) means to an admin, with the command that fixes it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

q = shlex.quote


@dataclass(frozen=True)
class LedgerProblem:
    """Why a host's ledger cannot be used, as the scripts report it."""

    kind: str  # missing, cannot-create, owner, mode, symlink, notdir, parent-owner, parent-mode
    path: str
    owner: str = "?"
    account: str = "?"

    @classmethod
    def parse(cls, text: str) -> "LedgerProblem":
        parts = text.split()
        parts += ["?"] * (4 - len(parts))
        return cls(*parts[:4])


def problem_message(host: str, ledger_dir: str, p: LedgerProblem, *, shared: bool) -> str:
    """What an admin reads: why the ledger is unsafe and the exact command that fixes it."""
    d = q(ledger_dir)
    make = f"install -d -o root -g root -m 1777 {d}"
    who = "root" if shared else f"root or {p.account}"
    if p.kind == "missing":
        why = ("it does not exist, and several accounts use this host, so it must be made by root "
               "(if one of them made it, that account could delete every other's GPU claims)")
        fix = f"{make}   (or -g GROUP -m 1770: only that group's accounts may then claim GPUs)"
    elif p.kind == "cannot-create":
        why = f"{p.account} cannot create it"
        fix = make
    elif p.kind == "owner":
        why = (f"it is owned by {p.owner}, not by {who}, so {p.owner} could delete or forge every GPU claim in it"
               + (" (several accounts use this host, so only root may own it)" if shared else ""))
        fix = f"chown root:root {d} && chmod 1777 {d}   (after checking that no one but gridspawner used it)"
    elif p.kind == "mode":
        why = "other accounts may write to it and it has no sticky bit, so they could delete each other's GPU claims"
        fix = f"chmod +t {d}"
    elif p.kind in ("symlink", "notdir"):
        why = "it is a symbolic link" if p.kind == "symlink" else "it is not a directory"
        fix = f"rm -f {d} && {make}"
    else:  # parent-owner, parent-mode
        cause = (f"is owned by {p.owner}" if p.kind == "parent-owner"
                 else "may be written by other accounts and has no sticky bit")
        why = f"its parent directory {p.path} {cause}, so the whole ledger could be replaced"
        fix = ("set ledger_dir to a directory whose parents only root can change, made with "
               "install -d -o root -g root -m 1777 /var/lib/gridspawner/ledger")
    return (f"the GPU ledger {ledger_dir} on {host} is not safe to use: {why}. No GPU is handed out on {host} "
            f"until it is fixed; as root on {host}: {fix}")
