"""Notebook runs through the runs executor (gridspawner.runs) on the Kubernetes backend,
against the API emulator in run mode: the run's pod is a local process, so real papermill
executes the notebook; the real runs table and run store (SQLite) and usage records."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hubtools import runs_lab  # tests/ is on sys.path
from hubtools.runs_lab import notebook

from gridspawner.backends.kubernetes.objects import RUN_LABEL
from gridspawner.request import OptionsError
from gridspawner.runs.files import OUTPUT
from gridspawner.runs.runtime import RunsRuntime
from gridspawner.usage.config import build_usage_config
from gridspawner.usage.runtime import UsageRuntime

NS = "jhub"
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
NODES = [
    {"name": "cpu-1", "cpu": "16", "memory": "64Gi"},
    {"name": "gpu-a10", "cpu": "32", "memory": "128Gi", "gpus": 1, "gpu_product": "NVIDIA-A10", "gpu_memory": 23028,
     "taints": GPU_TAINT},
]


class Lab:
    def __init__(self, root: Path, emu, max_runtime=None, **backend):
        self.emu = emu
        self.db = f"sqlite:///{root}/usage.sqlite"
        self.usage = UsageRuntime(build_usage_config(), self.db)
        self.usage.upgrade_now()
        catalog = {
            "backends": {"cluster": {"kind": "kubernetes", "namespace": NS, "kubeconfig": emu.kubeconfig_path, **backend}},
            "images": {"scipy": {"kubernetes": {"image": "quay.io/jupyter/scipy-notebook:2025-01-01"}}},
            "max_gpus": 1, "default_options": {"backend": "cluster", "image": "scipy"},
            "default_policy": {"image_refs": ["registry.example.edu/*"]},
        }
        if max_runtime:
            catalog["max_runtime"] = max_runtime
        self.settings = {"catalog": catalog, "hub_id": "test-hub", "runs_dir": str(root / "runs"),
                         "runs_poll_interval": 0.3, "runs_queue_retry": 0.5}
        self.runs = RunsRuntime(self.settings, self.usage.store.engine, self.db, self.usage)

    async def submit(self, nb: bytes, params=None, gpus=0, user="alice", **options) -> str:
        return await runs_lab.submit(self.runs, nb, params, gpus, user, **options)

    async def wait(self, run_id: str, statuses, timeout=150.0) -> dict:
        return await runs_lab.wait(self.runs, run_id, statuses, timeout, 0.1)

    def run_objects(self):
        return [o for kind in ("pods", "secrets") for o in self.emu.list(kind, NS)
                if (o["metadata"].get("labels") or {}).get(RUN_LABEL)]


@pytest.fixture
async def make_lab():
    from k8s_emulator import Emulator

    made = []

    async def make(**kw) -> Lab:
        emu = Emulator(NODES, namespaces=("default", NS), run_pods=True).start()
        lab = Lab(Path(tempfile.mkdtemp(dir="/tmp", prefix="gsrk-")), emu, **kw)
        made.append(lab)
        await lab.runs.start()
        return lab

    yield make
    for lab in made:
        # awaited in a task of its own, as test_runs_local's Lab.close does: awaited directly
        # in pytest-asyncio's teardown, a close has been seen to wait forever under load
        await asyncio.wait_for(lab.runs.close(), 30)
        lab.usage.store.close()
        failures = lab.emu.validation_failures
        lab.emu.stop()
        shutil.rmtree(Path(lab.db.removeprefix("sqlite:///")).parent, ignore_errors=True)
        assert failures == [], failures


@pytest.fixture
async def lab(make_lab):
    return await make_lab()


async def test_a_gpu_run_succeeds_on_kubernetes_with_its_output_notebook(lab):
    run_id = await lab.submit(notebook("print('value is', value * 2)"),
                              {"value": 21}, gpus=1)
    row = await lab.wait(run_id, ("succeeded", "failed", "cancelled"))
    assert row["status"] == "succeeded", row
    out = json.loads(await lab.runs.files.read(run_id, OUTPUT))
    texts = "".join("".join(o.get("text", "")) for c in out["cells"] for o in c.get("outputs", ()))
    assert "value is 42" in texts
    assert row["host"] == "gpu-a10"
    assert "value is 42" in row["log_tail"]
    assert lab.run_objects() == []  # pod and Secrets removed
    record = await lab.usage.store.record(row["record_id"])
    assert record["kind"] == "run" and record["gpus"] == 1


async def test_a_failing_run_on_kubernetes_names_its_cell_and_error(lab):
    run_id = await lab.submit(notebook("print('before the error')\nx = 1 / 0"))
    row = await lab.wait(run_id, ("succeeded", "failed", "cancelled"))
    assert row["status"] == "failed", row
    error = json.loads(row["error"])
    assert error["cell_index"] == 1 and error["ename"] == "ZeroDivisionError"
    assert "before the error" in row["log_tail"]
    assert lab.run_objects() == []


async def test_a_run_in_the_user_s_own_image(lab):
    ref = "registry.example.edu/lab/nb:1"
    seen = []

    def watch():
        seen.extend(p["spec"]["containers"][0]["image"] for p in lab.emu.list("pods", NS))
        return seen

    run_id = await lab.submit(notebook("print('hi')"), image=ref)
    await asyncio.get_running_loop().run_in_executor(None, lambda: lab.emu.wait_for(watch, timeout=60))
    row = await lab.wait(run_id, ("succeeded", "failed", "cancelled"))
    assert row["status"] == "succeeded", row
    assert seen == [ref]  # the run's pod ran the user's image
    with pytest.raises(OptionsError) as e:  # a reference the policy does not allow: a field error naming image
        await lab.submit(notebook("1"), image="docker.io/evil/x:1")
    assert list(e.value.errors) == ["image"], e.value.errors


async def test_a_run_pod_ends_at_its_deadline_while_the_service_is_down(make_lab):
    """The pod carries the maximum run time as activeDeadlineSeconds (lowered, once the
    container started, to what the start took + max run time + the margin): with the
    service down the kubelet ends it (DeadlineExceeded), and the restarted executor collects
    its log and calls it timed out."""
    lab = await make_lab(max_runtime=10, run_deadline_margin=0)  # (papermill takes seconds to start here)
    run_id = await lab.submit(notebook("import time\nprint('working', flush=True)\ntime.sleep(120)"))
    row = await lab.wait(run_id, ("running",))
    pod, = [p for p in lab.emu.list("pods", NS) if (p["metadata"].get("labels") or {}).get(RUN_LABEL)]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert 10 <= pod["spec"]["activeDeadlineSeconds"] <= 10 + 10  # not the creation's 10 + start_timeout (310)
    await lab.runs.close()  # the service goes away: nobody times the run out

    def ended():
        pods = [p for p in lab.emu.list("pods", NS) if (p["metadata"].get("labels") or {}).get(RUN_LABEL)]
        return pods and pods[0]["status"].get("phase") == "Failed" and pods[0]

    pod = await asyncio.get_running_loop().run_in_executor(None, lambda: lab.emu.wait_for(ended, timeout=60))
    assert pod["status"]["reason"] == "DeadlineExceeded"
    lab.runs = RunsRuntime(lab.settings, lab.usage.store.engine, lab.db, lab.usage)
    await lab.runs.start()
    row = await lab.wait(run_id, ("timed_out", "failed", "succeeded"), 60)
    assert row["status"] == "timed_out", row
    assert json.loads(row["error"])["message"] == "the run took longer than its maximum run time and was stopped"
    assert "working" in row["log_tail"]  # the log was still there to collect
    assert lab.run_objects() == []
    record = await lab.usage.store.record(row["record_id"])
    assert record["stop_reason"] == "max_runtime"
