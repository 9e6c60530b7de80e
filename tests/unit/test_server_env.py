"""The GRIDSPAWNER_* facts a server finds in its environment: the pure builders, and how the
host and Kubernetes backends deliver them (schema-valid pod, admin env never replaces them)."""

from __future__ import annotations

import time

import kubernetes_validate
import pytest

from gridspawner import server_env
from gridspawner.backends.host.launch_env import server_environment
from gridspawner.backends.host.placement import HostLogin, Placement
from gridspawner.backends.host.settings import parse_host_image
from gridspawner.backends.kubernetes.objects import build_pod, server_names
from gridspawner.backends.kubernetes.settings import parse_image, parse_settings
from gridspawner.backends.local import LocalBackend
from gridspawner.catalog import CatalogError, build_catalog
from gridspawner.gpu import GPU
from gridspawner.request import build_request

FACTS = {
    "GRIDSPAWNER_BACKEND": "lab",
    "GRIDSPAWNER_GPUS": "2",
    "GRIDSPAWNER_GPU_MODELS": "",
    "GRIDSPAWNER_DEADLINE": "1767225600",
}


@pytest.fixture
def catalog():
    return build_catalog(
        backends={"lab": {"kind": "local", "display_name": "Lab machine"}},
        images={"torch": {"display_name": "PyTorch 2", "local": {}}},
        profiles={
            "short": {"display_name": "Short session", "values": {"backend": "lab", "image": "torch", "gpus": 1},
                      "max_runtime": "1h"},
        },
    )


def test_request_env_names_what_was_asked(catalog):
    request = build_request({"profile": "short"}, catalog, [])
    env = server_env.request_env(request, catalog, 1767225600.7, (1800, 300))
    assert env == {
        "GRIDSPAWNER_BACKEND": "lab",
        "GRIDSPAWNER_BACKEND_KIND": "local",
        "GRIDSPAWNER_BACKEND_DISPLAY_NAME": "Lab machine",
        "GRIDSPAWNER_GPUS": "1",
        "GRIDSPAWNER_GPU_MODELS": "",
        "GRIDSPAWNER_GPU_MEMORY_GB": "",
        "GRIDSPAWNER_IMAGE": "torch",
        "GRIDSPAWNER_IMAGE_DISPLAY_NAME": "PyTorch 2",
        "GRIDSPAWNER_PROFILE": "short",
        "GRIDSPAWNER_PROFILE_DISPLAY_NAME": "Short session",
        "GRIDSPAWNER_DEADLINE": "1767225600",
        "GRIDSPAWNER_DEADLINE_ISO": "2026-01-01T00:00:00Z",
        "GRIDSPAWNER_STOP_WARNINGS": "1800,300",
    }


def test_no_profile_and_no_deadline(catalog):
    request = build_request({"backend": "lab", "image": "torch", "gpus": 0}, catalog, [])
    env = server_env.request_env(request, catalog, None, ())
    assert env["GRIDSPAWNER_PROFILE"] == env["GRIDSPAWNER_PROFILE_DISPLAY_NAME"] == ""
    assert env["GRIDSPAWNER_DEADLINE"] == env["GRIDSPAWNER_DEADLINE_ISO"] == ""
    assert env["GRIDSPAWNER_STOP_WARNINGS"] == ""


def test_placement_lists_each_gpu_in_cuda_order():
    gpus = [GPU(2, "GPU-b", "NVIDIA A10", 23028), GPU(0, "GPU-a", "Odd, Name", 81920)]
    assert server_env.placement_env("gpu-3", gpus) == {
        "GRIDSPAWNER_HOST": "gpu-3",
        "GRIDSPAWNER_GPUS": "2",
        "GRIDSPAWNER_GPU_MODELS": "NVIDIA A10,Odd  Name",
        "GRIDSPAWNER_GPU_MEMORY_GB": "24,80",
    }
    assert server_env.placement_env("cpu-1", [])["GRIDSPAWNER_GPU_MODELS"] == ""


def test_gpu_type_facts():
    assert server_env.gpu_type_env(2, "NVIDIA-A100-SXM4-80GB", None) == {"GRIDSPAWNER_GPU_MODELS": "NVIDIA-A100-SXM4-80GB,NVIDIA-A100-SXM4-80GB"}
    assert server_env.gpu_type_env(1, None, 10) == {"GRIDSPAWNER_GPU_MEMORY_GB": "10"}
    assert server_env.gpu_type_env(0, "X", 10) == {}


def test_iso_and_epoch_agree():
    now = time.time()
    env = server_env.deadline_env(now)
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(env["GRIDSPAWNER_DEADLINE"]))) == env["GRIDSPAWNER_DEADLINE_ISO"]


def test_stop_warnings_setting():
    assert server_env.parse_stop_warnings(["5m", 1800, "30m", 0.4]) == (1800, 300, 1)
    assert server_env.parse_stop_warnings([]) == ()
    for bad, key in [("30m", "c.GridSpawner.stop_warnings"), ([0], "c.GridSpawner.stop_warnings[0]"),
                     (["5m", "soon"], "c.GridSpawner.stop_warnings[1]"), ([True], "c.GridSpawner.stop_warnings[0]")]:
        with pytest.raises(CatalogError) as e:
            server_env.parse_stop_warnings(bad)
        assert e.value.key == key


def test_host_backend_delivers_the_facts():
    settings = LocalBackend.parse_settings("lab", {"host_name": "gpu-7", "env": {"HF_HOME": "/cache"}}, "k")
    image = parse_host_image("torch", {"env": {"OTHER": "1"}}, "k")
    gpus = (GPU(1, "GPU-b", "NVIDIA A10", 23028), GPU(3, "GPU-d", "Tesla T4", 15360))
    placement = Placement(HostLogin("gpu-7", "lab"), gpus)
    # (a hub-wide c.Spawner.environment could hold a stale GRIDSPAWNER_HOST: placement wins)
    hub_env = dict(FACTS, JUPYTERHUB_USER="alice", GRIDSPAWNER_HOST="x", **{"BAD-NAME": "1"})
    env, skipped = server_environment(hub_env, settings.env, image.env, placement, "/tmp/s/alice-1")
    assert skipped == ["BAD-NAME"] and "BAD-NAME" not in env
    assert env["GRIDSPAWNER_BACKEND"] == "lab"
    assert env["GRIDSPAWNER_DEADLINE"] == "1767225600"
    assert env["GRIDSPAWNER_HOST"] == "gpu-7"
    assert env["GRIDSPAWNER_GPUS"] == "2"
    assert env["GRIDSPAWNER_GPU_MODELS"] == "NVIDIA A10,Tesla T4"
    assert env["GRIDSPAWNER_GPU_MEMORY_GB"] == "24,16"
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-b,GPU-d"
    assert env["GRIDSPAWNER_STOPS_FILE"] == "/tmp/s/alice-1/stops.json"
    assert env["OTHER"] == "1" and env["HF_HOME"] == "/cache"


@pytest.mark.parametrize("parse, raw, key", [
    (lambda raw: LocalBackend.parse_settings("lab", raw, "c.GridSpawner.backends['lab']"),
     {"env": {"GRIDSPAWNER_HOST": "x"}}, "c.GridSpawner.backends['lab']['env']['GRIDSPAWNER_HOST']"),
    (lambda raw: parse_host_image("torch", raw, "c.GridSpawner.images['torch']['local']"),
     {"env": {"GRIDSPAWNER_DEADLINE": "0"}}, "c.GridSpawner.images['torch']['local']['env']['GRIDSPAWNER_DEADLINE']"),
    (lambda raw: parse_image("torch", raw, "c.GridSpawner.images['torch']['kubernetes']"),
     {"image": "quay.io/jupyter/base-notebook:2025-01-01", "env": {"GRIDSPAWNER_BACKEND": "x"}},
     "c.GridSpawner.images['torch']['kubernetes']['env']['GRIDSPAWNER_BACKEND']"),
])
def test_admin_env_may_not_set_a_fact(parse, raw, key):
    with pytest.raises(CatalogError) as e:
        parse(raw)
    assert e.value.key == key and "may not be overridden" in e.value.message
    # other names of the prefix stay the admin's: the lab extension's poll interval
    ok = dict(raw, env={"GRIDSPAWNER_LAB_POLL_SECONDS": "30"})
    parse(ok)


def k8s_pod(image_raw: dict, gpus: int = 0, gpu_type=None) -> dict:
    s = parse_settings("cluster", {"gpu_types": {"a100": {"product": "NVIDIA-A100-SXM4-80GB"}, "small": {"mig": "1g.10gb"}}}, "k")
    image = parse_image("torch", {"image": "quay.io/jupyter/pytorch-notebook:2025-01-01", **image_raw}, "k")
    manifest = build_pod(s, image, user="alice", server_name="", names=server_names("alice", "", s),
                         env=dict(FACTS, JUPYTERHUB_API_TOKEN="t0ken"), cmd=("jupyterhub-singleuser",), args=(),
                         gpus=gpus, gpu_memory=0, cpu=None, memory=None, tolerance=0.07,
                         gpu_type=s.gpu_types.get(gpu_type))
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    return manifest


def env_entries(manifest: dict) -> dict:
    return {e["name"]: e for e in manifest["spec"]["containers"][0]["env"]}


def test_kubernetes_pod_takes_the_node_from_the_downward_api():
    env = env_entries(k8s_pod({"env": {"GRIDSPAWNER_LAB_POLL_SECONDS": "30"}}))
    assert env["GRIDSPAWNER_HOST"] == {"name": "GRIDSPAWNER_HOST", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    assert env["GRIDSPAWNER_BACKEND"] == {"name": "GRIDSPAWNER_BACKEND", "value": "lab"}
    assert env["GRIDSPAWNER_DEADLINE"]["value"] == "1767225600"
    assert "secretKeyRef" in env["JUPYTERHUB_API_TOKEN"]["valueFrom"]  # the token still only from the Secret
    assert env["GRIDSPAWNER_LAB_POLL_SECONDS"]["value"] == "30"


@pytest.mark.parametrize("gpu_type, models, memory", [
    (None, "", None),
    ("a100", "NVIDIA-A100-SXM4-80GB,NVIDIA-A100-SXM4-80GB", None),
    ("small", "", "10,10"),
])
def test_kubernetes_pod_names_what_a_gpu_type_fixes(gpu_type, models, memory):
    env = env_entries(k8s_pod({}, gpus=2, gpu_type=gpu_type))
    assert env["GRIDSPAWNER_GPU_MODELS"]["value"] == models
    assert env.get("GRIDSPAWNER_GPU_MEMORY_GB", {}).get("value") == memory


def test_kubernetes_facts_are_never_expanded_by_the_kubelet():
    from k8s_emulator.runner import expand  # the emulator's copy of kubelet's $(VAR) expansion

    s = parse_settings("cluster", {}, "k")
    image = parse_image("torch", {"image": "quay.io/jupyter/base-notebook:2025-01-01"}, "k")
    env = dict(FACTS, GRIDSPAWNER_BACKEND_DISPLAY_NAME="GPUs $(HOME) at $5/h", HOME="/home/jovyan")
    manifest = build_pod(s, image, user="alice", server_name="", names=server_names("alice", "", s), env=env,
                         cmd=("jupyterhub-singleuser",), args=(), gpus=0, gpu_memory=0, cpu=None, memory=None,
                         tolerance=0.07)
    entry = env_entries(manifest)["GRIDSPAWNER_BACKEND_DISPLAY_NAME"]
    assert expand(entry["value"], {"HOME": "/home/jovyan"}) == "GPUs $(HOME) at $5/h"
