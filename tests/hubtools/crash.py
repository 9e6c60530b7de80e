"""Fault injection for hub tests: the hub SIGKILLs itself at a named step of a launch or a
stop, with no test hook in gridspawner's own code.

`CONFIG` is a jupyterhub_config.py snippet (pass it as ``Hub(extra_config=CONFIG)``): it wraps
backend methods so that, when the file ``<workdir>/crash-at`` names the step being passed
(``<kind>:<step>``, e.g. ``local:after_claim``), the hub removes the file and kills itself
with SIGKILL right there — as an OOM kill or a node reboot would. `kill_at` arms a step,
runs the REST call that reaches it and waits for the hub to die.

Steps (`STEPS`), on ``local`` and ``ssh`` (the host backend):

- ``after_placement``: GPUs chosen, not claimed yet (the claim script is being built);
- ``after_claim``: the GPUs are claimed in the host's ledger, nothing started;
- ``after_start``: the server process runs (the launch script returned its pid);
- ``after_relay``: the hub's relay to the server's socket listens;
- ``before_return``: the backend's launch returned; JupyterHub has not saved the state;
- ``stop_begin``: a stop was asked for; nothing stopped yet;
- ``stop_end``: the backend stopped the server; JupyterHub has not forgotten it yet.

On ``kubernetes``: ``after_secret`` (the token Secret exists, no pod), ``after_pod`` (the
pod was created), ``after_ready`` (it is ready), ``before_return``, ``stop_begin``,
``stop_pod_deleting`` (the pod's deletion was asked for, with its grace period; its
Secrets are still there) and ``stop_end``.
"""

from __future__ import annotations

import time

import requests

HOST_STEPS = ("after_placement", "after_claim", "after_start", "after_relay", "before_return", "stop_begin", "stop_end")
KUBERNETES_STEPS = ("after_secret", "after_pod", "after_ready", "before_return", "stop_begin", "stop_pod_deleting",
                    "stop_end")
STEPS = {"local": HOST_STEPS, "ssh": HOST_STEPS, "kubernetes": KUBERNETES_STEPS}
CRASH_FILE = "crash-at"

CONFIG = '''
# -- crash injection (tests/hubtools/crash.py): SIGKILL at the step named in <workdir>/crash-at
import functools as _ft
import os as _os
import signal as _signal

import gridspawner.backends.host.backend as _host
import gridspawner.backends.host.ledger_claim as _ledger
import gridspawner.backends.host.ssh_transport as _ssh_transport
import gridspawner.backends.host.transport as _transport
import gridspawner.backends.kubernetes.backend as _k8s
import gridspawner.backends.kubernetes.connection as _k8s_connection
import gridspawner.backends.kubernetes.readiness as _k8s_readiness

_CRASH_FILE = _os.path.join(_settings["workdir"], "crash-at")


def _crash(step):
    try:
        with open(_CRASH_FILE) as _f:
            _armed = _f.read().strip()
    except FileNotFoundError:
        return
    if _armed == step:
        _os.unlink(_CRASH_FILE)
        _os.kill(_os.getpid(), _signal.SIGKILL)


def _inject(owner, name, step, *, before=False, when=None, kind=None):
    fn = getattr(owner, name)

    @_ft.wraps(fn)
    async def wrapper(*a, **k):
        armed = f"{kind or a[0].kind}:{step}"
        hit = when is None or when(*a, **k)
        if before and hit:
            _crash(armed)
        result = await fn(*a, **k)
        if not before and hit:
            _crash(armed)
        return result

    setattr(owner, name, wrapper)


_claim_script = _ledger.claim_script


def _claim_script_then_crash(*a, **k):
    _crash("local:after_placement")
    _crash("ssh:after_placement")
    return _claim_script(*a, **k)


_ledger.claim_script = _claim_script_then_crash
_HB = _host.HostBackend
_inject(_HB, "_place_and_claim", "after_claim")
_inject(_HB, "_start", "after_start")
_inject(_transport.LocalTransport, "forward", "after_relay", kind="local")
_inject(_ssh_transport.SSHTransport, "forward", "after_relay", kind="ssh")
_inject(_HB, "launch", "before_return")
_inject(_HB, "stop", "stop_begin", before=True)
_inject(_HB, "stop", "stop_end")

_KB = _k8s.KubernetesBackend
_KC = _k8s_connection.ClusterConnection
_inject(_KC, "create", "after_secret", kind="kubernetes",
        when=lambda self, fn, manifest, launch_id, what, *a, **k: what == "secret")
_inject(_KC, "create", "after_pod", kind="kubernetes",
        when=lambda self, fn, manifest, launch_id, what, *a, **k: what == "pod")
_inject(_k8s_readiness.Readiness, "until_ready", "after_ready", kind="kubernetes")
_inject(_KB, "launch", "before_return")
_inject(_KB, "stop", "stop_begin", before=True)
_inject(_KC, "delete", "stop_pod_deleting", kind="kubernetes", when=lambda self, what, *a, **k: what == "pod")
_inject(_KB, "stop", "stop_end")
'''


def arm(hub, step: str) -> None:
    """The hub dies at ``step`` (``<kind>:<step>``) the next time it passes there."""
    (hub.workdir / CRASH_FILE).write_text(step)


def disarm(hub) -> None:
    (hub.workdir / CRASH_FILE).unlink(missing_ok=True)


def kill_at(hub, step: str, action, timeout: float = 60) -> None:
    """Arm ``step``, run ``action()`` (a REST call that gets there; its connection may break
    when the hub dies) and wait until the hub has died of SIGKILL."""
    arm(hub, step)
    try:
        action()
    except requests.RequestException:
        pass  # the hub died while answering
    deadline = time.monotonic() + timeout
    while hub.process.poll() is None:
        if time.monotonic() > deadline:
            disarm(hub)
            raise AssertionError(f"the hub did not reach {step} within {timeout} s:\n{hub.log()[-3000:]}")
        time.sleep(0.05)
    disarm(hub)
    assert hub.process.returncode == -9, f"the hub ended with {hub.process.returncode}, not SIGKILL at {step}"
