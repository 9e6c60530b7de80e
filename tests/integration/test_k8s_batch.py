"""Notebook runs on the Kubernetes backend (`start_batch` / `poll_batch` / `finish_batch`)
against the API emulator in run mode: the run pod's command is a local process, so a real
papermill executes the notebook; every object is validated against the 1.33 schema."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
import time

import nbformat
import pytest

from gridspawner.backends.base import BackendError, BatchJob
from gridspawner.backends.kubernetes.objects import RUN_LABEL, run_names
from gridspawner.backends.kubernetes.settings import parse_image

from gridspawner.backends.base import LaunchContext
from gridspawner.backends.kubernetes import KubernetesBackend
from gridspawner.backends.kubernetes.settings import parse_settings
from gridspawner.request import LaunchRequest

NS = "jhub"
TOKEN = "tok-0123456789abcdef"
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]

NODES = [
    {"name": "cpu-1", "cpu": "16", "memory": "64Gi"},
    {"name": "gpu-a10", "cpu": "32", "memory": "128Gi", "gpus": 2, "gpu_product": "NVIDIA-A10", "gpu_memory": 23028, "taints": GPU_TAINT},
]
DENIED = "unexpected status from GET request to https://registry.example.edu/v2/token: 401 Unauthorized"
IMAGE = parse_image("run", {"image": "quay.io/jupyter/scipy-notebook:2025-01-01"}, "k")
PRIVATE = parse_image("private", {"image": "registry.example.edu/private/nb:1"}, "k")


def notebook(*cells: str) -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb).encode()


def papermill_job(run_id: str, nb: bytes, parameters: dict) -> BatchJob:
    return BatchJob(
        run_id=run_id,
        argv=(sys.executable, "-m", "papermill", "--no-progress-bar", "-k", "python3", "-f", "parameters.json",
              "input.ipynb", "output.ipynb"),
        files={"input.ipynb": nb, "parameters.json": json.dumps(parameters).encode()},
        outputs=("output.ipynb",),
        env={"RUN_GREETING": "hello from the env"},
    )


def request(gpus=0, gpu_memory=0, image="run", **kw) -> LaunchRequest:
    return LaunchRequest(backend="cluster", backend_kind="kubernetes", image=image, gpus=gpus, gpu_memory=gpu_memory,
                         image_settings=IMAGE, **kw)


def context(user="alice") -> LaunchContext:
    env = {"JUPYTERHUB_API_TOKEN": TOKEN, "JUPYTERHUB_USER": user}
    return LaunchContext(user=user, server_name="", slug=user, env=env, cmd=("jupyterhub-singleuser",), args=(),
                         log=logging.getLogger("test.k8s.batch"))


def make_backend(emu, **raw) -> KubernetesBackend:
    raw.setdefault("namespace", NS)
    raw.setdefault("kubeconfig", emu.kubeconfig_path)
    settings = parse_settings("cluster", raw, "c.GridSpawner.backends['cluster']")
    return KubernetesBackend("cluster", settings, tolerance=0.07)


@pytest.fixture
def emu():
    from k8s_emulator import Emulator

    e = Emulator(NODES, namespaces=("default", NS), run_pods=True,
                 pull_errors={"registry.example.edu/*": DENIED}).start()
    yield e
    failures = e.validation_failures
    e.stop()
    assert failures == [], f"the emulator rejected objects: {failures}"


@pytest.fixture
async def backends(emu):
    made = []

    def make(**raw):
        b = make_backend(emu, **raw)
        made.append(b)
        return b

    yield make
    for b in made:
        await b.close()


async def wait_end(backend, launch, timeout=120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = await backend.poll_batch(launch)
        if code is not None:
            return code
        await asyncio.sleep(0.2)
    raise AssertionError("the run did not end in time")


def request_for(image=IMAGE, **kw):
    return dataclasses.replace(request(image="run", **kw), image_settings=image)


def run_objects(emu):
    pods = [p for p in emu.list("pods", NS) if (p["metadata"].get("labels") or {}).get(RUN_LABEL)]
    secrets = [s for s in emu.list("secrets", NS) if (s["metadata"].get("labels") or {}).get(RUN_LABEL)]
    return pods, secrets


async def test_a_run_succeeds_with_its_outputs(emu, backends):
    backend = backends()
    backend.hub_id = "hub-1"
    nb = notebook("import os\nprint('x is', x, os.environ['RUN_GREETING'])", "y = x * 2")
    launch = await backend.start_batch(context(), request_for(), papermill_job("r-ok-1", nb, {"x": 21}))
    assert launch.url == ""
    assert TOKEN not in json.dumps(launch.state)
    pod = emu.get("pods", NS, run_names("r-ok-1").pod)
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    c = spec["containers"][0]
    assert "ports" not in c and "readinessProbe" not in c
    assert c["securityContext"]["runAsNonRoot"] and c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["metadata"]["labels"][RUN_LABEL] == "r-ok-1"
    # the API token of the hub's env travels in the run's Secret, never in the pod
    assert TOKEN not in json.dumps(pod)
    assert await wait_end(backend, launch) == 0
    # the hub's reconciler leaves a run's pod alone, even an ended one
    report = await backend.reconcile(lambda: [], grace=0)
    assert report.reclaimed == []
    assert emu.get("pods", NS, run_names("r-ok-1").pod) is not None
    result = await backend.finish_batch(launch)
    assert result.exit_code == 0
    out = nbformat.reads(result.files["output.ipynb"].decode(), as_version=4)
    printed = "".join(o.get("text", "") for cell in out.cells for o in cell.get("outputs", []))
    assert "x is 21 hello from the env" in printed
    assert "@@gridspawner" not in result.log_tail
    assert run_objects(emu) == ([], [])  # pod and Secrets gone
    again = await backend.finish_batch(launch)  # idempotent
    assert again.files == {}


async def test_a_failing_run_returns_its_exit_code_and_log_tail(emu, backends):
    backend = backends()
    nb = notebook("import sys\nprint('about to fail', file=sys.stderr)\nraise ValueError('bad parameter x')")
    launch = await backend.start_batch(context(), request_for(), papermill_job("r-fail", nb, {"x": 1}))
    code = await wait_end(backend, launch)
    assert code != 0
    result = await backend.finish_batch(launch)
    assert result.exit_code == code
    assert "ValueError" in result.log_tail and "bad parameter x" in result.log_tail
    # papermill still wrote the notebook up to the failing cell: it comes back
    out = nbformat.reads(result.files["output.ipynb"].decode(), as_version=4)
    assert any(o.get("ename") == "ValueError" for cell in out.cells for o in cell.get("outputs", []))
    assert run_objects(emu) == ([], [])


async def test_cancel_deletes_the_pod_and_its_secrets(emu, backends):
    backend = backends()
    job = BatchJob(run_id="r-cancel", argv=("sh", "-c", "echo started; sleep 300"), files={"a.txt": b"data"},
                   outputs=("a.txt",))
    launch = await backend.start_batch(context(), request_for(), job)
    pods, secrets = run_objects(emu)
    assert len(pods) == 1 and len(secrets) == 1
    assert await backend.poll_batch(launch) is None
    emu.wait_for(lambda: "started" in emu.pod_log(NS, run_names("r-cancel").pod), timeout=30)
    await backend.stop(launch, now=True)
    result = await backend.finish_batch(launch)
    assert "started" in result.log_tail  # the log so far, read before the pod went
    assert run_objects(emu) == ([], [])
    assert await backend.poll_batch(launch) is not None


async def test_a_new_backend_collects_a_run_that_ended_meanwhile(emu, backends):
    first = backends()
    job = BatchJob(run_id="r-restart", argv=("sh", "-c", "sleep 1; echo done > out.txt; echo bye"),
                   outputs=("out.txt",))
    launch = await first.start_batch(context(), request_for(), job)
    state = json.loads(json.dumps(launch.state))
    await first.close()  # the executor goes away; the run goes on
    emu.wait_for(lambda: (emu.get("pods", NS, run_names("r-restart").pod) or {}).get("status", {}).get("phase")
                 == "Succeeded", timeout=60)
    second = backends()
    again = type(launch)(url="", state=state)
    assert await wait_end(second, again) == 0
    result = await second.finish_batch(again)
    assert result.files == {"out.txt": b"done\n"}
    assert "bye" in result.log_tail
    assert run_objects(emu) == ([], [])


async def test_an_image_that_cannot_be_pulled_fails_fast_with_the_registry_reason(emu, backends):
    backend = backends(start_timeout=600)
    job = BatchJob(run_id="r-pull", argv=("true",))
    t0 = time.monotonic()
    with pytest.raises(BackendError) as e:
        await backend.start_batch(context(), request_for(PRIVATE), job)
    assert time.monotonic() - t0 < 60  # well before start_timeout
    assert "401 Unauthorized" in str(e.value) and "registry.example.edu" in str(e.value)
    assert run_objects(emu) == ([], [])


async def test_files_over_a_secret_s_limit_are_refused_before_anything_is_made(emu, backends):
    backend = backends()
    job = BatchJob(run_id="r-big", argv=("true",), files={"input.ipynb": b"x" * (1024 * 1024 + 1)})
    with pytest.raises(BackendError, match="1 MiB"):
        await backend.start_batch(context(), request_for(), job)
    assert run_objects(emu) == ([], [])


async def test_a_gpu_run_is_scheduled_like_a_server(emu, backends):
    backend = backends()
    job = BatchJob(run_id="r-gpu", argv=("true",))
    launch = await backend.start_batch(context(), request_for(gpus=1, gpu_memory=16), job)
    pod = emu.get("pods", NS, run_names("r-gpu").pod)
    assert pod["spec"]["nodeName"] == "gpu-a10"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any(t.get("key") == "nvidia.com/gpu" for t in pod["spec"]["tolerations"])
    assert await wait_end(backend, launch) == 0
    assert len(launch.gpus) == 1
    await backend.finish_batch(launch)
