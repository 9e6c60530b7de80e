"""The host backends' explicit values and pure steps: best fit across hosts (`ssh.best_fit`),
what the launch and wait scripts' answers mean (`host.start_answers`), a server's saved
state (`host.saved_state`), the launch spec (`host.launch_env`) — and that nothing under
`gridspawner/backends` passes values through context variables."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import pytest

import gridspawner.backends
from gridspawner.backends.base import AccessDenied, BackendError, LaunchContext, NoCapacity, Unreachable
from gridspawner.backends.host import launch_scripts, scripts
from gridspawner.backends.host.inventory import Inventory
from gridspawner.backends.host.launch_env import launch_spec, server_environment
from gridspawner.backends.host.placement import HostLogin, Placement
from gridspawner.backends.host.refusals import Refusals
from gridspawner.backends.host.saved_state import check_state, claims_of, launch_of, saved_state
from gridspawner.backends.host.settings import HostImage
from gridspawner.backends.host.ssh_pool import Down
from gridspawner.backends.host.start_answers import leftover_pid, listening, started
from gridspawner.backends.host.transport import RunResult
from gridspawner.backends.kubernetes.in_flight import LaunchesInFlight
from gridspawner.backends.local import LocalBackend
from gridspawner.backends.ssh.best_fit import probe_all, rank
from gridspawner.gpu import GPU
from gridspawner.request import LaunchRequest

T4, A10, A100 = 15360, 23028, 81920


def request(gpus: int = 1, gb: int = 0) -> LaunchRequest:
    return LaunchRequest(backend="gpu", backend_kind="ssh", image="base", gpus=gpus, gpu_memory=gb)


def inventory(*sizes: int) -> Inventory:
    return Inventory(gpus=tuple(GPU(i, f"GPU-{i}-{mib}", "card", mib) for i, mib in enumerate(sizes)))


def probed(host: str, *sizes: int) -> tuple[HostLogin, Inventory]:
    return HostLogin(host, "alice"), inventory(*sizes)


def test_rank_puts_the_host_with_the_smallest_fitting_cards_first_and_says_why_others_were_left_out():
    reasons = Refusals()
    results = {"big": probed("big", A100, A100), "small": probed("small", T4, A10), "full": probed("full"),
               "down": Unreachable("down was left out")}
    ranked = rank(["big", "small", "full", "down"], results, request(1, 20), entry="e", hub="h", tolerance=0.07,
                  reasons=reasons)
    assert [c.login.host for c in ranked] == ["small", "big"]
    assert ranked[0].login == HostLogin("small", "alice") and ranked[0].inventory is results["small"][1]
    assert reasons.shortages == ["full has no GPUs"]
    assert [str(f) for f in reasons.failures] == ["down was left out"]


def test_rank_without_gpus_keeps_the_configured_order_of_the_hosts_that_answered():
    reasons = Refusals()
    results = {"a": probed("a", A100), "b": AccessDenied("no account on b"), "c": probed("c")}
    ranked = rank(["a", "b", "c"], results, request(0), entry="e", hub="h", tolerance=0.07, reasons=reasons)
    assert [c.login.host for c in ranked] == ["a", "c"]
    assert all(c.inventory is None for c in ranked)  # no claim follows: nothing to reuse
    assert isinstance(reasons.error(), AccessDenied)


def test_probe_all_leaves_out_a_host_known_to_be_down_while_others_answer():
    async def run():
        gate = asyncio.Event()

        async def answers():
            return "inventory"

        async def hangs():
            await gate.wait()
            return "late"

        async def refuses():
            raise AccessDenied("refused")

        down = Down(since=time.monotonic() - 30, failed_at=time.monotonic(), backoff=1.0, error="timed out")
        out = await probe_all({"a": answers, "b": hangs, "c": refuses}, lambda h: down if h == "b" else None)
        gate.set()
        return out

    out = asyncio.run(run())
    assert out["a"] == "inventory" and isinstance(out["c"], AccessDenied)
    assert isinstance(out["b"], Unreachable)
    assert str(out["b"]).startswith("b was left out: it has not been answering for 30 s: timed out")


def test_probe_all_raises_what_is_no_backend_error():
    async def broken():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        asyncio.run(probe_all({"a": broken}, lambda h: None))


def spec(tmp_path: Path, mounts: tuple = ()):
    return launch_scripts.LaunchSpec(session_root=str(tmp_path), slug="alice-1", notebook_dir=str(tmp_path / "nb"), env={},
                              cmd=("true",), mounts=mounts, data_link="data" if mounts else None)


def test_start_answers(tmp_path):
    s = spec(tmp_path)
    assert started(RunResult(0, "@@pid 4242\n", ""), s, (), "a").pid == 4242
    with pytest.raises(BackendError, match="could not start the server on a: no such file"):
        started(RunResult(scripts.EXIT_NO_START, "", "no such file\n"), s, (), "a")
    with pytest.raises(BackendError, match=r"GPU claim of this launch on a was removed .*\(GPU-1\); try again"):
        started(RunResult(scripts.EXIT_CLAIM_LOST, "@@claim-lost GPU-1\n", ""), s, (), "a")
    with pytest.raises(BackendError, match=r"previous run on a cannot be unmounted \(/s/data/x\)"):
        started(RunResult(scripts.EXIT_MOUNTS_LEFT, "@@mounts-left /s/data/x\n", ""), s, (), "a")
    assert leftover_pid(RunResult(scripts.EXIT_BUSY, "@@busy 77\n", "")) == 77
    assert leftover_pid(RunResult(scripts.EXIT_BUSY, "", "")) is None
    assert leftover_pid(RunResult(0, "@@pid 1\n", "")) is False
    assert listening(RunResult(0, "@@ready\n", "")) is True
    assert listening(RunResult(0, "", "")) is False
    with pytest.raises(BackendError, match="exited during start-up; the end of its log:\nTraceback"):
        listening(RunResult(0, "@@dead\nTraceback\n", ""))


def test_saved_state_round_trip_and_checks():
    gpus = (GPU(0, "GPU-a", "NVIDIA A10", A10),)
    placement = Placement(HostLogin("gpu-7", "alice"), gpus, ("k@1",))
    s = launch_scripts.LaunchSpec(session_root="/r", slug="alice-1", notebook_dir="/nb", env={}, cmd=("true",))
    state = saved_state(placement, s, 4242, "0.0.0.0", 40001, "/l", None, {"account": "alice"})
    assert (state["host"], state["session_dir"], state["socket"], state["account"]) == (
        "gpu-7", "/r/alice-1", "/r/alice-1/" + scripts.SOCKET_NAME, "alice")
    assert "data_link" not in state
    launch = launch_of(check_state(state, ("gpu-7",), "gpu"), "0.0.0.0", 40002)
    assert launch.url == "http://127.0.0.1:40002" and launch.gpus == gpus and launch.state["relay_port"] == 40002
    with pytest.raises(BackendError, match="no longer configured"):
        check_state(state, ("gpu-8",), "gpu")
    with pytest.raises(BackendError, match="incomplete"):
        check_state({"host": "gpu-7"}, ("gpu-7",), "gpu")
    assert claims_of({"ledger_claims": ["k@1", "../x", "", 3, ".."]}) == ("k@1",)


def test_the_launch_gets_its_gpus_as_a_list_until_the_environment_is_built():
    settings = LocalBackend.parse_settings("here", {"session_root": "/tmp/gs-x"}, "k")
    gpus = (GPU(1, "GPU-b", "NVIDIA A10", A10), GPU(3, "GPU-d", "Tesla T4", T4))
    placement = Placement(HostLogin("here", "hub"), gpus, ("b@1", "d@1"))
    assert placement.gpu_uuids == ("GPU-b", "GPU-d")
    env, _ = server_environment({"JUPYTERHUB_API_TOKEN": "t"}, (), (), placement, "/tmp/gs-x/alice-1")
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-b,GPU-d"
    ctx = LaunchContext(user="alice", server_name="", slug="alice-1", env={}, cmd=("jupyterhub-singleuser",),
                        args=("--debug",), log=logging.getLogger("test"))
    s = launch_spec(settings, ctx, HostImage(), placement, session_root="/tmp/gs-x", slug="alice-1", entry="e",
                    env=env, hub="hub-a", backend="here")
    assert (s.ledger_entry, s.ledger_claims, s.cmd) == ("e", ("b@1", "d@1"), ("jupyterhub-singleuser", "--debug"))
    bare = launch_spec(settings, ctx, HostImage(), Placement(placement.login), session_root="/tmp/gs-x",
                       slug="alice-1", entry="e", env=env, hub="hub-a", backend="here")
    assert (bare.ledger_dir, bare.ledger_entry, bare.ledger_claims) == (None, None, ())


def test_launches_in_flight():
    flying = LaunchesInFlight()
    with flying.launching("pod-a"):
        with flying.launching("pod-a"):
            assert flying["pod-a"] == 2 and dict(flying) == {"pod-a": 2}
        assert flying.get("pod-a") == 1
    assert flying["pod-a"] == 0 and len(flying) == 0 and not flying.get("pod-b")


def test_no_context_variables_in_the_backends():
    """Values travel as arguments (a HostLogin, a Placement, a saved state), never through
    context variables that a caller cannot see."""
    root = Path(gridspawner.backends.__file__).parent
    imports = re.compile(r"^\s*(?:import\s+contextvars|from\s+contextvars\s+import)\b", re.M)
    files = list(root.rglob("*.py"))
    assert len(files) > 40
    for path in files:
        assert not imports.search(path.read_text()), f"{path.relative_to(root)} imports contextvars"


def test_no_capacity_is_said_when_hosts_answered_and_nothing_fits():
    reasons = Refusals()
    rank(["a"], {"a": probed("a", T4)}, request(2), entry="e", hub="h", tolerance=0.07, reasons=reasons)
    assert isinstance(reasons.error(), NoCapacity) and "2 GPUs requested, 1 free on a" in str(reasons.error())
