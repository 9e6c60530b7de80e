"""Notebook runs on an SSH host of the lab (tests/sshhosts: a netns sshd host), as batch
jobs of the ssh backend with real papermill: a run whose parameters are bound to an S3 input
directory (a moto server on the lab's network, copied in by rclone) and to a file of an SSH
storage server (another lab host only the GPU host reaches, mounted with sshfs) succeeds, its
outputs come back over the SSH connection, and nothing is left on the host (mounts, session,
GPU claim). Needs the SSH lab's and the mount tests' tools (see test_mounts_host_backend)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostmounts import ssh_context, missing, mounts_below, s3_mount  # noqa: E402
from hostmounts.fixtures import lab, lab_s3, remote  # noqa: E402,F401

from gridspawner.backends.host.placement import HostLogin  # noqa: E402
from gridspawner.backends.ssh.backend import SSHBackend  # noqa: E402
from gridspawner.mounts.resolved import ResolvedMount, SSHSecret, SSHSource  # noqa: E402
from gridspawner.mounts.specs import MountSpec  # noqa: E402
from gridspawner.request import LaunchRequest  # noqa: E402
from gridspawner.runs.outcome import judge  # noqa: E402
from gridspawner.runs.papermill_cmd import OUTPUT, batch_job  # noqa: E402
from gridspawner.runs.submit import check_bindings  # noqa: E402

pytestmark = pytest.mark.timeout(300)

if missing():
    pytest.skip(missing(), allow_module_level=True)

VENV_BIN = str(Path(sys.executable).parent)


def notebook() -> bytes:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("inputs = ''\nnotes = ''\nscale = 1")
    cell.metadata["tags"] = ["parameters"]
    body = ("import os\n"
            "listing = sorted(os.listdir(inputs))\n"
            "print('s3 dir', listing, open(os.path.join(inputs, 'hello.txt')).read())\n"
            "print('ssh file', open(notes).read().strip(), scale * 2)\n"
            "print('gpus', os.environ.get('CUDA_VISIBLE_DEVICES'))")
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb).encode()


async def test_a_run_on_an_ssh_host_with_s3_and_ssh_inputs_bound_to_parameters(remote, lab, lab_s3):
    st = lab.hosts["st"]
    export = remote.root / "export" / "alice"
    export.mkdir(parents=True)
    (export / "notes.txt").write_text("on the storage server")
    s3_hm, s3_spec = s3_mount(lab_s3.url, 0, "inputs", mode="copy", prefix="alice/in/")
    ssh_hm = ResolvedMount(index=1, target="nas", mode="mount", read_only=True,
                           source=SSHSource(address=st.address, user="root", path=str(export), port=st.port,
                                            known_hosts=lab.known_hosts.read_text()),
                           secret=SSHSecret(private_key=lab.client_key.read_text()))
    ssh_spec = MountSpec(type="ssh", target="nas", mode="mount", read_only=True, host="nas", path=str(export),
                         user="root", auth="key")
    image = SSHBackend.parse_image("py", {"env": {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"}}, "img")
    request = LaunchRequest(backend="gpu", backend_kind="ssh", image="py", gpus=1, gpu_memory=0,
                            image_settings=image, mounts=(s3_spec, ssh_spec))
    errors: dict = {}
    _, paths = check_bindings({"inputs": 0, "notes": {"mount": 1, "path": "notes.txt"}}, request, (), "data", errors)
    assert errors == {} and paths == {"inputs": "data/inputs", "notes": "data/nas/notes.txt"}

    backend = remote.backend()
    ctx = ssh_context([(s3_hm, s3_spec), (ssh_hm, ssh_spec)], tool="sshfs")
    ctx = type(ctx)(**{**ctx.__dict__, "env": {}, "slug": "run-0123456789abcdef"})
    job = batch_job("0123456789abcdef", notebook(), {"scale": 21, **paths})
    launch = await backend.start_batch(ctx, request, job)
    assert launch.url == "" and launch.state["batch"] and launch.gpus
    sdir = launch.state["session_dir"]
    deadline = time.monotonic() + 180
    while (code := await backend.poll_batch(launch)) is None:
        assert time.monotonic() < deadline, "the run did not end"
        await asyncio.sleep(0.3)
    result = await backend.finish_batch(launch)
    status, error = judge(code, result.files.get(OUTPUT), result.log_tail, "py")
    assert status == "succeeded", (code, error, result.log_tail[-3000:])
    out = json.loads(result.files[OUTPUT])
    text = "".join("".join(o.get("text", "")) for c in out["cells"] for o in c.get("outputs", ()))
    assert "s3 dir ['hello.txt'] hello from s3" in text and "ssh file on the storage server 42" in text
    assert f"gpus {launch.gpus[0].uuid}" in text
    # nothing left on the host: no mount, no session directory, no GPU claim
    r = await backend.ssh_transport(HostLogin("a", "root")).run(
        f"cat /proc/self/mountinfo; ls {sdir} 2>&1; ls {remote.root / 'ledger'} 2>&1\n", 10)
    assert mounts_below(sdir, r.stdout) == [] and "No such file" in r.stdout
    assert not [p for p in (remote.root / "ledger").glob("*") if not p.name.startswith(".")]
    # finishing again is harmless (idempotent)
    again = await backend.finish_batch(launch)
    assert again.files == {}


async def test_a_run_through_the_executor_on_an_ssh_host(remote, lab):  # noqa: F811
    """The runs service's own path on an SSH host: submit → queued → running → succeeded,
    the executed notebook and log back in the run store, the GPU claim and session gone,
    a usage record of kind run."""
    import tempfile

    from gridspawner.runs.files import OUTPUT as STORED_OUTPUT
    from gridspawner.runs.runtime import RunsRuntime
    from gridspawner.runs.submit import build_draft
    from gridspawner.usage.config import build_usage_config
    from gridspawner.usage.runtime import UsageRuntime

    from test_runs_local import notebook as simple_notebook

    host = lab.host_entry("a", nvidia_smi=["env", "FAKE_NVIDIA_SMI_GPUS=NVIDIA A100-SXM4-80GB,81920",
                                           str(Path(__file__).resolve().parents[1] / "fixtures" / "fake_nvidia_smi")])
    catalog = {"backends": {"gpu": {"kind": "ssh", **lab.backend_settings([host], remote.root, remote.session_root)}},
               "images": {"py": {"ssh": {"env": {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"}}}},
               "max_gpus": 1, "default_options": {"backend": "gpu", "image": "py"},
               "default_policy": {"backends": "*", "images": "*", "max_gpus": 1}}
    root = Path(tempfile.mkdtemp(prefix="gsrs-"))
    db = f"sqlite:///{root}/usage.sqlite"
    usage = UsageRuntime(build_usage_config(), db)
    usage.upgrade_now()
    runs = RunsRuntime({"catalog": catalog, "hub_id": "test-hub", "runs_dir": str(root / "runs"),
                        "runs_poll_interval": 0.5, "runs_queue_retry": 0.5}, usage.store.engine, db, usage)
    await runs.start()
    try:
        nb = simple_notebook("import os\nprint('value is', value * 2, os.environ['CUDA_VISIBLE_DEVICES'])")
        draft = build_draft({"notebook": nb, "options": {"gpus": 1}, "parameters": {"value": 21}}, runs.catalog, [], "alice")
        run_id = await runs.submit(draft, "alice", [])
        seen, deadline = set(), time.monotonic() + 180
        while (row := await runs.store.get(run_id))["status"] not in ("succeeded", "failed", "cancelled", "timed_out"):
            seen.add(row["status"])
            assert time.monotonic() < deadline, row
            await asyncio.sleep(0.1)
        assert row["status"] == "succeeded", (row["error"], row["log_tail"][-3000:])
        assert "running" in seen and row["host"] == "a" and row["gpu_model"].startswith("NVIDIA A100")
        out = json.loads(await runs.files.read(run_id, STORED_OUTPUT))
        text = "".join("".join(o.get("text", "")) for c in out["cells"] for o in c.get("outputs", ()))
        assert "value is 42 GPU-" in text and "value is 42" in row["log_tail"]
        record = await usage.store.record(row["record_id"])
        assert record["kind"] == "run" and record["gpus"] == 1 and record["stop_reason"] == "ended"
        # nothing left on the host: no session directory, no GPU claim
        sdir = json.loads(row["launch_state"])["session_dir"]
        backend = runs.backends["gpu"]
        r = await backend.ssh_transport(HostLogin("a", "root")).run(f"ls {sdir} 2>&1\n", 10)
        assert "No such file" in r.stdout
        assert not [p for p in (remote.root / "ledger").glob("*") if not p.name.startswith(".")]
    finally:
        await asyncio.wait_for(runs.close(), 30)
        usage.store.close()
