"""Notebook runs on the local backend, end to end below the REST API: real papermill and
ipykernel, real processes, the real GPU ledger (fake nvidia-smi: ONE GPU, so a second GPU
run queues), the real runs table and run store (SQLite), usage records."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from hubtools import runs_lab  # tests/ is on sys.path
from sshhosts.accounts import let_accounts_run, remove_accounts, run_prefix

from gridspawner.runs.executor import Recorder
from gridspawner.runs.files import OUTPUT
from gridspawner.runs.runtime import RunsRuntime
from gridspawner.runs.submit import build_draft
from gridspawner.usage.config import build_usage_config
from gridspawner.usage.runtime import UsageRuntime

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAKE_SMI = str(FIXTURES / "fake_nvidia_smi")
ONE_GPU = "NVIDIA A100-SXM4-80GB,81920"


def notebook(body: str, params: str = "seconds = 0.0\nvalue = 1\nout = 'x'") -> bytes:
    return runs_lab.notebook(body, params)


def lab_root() -> Path:
    """The lab's directory: traversable (never listable) by the accounts runs run as."""
    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="gsr-"))
    os.chmod(root, 0o711)
    return root


class Lab:
    """The runs service with one local backend. As root, the product default: each user's
    runs run as the user's own Unix account (made at the first run with a prefix unique to
    this lab, removed by `close`)."""

    def __init__(self, root: Path, max_runtime=None, **runs):
        self.root = root
        self.prefix = run_prefix()
        self.db = f"sqlite:///{root}/usage.sqlite"
        self.usage = UsageRuntime(build_usage_config(), self.db)
        self.usage.upgrade_now()
        self.catalog = {
            "backends": {"here": {"kind": "local", "session_root": str(root / "s"), "ledger_dir": str(root / "l"),
                                  "notebook_dir": str(root / "nb" / "{username}"),
                                  "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_GPUS={ONE_GPU}", FAKE_SMI],
                                  "interrupt_timeout": 2, "term_timeout": 2, "kill_timeout": 2,
                                  **({"account": self.prefix + "{username}", "create_accounts": True}
                                     if os.geteuid() == 0 else {})}},
            "images": {"base": {"local": {}}},
            "max_gpus": 1, "default_options": {"backend": "here", "image": "base"},
            "default_policy": {"backends": "*", "images": "*", "max_gpus": 1},
        }
        if max_runtime:
            self.catalog["max_runtime"] = max_runtime
        self.runs_settings = {"catalog": self.catalog, "hub_id": "test-hub", "runs_dir": str(root / "runs"),
                              "runs_poll_interval": 0.5, "runs_queue_retry": 0.5, **runs}
        self.runs = self.new_runtime()

    def account(self, user: str) -> str:
        return self.prefix + user

    async def close(self) -> None:
        # (awaited in a task of its own: awaited directly, a close in pytest-asyncio's teardown
        # has been seen to wait forever, which a plain asyncio.run never does)
        await asyncio.wait_for(self.runs.close(), 30)
        self.usage.store.close()
        if os.geteuid() == 0:
            remove_accounts(self.prefix)
        shutil.rmtree(self.root, ignore_errors=True)

    def new_runtime(self) -> RunsRuntime:
        return RunsRuntime(self.runs_settings, self.usage.store.engine, self.db, self.usage)

    async def submit(self, nb: bytes, params=None, gpus=1, user="alice", **options) -> str:
        return await runs_lab.submit(self.runs, nb, params, gpus, user, **options)

    async def wait(self, run_id: str, statuses, timeout=120.0) -> dict:
        return await runs_lab.wait(self.runs, run_id, statuses, timeout, 0.05)

    def ledger(self) -> list[str]:
        d = self.root / "l"
        return [p.name for p in d.iterdir() if not p.name.startswith(".")] if d.exists() else []

    def sessions(self) -> list[str]:
        d = self.root / "s"
        return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.fixture
async def lab():
    let_accounts_run(sys.executable)  # runs of per-user accounts start the test's Python
    lab = Lab(lab_root())
    await lab.runs.start()
    yield lab
    await lab.close()


def gone(pid: int) -> bool:
    """No such process, or a zombie (a container's init may not reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


SLEEPER = "import time, os\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(seconds)\nprint('done', value)"


async def test_a_parameterised_run_succeeds_with_its_outputs_and_a_usage_record(lab):
    run_id = await lab.submit(notebook("import os\nprint('value is', value * 2, os.environ['CUDA_VISIBLE_DEVICES'])"),
                              {"value": 21})
    row = await lab.wait(run_id, ("succeeded", "failed"))
    assert row["status"] == "succeeded", row
    out = json.loads(await lab.runs.files.read(run_id, OUTPUT))
    texts = "".join("".join(o.get("text", "")) for c in out["cells"] for o in c.get("outputs", ()))
    assert "value is 42 GPU-" in texts  # the parameter reached the notebook; the GPU was placed
    assert row["host"] and row["gpu_model"].startswith("NVIDIA A100") and row["started_at"] and row["finished_at"]
    assert "value is 42" in row["log_tail"]  # papermill --log-output
    assert lab.ledger() == [] and lab.sessions() == []  # GPU freed, session removed
    record = await lab.usage.store.record(row["record_id"])
    assert record["kind"] == "run" and record["run_id"] == run_id and record["gpus"] == 1
    assert record["stopped_at"] and record["stop_reason"] == "ended"


async def test_a_failing_notebook_names_its_cell_and_error(lab):
    run_id = await lab.submit(notebook("print('before the error')\nx = 1 / 0"), gpus=0)
    row = await lab.wait(run_id, ("succeeded", "failed"))
    assert row["status"] == "failed"
    error = json.loads(row["error"])
    assert error["cell_index"] == 1 and error["ename"] == "ZeroDivisionError" and "division by zero" in error["evalue"]
    assert "before the error" in row["log_tail"]
    assert await lab.runs.files.read(run_id, OUTPUT)  # the executed notebook is kept for reading


async def test_no_papermill_in_the_environment_is_named(lab):
    empty = lab.root / "bin"  # (where the run's account may look)
    empty.mkdir(mode=0o755)
    await lab.runs.close()  # the image's env replaces PATH: no papermill there
    lab.catalog["images"]["base"] = {"local": {"env": {"PATH": f"{empty}:/usr/bin:/bin"}}}
    lab.runs = lab.new_runtime()
    await lab.runs.start()
    row = await lab.wait(await lab.submit(notebook("1"), gpus=0), ("succeeded", "failed"))
    assert row["status"] == "failed" and "needs papermill and ipykernel" in json.loads(row["error"])["message"]


async def test_queued_run_starts_when_the_gpu_is_freed_and_cancel_works(lab):
    first = await lab.submit(notebook(SLEEPER), {"seconds": 3.0})
    await lab.wait(first, ("running",))
    second = await lab.submit(notebook(SLEEPER), {"seconds": 60.0})
    third = await lab.submit(notebook(SLEEPER), {"seconds": 0.0})
    await asyncio.sleep(1.0)
    assert (await lab.runs.store.get(second))["status"] == "queued"
    queue = [r["id"] for r in await lab.runs.store.queued("here")]
    assert queue == [second, third]  # FIFO: positions 1 and 2
    # the first ends: the second (not the third) starts, soon after the release
    done = await lab.wait(first, ("succeeded", "failed"), 60)
    assert done["status"] == "succeeded"
    running = await lab.wait(second, ("running",), 10)
    # started within about a second of the release (finished_at: right after the GPU was freed)
    assert running["started_at"] - done["finished_at"] < 1.2
    # cancel the queued one: it never starts
    await lab.runs.store.move(third, ("queued",), status="cancelled", cancel_requested=1, cancelled_by="alice")
    # cancel the running one: its process goes, its GPU is freed
    work = lab.root / "s" / f"run-{second}" / "work" / "pid"
    for _ in range(100):
        if work.exists() and work.read_text():
            break
        await asyncio.sleep(0.1)
    pid = int(work.read_text())
    await lab.runs.store.move(second, ("running",), cancel_requested=1, cancelled_by="alice")
    await lab.runs.executor.cancel(second)
    row = await lab.wait(second, ("cancelled",), 30)
    assert row["status"] == "cancelled"
    assert gone(pid)  # the kernel (in a session of its own) went with the job
    assert lab.ledger() == [] and lab.sessions() == []
    assert (await lab.runs.store.get(third))["status"] == "cancelled"
    record = await lab.usage.store.record(row["record_id"])
    assert record["stop_reason"] == "user"


async def test_a_restart_of_the_service_keeps_the_run_and_collects_it(lab):
    run_id = await lab.submit(notebook(SLEEPER), {"seconds": 4.0, "value": 7})
    await lab.wait(run_id, ("running",))
    await lab.runs.close()  # the service goes away; the run goes on
    lab.runs = lab.new_runtime()
    await lab.runs.start()
    row = await lab.wait(run_id, ("succeeded", "failed"), 60)
    assert row["status"] == "succeeded" and "done 7" in row["log_tail"]
    assert lab.ledger() == [] and lab.sessions() == []


async def test_a_run_whose_usage_record_a_restart_cut_off_gets_it_on_recovery(lab):
    """The service stopped between marking a run running and opening its usage record (here:
    a first service that keeps no records): the restarted service opens it, so the run's
    GPU time is not lost from usage."""
    lab.runs.executor.recorder = Recorder()
    run_id = await lab.submit(notebook(SLEEPER), {"seconds": 4.0, "value": 7})
    row = await lab.wait(run_id, ("running",))
    assert not row.get("record_id")
    await lab.runs.close()
    lab.runs = lab.new_runtime()
    await lab.runs.start()
    row = await lab.wait(run_id, ("succeeded", "failed"), 60)
    assert row["status"] == "succeeded", row
    record = await lab.usage.store.record(row["record_id"])
    assert record["kind"] == "run" and record["run_id"] == run_id and record["gpus"] == 1
    assert record["started_at"] == row["started_at"] and record["stop_reason"] == "ended"


async def test_close_ends_the_executor_even_when_its_loop_loses_a_cancel(lab):
    """Python 3.11's wait_for can lose a cancel that arrives as its event fires (gh-86296):
    a close must still end the executor's loop, not wait for ever (seen as a runs test's
    teardown hanging 300 s under load)."""
    lost = []

    async def tick_losing_its_cancel():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            lost.append(True)  # returns as if the cancel never came

    lab.runs.executor._tick = tick_losing_its_cancel
    lab.runs.executor.wake()
    await asyncio.sleep(0.5)
    closing = asyncio.ensure_future(lab.runs.close())
    done, _ = await asyncio.wait({closing}, timeout=20)  # (wait_for would cancel the close)
    ended = closing in done and lab.runs.executor._task.done()
    if not ended:  # what the test found before the fix: leave nothing running behind
        lab.runs.executor._task.cancel()
        closing.cancel()
    assert lost and ended, "the executor's close waited for ever"
    lab.runs = lab.new_runtime()  # (the fixture closes this unstarted one)


async def test_runs_per_user_holds_under_concurrent_submits_and_max_runtime_stops_a_run():
    let_accounts_run(sys.executable)
    lab = Lab(lab_root(), max_runtime=3, runs_per_user=2)
    await lab.runs.start()
    try:
        from gridspawner.runs.store import LimitReached

        nb = notebook(SLEEPER)
        outcomes = await asyncio.gather(*(lab.submit(nb, {"seconds": 60.0}, gpus=0) for _ in range(6)),
                                        return_exceptions=True)
        accepted = [o for o in outcomes if isinstance(o, str)]
        refused = [o for o in outcomes if isinstance(o, LimitReached)]
        assert len(accepted) == 2 and len(refused) == 4, outcomes
        assert "at most 2 runs" in refused[0].message
        for run_id in accepted:  # the profile's (here: the hub's) maximum run time ends them
            row = await lab.wait(run_id, ("timed_out", "succeeded", "failed"), 60)
            assert row["status"] == "timed_out", row
            assert row["finished_at"] - row["started_at"] < 3 + 5
        assert lab.sessions() == []
        # the limit counts active runs only: a new one is accepted now
        assert isinstance(await asyncio.wait_for(lab.submit(notebook("1"), gpus=0), 30), str)
    finally:
        await lab.close()


from s3.fixtures import s3, s3_server  # noqa: E402,F401


@pytest.mark.timeout(240)
async def test_a_run_with_an_s3_mount_bound_to_a_parameter(s3):  # noqa: F811
    """Typed S3 keys stay in the executor's memory until the start, where the mounts are
    resolved by the spawner's code (live check) and copied in by rclone; the parameter
    bound to the mount gets its path."""
    if not shutil.which("rclone"):
        pytest.skip("rclone is not installed (scripts/install-mount-test-deps.sh)")
    c = s3.client()
    c.create_bucket(Bucket="lab-runs")
    c.put_object(Bucket="lab-runs", Key="alice/in/hello.txt", Body=b"hello from s3")
    let_accounts_run(sys.executable)
    lab = Lab(lab_root())
    lab.catalog["storage"] = {"s3": {"campus": {"url": s3.url, "buckets": ["lab-*"], "user_prefix": "{username}/",
                                                "credentials": ["keys"]}},
                              "access": {"*": {"s3": ["campus"]}}}
    lab.runs = lab.new_runtime()
    await lab.runs.start()
    try:
        mount = {"type": "s3", "endpoint": "campus", "bucket": "lab-runs", "prefix": "alice/in/", "target": "inputs",
                 "mode": "copy", "read_only": True, "credentials": "keys", "access_key": "testing",
                 "secret_key": "testing"}
        nb = notebook("import os\nprint('listing', sorted(os.listdir(out)), open(os.path.join(out, 'hello.txt')).read())")
        draft = build_draft({"notebook": nb, "options": {"gpus": 0, "mounts": [mount]},
                             "bindings": {"out": {"mount": 0}}}, lab.runs.catalog, [], "alice")
        run_id = await lab.runs.submit(draft, "alice", [])
        stored = await lab.runs.store.get(run_id)
        assert "testing" not in stored["options"]  # the typed keys are not in the database
        row = await lab.wait(run_id, ("succeeded", "failed"), 120)
        assert row["status"] == "succeeded", (row["error"], row["log_tail"][-2000:])
        assert "listing ['hello.txt'] hello from s3" in row["log_tail"]
        assert json.loads(row["parameters"])["out"] == "data/inputs"
        assert lab.sessions() == [] and run_id not in lab.runs.executor.secrets
    finally:
        await lab.close()
