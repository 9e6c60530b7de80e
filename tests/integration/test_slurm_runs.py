"""Notebook runs on the Slurm backend against the real Slurm lab (tests/slurmlab: slurmctld,
slurmd on two GPU nodes and a login node's sshd in network namespaces), with real papermill
and ipykernel running as the lab's unprivileged account: a parameterised run succeeds with
its executed notebook and a declared output; a failing notebook's cell and error are read
back; a running run is cancelled (scancel: its job ends CANCELLED, its GPU is free, what it
wrote so far comes back); Slurm's time limit (the profile's max run time) ends a run as
timed out; the runs executor's look for orphans cancels a run job no run uses, which the
hub's own look never touches; and through the runs service (real runs table and run store),
a run survives a restart of the service mid-run and is collected with its usage record."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from slurmlab import available  # noqa: E402
from test_slurm_backend import SESSION_ROOTS, backend, context, remove_session_roots, settings  # noqa: E402,F401

from gridspawner.backends.slurm import SlurmBackend  # noqa: E402
from gridspawner.request import LaunchRequest  # noqa: E402
from gridspawner.runs.outcome import judge  # noqa: E402
from gridspawner.runs.papermill_cmd import OUTPUT, batch_job  # noqa: E402
from gridspawner.runs.runtime import RunsRuntime  # noqa: E402
from gridspawner.runs.submit import build_draft  # noqa: E402
from gridspawner.usage.config import build_usage_config  # noqa: E402
from gridspawner.usage.runtime import UsageRuntime  # noqa: E402

pytestmark = [pytest.mark.skipif(available() is not None, reason=available() or ""), pytest.mark.timeout(400)]

VENV_BIN = str(Path(sys.executable).parent)


def notebook(body: str, params: str = "name = 'nobody'\ncount = 1") -> bytes:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(b) for b in body.split("\n#--\n")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb).encode()


def run_request(lab, gpus: int = 0, gpu_type: str | None = None, max_runtime: float | None = None) -> LaunchRequest:
    image = SlurmBackend.parse_image("py", {"env": {"PATH": f"{lab.bin}:{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"}}, "img")
    return LaunchRequest(backend="hpc", backend_kind="slurm", image="py", gpus=gpus, gpu_memory=0, gpu_type=gpu_type,
                         image_settings=image, max_runtime=max_runtime)


async def until_ended(b: SlurmBackend, launch, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (code := await b.poll_batch(launch)) is None:
        assert time.monotonic() < deadline, "the run did not end"
        await asyncio.sleep(0.5)
    return code


def text_of(output: bytes) -> str:
    nb = json.loads(output)
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", ()))


def gres_used(lab, node: str) -> str:
    return lab.slurm("sinfo", "-h", "-N", "-n", node, "-O", "GresUsed:50").stdout.strip()


async def test_a_parameterised_run_succeeds_with_its_notebook_and_an_output(slurm_lab):
    lab = slurm_lab
    b = backend(lab, poll_interval=0.5)
    body = ("import os\nprint('hello', name, count * 2)\nprint('gpus', os.environ.get('CUDA_VISIBLE_DEVICES'))\n"
            "open('result.txt', 'w').write(f'{name}:{count}')")
    job = batch_job("00aa11bb22cc33dd", notebook(body), {"name": "slurm-param-7731", "count": 21})
    job = dataclasses.replace(job, outputs=(OUTPUT, "result.txt"))
    messages: list[str] = []
    try:
        launch = await b.start_batch(context(lab, "run-00aa11bb22cc33dd", messages), run_request(lab, 1, "t4"), job)
        st = launch.state
        job_id = st["job_id"]
        assert launch.url == "" and st["batch"] and st["node"] == "gpu2" and [g.name for g in launch.gpus] == ["Tesla T4"]
        assert any(m == f"job {job_id} submitted" for m in messages), messages
        shown = lab.job(job_id)
        assert shown["tres_per_node"] == "gres:gpu:t4:1" and shown["comment"] == ""  # no hub id: no comment
        # what Slurm stores of the job: paths and papermill's argv, none of the parameters
        stored = lab.slurm("scontrol", "write", "batch_script", str(job_id), "-").stdout
        assert "papermill input.ipynb output.ipynb" in stored and "slurm-param-7731" not in stored
        code = await until_ended(b, launch, 180)
        result = await b.finish_batch(launch)
        status, error = judge(code, result.files.get(OUTPUT), result.log_tail, "py")
        assert status == "succeeded" and code == 0 and result.exit_code == 0, (code, error, result.log_tail[-3000:])
        assert result.files["result.txt"] == b"slurm-param-7731:21"
        text = text_of(result.files[OUTPUT])
        assert "hello slurm-param-7731 42" in text and "gpus 0" in text, text
        assert lab.job(job_id)["job_state"] == "COMPLETED"
        # the run directory is gone; a second finish finds nothing
        assert not list(lab.home().glob(".gridspawner/runs/run-00aa11bb22cc33dd*"))
        assert (await b.finish_batch(launch)).files == {}
    finally:
        await b.close()


async def test_a_failing_notebook_shows_its_cell_and_error(slurm_lab):
    lab = slurm_lab
    b = backend(lab, poll_interval=0.5)
    job = batch_job("11aa11bb22cc33dd", notebook("x = 1\n#--\nraise ValueError('bad input ' + name)"), {"name": "q"})
    try:
        launch = await b.start_batch(context(lab, "run-11aa11bb22cc33dd"), run_request(lab), job)
        code = await until_ended(b, launch, 180)
        result = await b.finish_batch(launch)
        status, error = judge(result.exit_code if result.exit_code is not None else code, result.files.get(OUTPUT),
                              result.log_tail, "py")
        assert status == "failed" and result.exit_code not in (0, None), (code, result.log_tail[-2000:])
        assert (error["cell_index"], error["ename"], error["evalue"]) == (2, "ValueError", "bad input q")
        assert lab.job(launch.state["job_id"])["job_state"] == "FAILED"
    finally:
        await b.close()


async def test_cancel_of_a_running_run_ends_its_job_and_frees_its_gpu(slurm_lab):
    lab = slurm_lab
    b = backend(lab, poll_interval=0.5)
    body = "print('sta' + 'rted', flush=True)\n#--\nimport time\ntime.sleep(600)"
    job = batch_job("22aa11bb22cc33dd", notebook(body), {})
    try:
        launch = await b.start_batch(context(lab, "run-22aa11bb22cc33dd"), run_request(lab, 1, "a100"), job)
        job_id = launch.state["job_id"]
        assert launch.state["node"] == "gpu1" and "a100:1" in gres_used(lab, "gpu1")
        deadline = time.monotonic() + 120  # papermill saved the first cell's output
        while "started" not in lab.run(f"cat {launch.state['session_dir']}/work/{OUTPUT} 2>/dev/null").stdout:
            assert time.monotonic() < deadline, "the notebook did not start"
            await asyncio.sleep(0.5)
        assert await b.poll_batch(launch) is None
        await b.stop(launch, now=True)  # the executor's cancel: stop, then finish
        result = await b.finish_batch(launch)
        assert lab.job(job_id)["job_state"] == "CANCELLED"
        assert "a100:0" in gres_used(lab, "gpu1"), gres_used(lab, "gpu1")
        assert "started" in text_of(result.files[OUTPUT])  # kept what it wrote
        assert judge(result.exit_code, result.files.get(OUTPUT), result.log_tail, "py", cancelled=True)[0] == "cancelled"
        assert lab.run("pgrep -u $(id -u) -f '[i]pykernel_launcher' || echo none", host="gpu1").stdout.strip() == "none"
    finally:
        await b.close()


async def test_slurm_ends_a_run_at_its_max_run_time(slurm_lab):
    """max_runtime 60 s → ``--time=1``: Slurm ends the jobs (TIMEOUT), the runs read timed out.
    Two runs polled together cost one squeue per round (the board's), as servers do."""
    lab = slurm_lab
    b = backend(lab, poll_interval=1)
    launches = []
    try:
        for i in range(2):
            job = batch_job(f"33aa11bb22cc33d{i}", notebook("import time\ntime.sleep(600)"), {})
            launches.append(await b.start_batch(context(lab, f"run-33aa11bb22cc33d{i}"), run_request(lab, max_runtime=60), job))
        for launch in launches:
            limit = lab.job(launch.state["job_id"])["time_limit"]  # minutes; a dict in newer Slurm
            assert (limit if isinstance(limit, int) else limit["number"]) == 1
        t0, before, rounds = time.monotonic(), b.commands.get("squeue", 0), 0
        codes: list = [None, None]
        while None in codes:
            assert time.monotonic() - t0 < 200, "Slurm did not end the runs"
            rounds += 1
            polled = await asyncio.gather(*(b.poll_batch(la) for la, c in zip(launches, codes) if c is None))
            codes = [c if c is not None else polled.pop(0) for c in codes]
            await asyncio.sleep(0.5)
        assert b.commands["squeue"] - before <= rounds, (b.commands, rounds)
        assert time.monotonic() - t0 > 30 and 0 not in codes
        for launch in launches:
            result = await b.finish_batch(launch)
            assert result.timed_out and "TIMEOUT: reached its time limit" in result.log_tail
            assert judge(result.exit_code, result.files.get(OUTPUT), result.log_tail, "py",
                         timed_out=result.timed_out)[0] == "timed_out"
    finally:
        await b.close()


async def test_the_runs_look_for_orphans_cancels_a_run_job_no_run_uses(slurm_lab):
    """A service killed after sbatch: the executor's look (the runs hub id) cancels the job
    once it is seen unused for ``grace``; the hub's look (its own id) leaves it alone."""
    lab = slurm_lab
    runs = backend(lab)
    runs.hub_id = "hub-r+runs"
    hub = backend(lab)
    hub.hub_id = "hub-r"
    job = batch_job("44aa11bb22cc33dd", notebook("import time\ntime.sleep(600)"), {})
    try:
        launch = await runs.start_batch(context(lab, "run-44aa11bb22cc33dd"), run_request(lab), job)
        job_id = launch.state["job_id"]
        assert lab.job(job_id)["comment"] == "gridspawner hub=hub-r+runs backend=hpc kind=run"
        for _ in range(2):
            seen = await hub.reconcile(lambda: [], grace=0.3)
            assert seen.reclaimed == [] and seen.kept == []
            await asyncio.sleep(0.4)
        assert (await runs.reconcile(lambda: [launch.state], grace=0.3)).kept == []  # a run uses it
        first = await runs.reconcile(lambda: [], grace=0.3)
        assert first.reclaimed == [] and len(first.kept) == 1
        await asyncio.sleep(0.4)
        second = await runs.reconcile(lambda: [], grace=0.3)
        assert second.reclaimed == [f"job {job_id} of {lab.user}: cancelled, no server of this hub uses it"]
        assert lab.wait_job(job_id, {"CANCELLED"}, timeout=15)
        await runs.finish_batch(launch)
    finally:
        await runs.close()
        await hub.close()


async def test_the_runs_service_runs_a_notebook_on_slurm_across_a_restart(slurm_lab, tmp_path):
    lab = slurm_lab
    db = f"sqlite:///{tmp_path}/usage.sqlite"
    usage = UsageRuntime(build_usage_config(), db)
    usage.upgrade_now()
    path = f"{lab.bin}:{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
    catalog = {"backends": {"hpc": {"kind": "slurm", **settings(lab, poll_interval=0.5)}},
               "images": {"py": {"slurm": {"env": {"PATH": path}}}}, "max_gpus": 1,
               "default_options": {"backend": "hpc", "image": "py"},
               "default_policy": {"backends": "*", "images": "*", "max_gpus": 1}}
    runs_settings = {"catalog": catalog, "hub_id": "slurm-hub", "runs_dir": str(tmp_path / "runs"),
                     "runs_poll_interval": 0.5, "runs_queue_retry": 0.5}
    runs = RunsRuntime(runs_settings, usage.store.engine, db, usage)
    await runs.start()
    try:
        nb = notebook("import time\ntime.sleep(float(seconds))\nprint('done', name)", "seconds = 0\nname = 'x'")
        draft = build_draft({"notebook": nb, "options": {"gpus": 1}, "parameters": {"seconds": 6, "name": "svc-31"}},
                            runs.catalog, [], "alice")
        run_id = await runs.submit(draft, "alice", [])
        row = await wait_status(runs, run_id, ("running",), 120)
        state = json.loads(row["launch_state"])
        assert row["host"] in ("gpu1", "gpu2") and row["gpu_model"] in ("Tesla T4", "NVIDIA A100-SXM4-80GB")
        assert lab.job(state["job_id"])["comment"] == "gridspawner hub=slurm-hub+runs backend=hpc kind=run"
        await asyncio.wait_for(runs.close(), 30)  # the service goes away; the job goes on
        runs = RunsRuntime(runs_settings, usage.store.engine, db, usage)
        await runs.start()
        row = await wait_status(runs, run_id, ("succeeded", "failed", "timed_out", "cancelled"), 120)
        assert row["status"] == "succeeded" and "done svc-31" in row["log_tail"], row
        assert "done svc-31" in text_of(await runs.files.read(run_id, OUTPUT))
        assert lab.job(state["job_id"])["job_state"] == "COMPLETED"
        assert not list(lab.home().glob(f".gridspawner/runs/run-{run_id}*"))
    finally:
        await asyncio.wait_for(runs.close(), 30)
        usage.store.close()


async def wait_status(runs: RunsRuntime, run_id: str, statuses, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await runs.store.get(run_id)
        if row["status"] in statuses:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} still {row['status']} after {timeout} s: {row}")
