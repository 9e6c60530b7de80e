"""A user's own image reference (a custom image their policy's ``image_refs`` allow) from
the request to the pod, on the Kubernetes emulator: the pod runs exactly that image, and an
image the registry refuses fails the start at once with the registry's answer."""

from __future__ import annotations

import logging
import time

import pytest

from gridspawner.backends.base import BackendError, LaunchContext
from gridspawner.backends.kubernetes import KubernetesBackend
from gridspawner.backends.kubernetes.objects import server_names
from gridspawner.catalog import build_catalog
from gridspawner.request import build_request

NS = "jhub"
REF = "registry.example.edu/lab/http:1"
DENIED = "failed to authorize: unexpected status from GET request to https://registry.example.edu/token: 401 Unauthorized"


@pytest.fixture
def emu():
    from k8s_emulator import Emulator

    e = Emulator([{"name": "cpu-1", "cpu": "16", "memory": "64Gi"}], namespaces=("default", NS),
                 pull_errors={"registry.example.edu/private/*": DENIED}).start()
    yield e
    failures = e.validation_failures
    e.stop()
    assert failures == [], failures


def setup(emu):
    backends = {"cluster": {"kind": "kubernetes", "namespace": NS, "kubeconfig": emu.kubeconfig_path}}
    cat = build_catalog(backends=backends, images={"base": {"kubernetes": {"image": "quay.io/jupyter/base-notebook:1"}}},
                        group_policy={"research": {"image_refs": ["registry.example.edu/*"]}})
    return cat, KubernetesBackend("cluster", cat.backends["cluster"].settings)


def context() -> LaunchContext:
    return LaunchContext(user="alice", server_name="", slug="alice", env={"JUPYTERHUB_API_TOKEN": "t0k"},
                         cmd=("jupyterhub-singleuser",), args=(), log=logging.getLogger("test.refs"))


async def test_an_allowed_reference_is_the_pod_s_image(emu):
    cat, backend = setup(emu)
    try:
        req = build_request({"backend": "cluster", "image": REF}, cat, ["research"], username="alice")
        launch = await backend.launch(context(), req)
        pod = emu.get("pods", NS, server_names("alice", "").pod)
        assert pod["spec"]["containers"][0]["image"] == REF
        assert f"image={REF}" in pod["metadata"]["annotations"]["gridspawner.io/request"]
        await backend.stop(launch, now=True)
    finally:
        await backend.close()


async def test_an_image_the_registry_refuses_fails_the_spawn_fast_with_its_reason(emu):
    cat, backend = setup(emu)
    try:
        req = build_request({"backend": "cluster", "image": "registry.example.edu/private/nb:1"}, cat, ["research"])
        t0 = time.monotonic()
        with pytest.raises(BackendError) as e:
            await backend.launch(context(), req)
        assert time.monotonic() - t0 < 60  # start_timeout is 300 s
        assert "401 Unauthorized" in str(e.value) and "ErrImagePull" in str(e.value)
        assert emu.get("pods", NS, server_names("alice", "").pod) is None
    finally:
        await backend.close()
