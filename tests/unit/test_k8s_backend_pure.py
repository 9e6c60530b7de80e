"""Backend pieces that need no cluster: scheduler verdicts, state checks, settings lookups."""

from __future__ import annotations

import pytest

from gridspawner.backends.base import BackendError
from gridspawner.backends.kubernetes import KubernetesBackend
from gridspawner.backends.kubernetes.readiness import scheduler_says_never
from gridspawner.backends.kubernetes.settings import parse_settings
from gridspawner.request import LaunchRequest
from gridspawner.catalog import build_catalog

NEVER = [
    "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}, 2 node(s) didn't match "
    "Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
    "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 nodes are "
    "available: 5 Preemption is not helpful for scheduling.",
]
MAYBE_LATER = [
    "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node affinity/selector. "
    "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not "
    "helpful for scheduling.",
    "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are "
    "available: 3 Preemption is not helpful for scheduling.",
    "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory.",
    "no nodes available to schedule pods",
    "0/0 nodes are available",
]


@pytest.mark.parametrize("message", NEVER)
def test_scheduler_says_never(message):
    assert scheduler_says_never(message)


@pytest.mark.parametrize("message", MAYBE_LATER)
def test_scheduler_shortages_may_resolve(message):
    assert not scheduler_says_never(message)


def backend(**raw):
    return KubernetesBackend("k8s", parse_settings("k8s", raw, "k"))


def test_gpu_type_lookup():
    b = backend(gpu_types={"a100": {"product": "NVIDIA-A100-SXM4-80GB"}})
    req = LaunchRequest("k8s", "kubernetes", "img", 1, 0)
    assert b._gpu_type(req) is None  # any GPU
    with pytest.raises(BackendError, match="offered: a100"):
        b._gpu_type(LaunchRequest("k8s", "kubernetes", "img", 1, 0, gpu_type="h100"))
    assert b._gpu_type(LaunchRequest("k8s", "kubernetes", "img", 1, 0, gpu_type="a100")).product == "NVIDIA-A100-SXM4-80GB"


def test_gpu_type_choices_for_the_form():
    s = parse_settings(
        "k8s",
        {
            "gpu_types": {
                "a100": {"product": "NVIDIA-A100-SXM4-80GB"},
                "h100": {"product": "NVIDIA-H100-80GB-HBM3", "display_name": "H100 80 GB"},
                "mig-1g": {"mig": "1g.10gb"},
                "big-slice": {"mig": "3g.40gb", "display_name": "Half an A100"},
            }
        },
        "k",
    )
    assert KubernetesBackend.gpu_type_choices(s) == {
        "a100": "NVIDIA A100 SXM4 80GB",  # the product label, readable
        "h100": "H100 80 GB",
        "mig-1g": "MIG 1g.10gb",
        "big-slice": "Half an A100",
    }
    assert list(KubernetesBackend.gpu_type_choices(s)) == ["a100", "h100", "mig-1g", "big-slice"]  # admin's order
    assert KubernetesBackend.gpu_type_choices(parse_settings("k8s", {}, "k")) == {}


def test_catalog_fills_gpu_types_from_the_kind():
    catalog = build_catalog(
        backends={"k8s": {"kind": "kubernetes", "namespace": "jhub", "gpu_types": {"mig": {"mig": "1g.10gb"}}}},
        images={"torch": {"kubernetes": {"image": "quay.io/jupyter/pytorch-notebook:latest"}}},
        profiles={"mig": {"values": {"backend": "k8s", "gpus": 1, "gpu_type": "mig"}}},
    )
    assert dict(catalog.backends["k8s"].gpu_types) == {"mig": "MIG 1g.10gb"}
    assert catalog.profiles["mig"].values["gpu_type"] == "mig"


def test_image_comes_from_the_validated_request():
    from gridspawner.request import build_request

    catalog = build_catalog(
        backends={"k8s": {"kind": "kubernetes", "namespace": "jhub"}},
        images={"torch": {"kubernetes": {"image": "quay.io/jupyter/pytorch-notebook:latest"}}},
    )
    b = KubernetesBackend("k8s", catalog.backends["k8s"].settings)
    req = build_request({"backend": "k8s", "image": "torch", "gpus": 0}, catalog, [])
    assert b._image(req).image == "quay.io/jupyter/pytorch-notebook:latest"
    with pytest.raises(BackendError, match="nothing to run"):
        b._image(LaunchRequest("k8s", "kubernetes", "other", 0, 0))


def test_request_image_settings_win():
    from gridspawner.backends.kubernetes.settings import parse_image

    b = backend()
    img = parse_image("x", {"image": "img:1"}, "k")
    req = type("R", (), {"image_settings": img, "image": "x"})()
    assert b._image(req) is img


async def test_bad_state_is_refused():
    b = backend()
    with pytest.raises(BackendError):
        await b.restore({"pid": 12})
    launch = await b.restore({"pod": "jupyter-a-1", "uid": "u", "url": "http://10.0.0.1:8888", "gpus": []})
    assert launch.url == "http://10.0.0.1:8888"
    await b.close()
