"""Data mounts on the Kubernetes backend, against the API emulator (tests/k8s_emulator):
a CSI volume (the csi-rclone template of the admin guide) and a copy init container, each
with its own Secret that exists while the server runs and is gone after stop or a failed
launch; every object validates against the 1.33 schema; no container is privileged."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest

from gridspawner.backends.base import BackendError, LaunchContext
from gridspawner.backends.kubernetes import KubernetesBackend
from gridspawner.backends.kubernetes.objects import server_names
from gridspawner.backends.kubernetes.settings import parse_image, parse_settings
from gridspawner.mounts.config import parse_storage
from gridspawner.mounts.resolved import ResolvedMount, S3Secret, S3Source
from gridspawner.mounts.specs import MountSpec
from gridspawner.request import LaunchRequest
from k8s_emulator import Emulator

pytestmark = pytest.mark.timeout(120)

NS = "jhub"
TOKEN = "tok-0123456789abcdef"
NODES = [{"name": "cpu-1", "cpu": "16", "memory": "64Gi"}]
IMAGE = parse_image("base", {"image": "quay.io/jupyter/base-notebook:2025-01-01"}, "k")
#: the csi-rclone example of docs/admin/data-mounts.md
CSI_RCLONE = {
    "driver": "csi-rclone",
    "volumeAttributes": {"remote": "s3", "remotePath": "{bucket}/{prefix}",
                         "s3-provider": "Other", "s3-endpoint": "{url}", "s3-region": "{region}"},
    "secret_keys": {"s3-access-key-id": "access_key", "s3-secret-access-key": "secret_key",
                    "s3-session-token": "session_token"},
}
STORAGE = parse_storage({
    "s3": {"campus": {"url": "https://s3.example.edu", "buckets": ["lab-*"], "credentials": ["keys"]}},
    "kubernetes": {"csi": {"s3": CSI_RCLONE}},
})
SECRET_KEY = "SECRETKEY/only+in=secrets"
SPECS = (
    MountSpec(type="s3", target="live", mode="mount", read_only=True, endpoint="campus", bucket="lab-data",
              prefix="alice/run1/", credentials="keys"),
    MountSpec(type="s3", target="copied", mode="copy", endpoint="campus", bucket="lab-data", prefix="alice/",
              credentials="keys"),
)
MOUNTS = tuple(
    ResolvedMount(i, s.target, s.mode, s.read_only, S3Source("https://s3.example.edu", s.bucket, s.prefix),
              S3Secret("AKIDEXAMPLE", SECRET_KEY, "SESSIONTOKEN"))
    for i, s in enumerate(SPECS)
)


def context(mounts=MOUNTS) -> LaunchContext:
    env = {"JUPYTERHUB_API_TOKEN": TOKEN, "JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}
    return LaunchContext(user="alice", server_name="", slug="alice", env=env, cmd=("jupyterhub-singleuser",), args=(),
                         log=logging.getLogger("test.k8s.mounts"), mounts=mounts, storage=STORAGE)


def request() -> LaunchRequest:
    return LaunchRequest(backend="cluster", backend_kind="kubernetes", image="base", gpus=0, gpu_memory=0, mounts=SPECS,
                         image_settings=IMAGE)


@pytest.fixture
def emu():
    e = Emulator(NODES, namespaces=("default", NS)).start()
    yield e
    failures = e.validation_failures
    e.stop()
    assert failures == [], f"the emulator rejected objects: {failures}"


@pytest.fixture
async def backend(emu):
    settings = parse_settings("cluster", {"namespace": NS, "kubeconfig": emu.kubeconfig_path}, "c.GridSpawner.backends['cluster']")
    b = KubernetesBackend("cluster", settings)
    yield b
    await b.close()


def mount_secrets(emu) -> dict[str, dict]:
    return {s["metadata"]["name"]: s for s in emu.list("secrets", NS) if "-secret-m" in s["metadata"]["name"]}


def _no_privilege(pod: dict) -> None:
    for c in [*pod["spec"]["containers"], *(pod["spec"].get("initContainers") or [])]:
        sc = c.get("securityContext") or {}
        assert sc.get("privileged") is not True, c["name"]
        assert sc.get("allowPrivilegeEscalation") is False, c["name"]
        assert "SYS_ADMIN" not in ((sc.get("capabilities") or {}).get("add") or []), c["name"]


async def test_csi_mount_and_copy(emu, backend):
    launch = await backend.launch(context(), request())
    names = server_names("alice", "")
    pod = emu.get("pods", NS, names.pod)
    _no_privilege(pod)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data-0"]["csi"]["driver"] == "csi-rclone"
    assert volumes["data-0"]["csi"]["nodePublishSecretRef"] == {"name": f"{names.secret}-m0"}
    assert volumes["data-0"]["csi"]["volumeAttributes"]["remotePath"] == "lab-data/alice/run1"
    assert "emptyDir" in volumes["data-1"]
    notebook = pod["spec"]["containers"][0]
    paths = {m["mountPath"]: m for m in notebook["volumeMounts"]}
    assert paths["/home/jovyan/data/live"].get("readOnly") is True and "/home/jovyan/data/copied" in paths
    (init,) = pod["spec"]["initContainers"]
    assert init["securityContext"]["runAsUser"] == 1000 and init["securityContext"]["runAsNonRoot"] is True
    # the secrets: in the mount Secrets only — never in the pod, the state or the launch
    assert SECRET_KEY not in repr(pod) and SECRET_KEY not in repr(launch.state)
    made = mount_secrets(emu)
    assert set(made) == {f"{names.secret}-m0", f"{names.secret}-m1"}
    token_secret = emu.get("secrets", NS, names.secret)
    for s in made.values():
        assert s["metadata"]["labels"] == token_secret["metadata"]["labels"]
    assert base64.b64decode(made[f"{names.secret}-m0"]["data"]["s3-secret-access-key"]).decode() == SECRET_KEY
    assert SECRET_KEY in base64.b64decode(made[f"{names.secret}-m1"]["data"]["rclone.conf"]).decode()
    assert [n for n, _ in launch.state["mount_secrets"]] == sorted(made)
    await backend.stop(launch, now=True)
    assert mount_secrets(emu) == {}
    assert emu.get("secrets", NS, names.secret) is None


async def test_failed_launch_removes_mount_secrets(emu, backend):
    emu.inject_fault(method="POST", path=r"/namespaces/jhub/pods$", status=422, count=5)
    with pytest.raises(BackendError):
        await backend.launch(context(), request())
    assert mount_secrets(emu) == {}
    assert emu.get("secrets", NS, server_names("alice", "").secret) is None


async def test_pod_deleted_outside_the_hub_takes_mount_secrets(emu, backend):
    await backend.launch(context(), request())
    names = server_names("alice", "")
    assert len(mount_secrets(emu)) == 2
    emu.delete_pod(NS, names.pod)
    for _ in range(500):  # the backend's pod watch (on this event loop) deletes them
        if not mount_secrets(emu):
            break
        await asyncio.sleep(0.02)
    assert mount_secrets(emu) == {}


async def test_a_server_that_ends_by_itself_takes_its_mount_secrets(emu, backend):
    await backend.launch(context(), request())
    names = server_names("alice", "")
    assert len(mount_secrets(emu)) == 2
    emu.exit_container(NS, names.pod, code=0)  # e.g. the user shut the server down
    for _ in range(500):  # the pod watch deletes the pod and all three Secrets
        if not emu.list("secrets", NS) and not emu.list("pods", NS):
            break
        await asyncio.sleep(0.02)
    assert emu.list("pods", NS) == [] and emu.list("secrets", NS) == []


async def test_mount_mode_without_a_csi_template_is_refused(emu, backend):
    from dataclasses import replace

    storage = parse_storage({"s3": {"campus": {"url": "https://s3.example.edu", "buckets": ["lab-*"]}}})
    ctx = replace(context(), storage=storage)
    with pytest.raises(BackendError, match="no CSI driver configured"):
        await backend.launch(ctx, request())
    assert emu.list("secrets", NS) == [] and emu.list("pods", NS) == []
