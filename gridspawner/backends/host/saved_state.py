"""PURE: a host server's saved state (JSON in the hub's database, no secret) and what is read
back from it — checked, because it comes from the hub's database and names paths on hosts."""

from __future__ import annotations

from typing import Any

from ...gpu import GPU, describe
from ..base import BackendError, Launch
from .placement import Placement
from .launch_scripts import LaunchSpec

STATE_VERSION = 1
STATE_KEYS = ("host", "session_dir", "socket", "pid", "relay_port")


def saved_state(placement: Placement, spec: LaunchSpec, pid: int, relay_host: str, relay_port: int,
                ledger_dir: str, data_link: str | None, extra: dict) -> dict:
    """What the hub saves of a server just started (``extra``: the kind's own keys)."""
    state = {
        "v": STATE_VERSION,
        "host": placement.host,
        "session_dir": spec.session_dir,
        "socket": spec.socket_path,
        "pid": pid,
        "relay_host": relay_host,
        "relay_port": relay_port,
        "gpus": [g.to_dict() for g in placement.gpus],
        "ledger_dir": ledger_dir,
        "ledger_claims": list(placement.claims),
        **extra,
    }
    if data_link:
        state["data_link"] = data_link
    return state


def check_state(state: Any, hosts: tuple[str, ...] | list[str], backend: str) -> dict:
    """``state`` when it names everything a host server's state must, on one of ``hosts``."""
    if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
        raise BackendError(f"saved server state is incomplete (needs {', '.join(STATE_KEYS)})")
    if state["host"] not in hosts:
        raise BackendError(f"host {state['host']!r} is no longer configured for backend {backend!r}")
    return state


def claims_of(state: dict) -> tuple[str, ...]:
    """The claim files in a server's saved state (only plain names: state comes from the hub's
    database, and a name is put into a path on the host)."""
    claims = state.get("ledger_claims") or ()
    return tuple(c for c in claims if isinstance(c, str) and c and "/" not in c and c not in (".", ".."))


def relay_url(relay_host: str, port: int) -> str:
    """The URL the hub reaches a server on: its relay's port on ``relay_host`` (an
    any-address listener is reached on the loopback)."""
    host = "127.0.0.1" if relay_host in ("0.0.0.0", "::", "") else relay_host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def launch_of(state: dict, relay_host: str, relay_port: int) -> Launch:
    """The `Launch` of a saved server whose relay listens on ``relay_port``."""
    state = dict(state, relay_port=relay_port, relay_host=relay_host)
    gpus = tuple(GPU.from_dict(g) for g in state.get("gpus") or ())
    return Launch(url=relay_url(relay_host, relay_port), state=state, gpus=gpus,
                  description=f"{state['host']}, {describe(gpus)}")
