"""Kubernetes mount builders: every object and fragment validated against the 1.33 schema."""

from __future__ import annotations

import base64

import pytest

from gridspawner.catalog import CatalogError
from gridspawner.mounts import k8s
from gridspawner.mounts.resolved import ResolvedMount, S3Secret, S3Source, SSHSecret, SSHSource

kv = pytest.importorskip("kubernetes_validate")

CSI_RCLONE = k8s.parse_csi_template(
    {
        "driver": "csi-rclone",
        "volumeAttributes": {"remote": "s3", "remotePath": "{bucket}/{prefix}", "s3-provider": "Other",
                             "s3-endpoint": "{url}", "s3-region": "{region}"},
        "secret_keys": {"s3-access-key-id": "access_key", "s3-secret-access-key": "secret_key", "s3-session-token": "session_token"},
    },
    "t",
)
CSI_S3 = k8s.parse_csi_template(
    {
        "driver": "ru.yandex.s3.csi",
        "volumeAttributes": {"mounter": "geesefs", "bucket": "{bucket}", "prefix": "{prefix}", "options": "--memory-limit 1000"},
        "secret_keys": {"accessKeyID": "access_key", "secretAccessKey": "secret_key", "endpoint": "endpoint"},
    },
    "t",
)
CSI_SSH = k8s.parse_csi_template(
    {"driver": "csi-rclone", "volumeAttributes": {"remote": "sftp", "remotePath": "{path}", "sftp-host": "{host}", "sftp-port": "{port}", "sftp-user": "{user}"},
     "secret_keys": {"sftp-pass": "password"}},
    "t",
)

S3M = ResolvedMount(0, "run1", "mount", True, S3Source("https://s3.example.edu", "lab-data", "alice/run1/"), S3Secret("AK", "SK", "TOK"))
S3C = ResolvedMount(1, "copied", "copy", False, S3Source("https://s3.example.edu", "lab-data", "alice/"), S3Secret("AK", "SK"))
SSHC = ResolvedMount(2, "nas", "copy", False, SSHSource("nas.example.edu", "alice", "/export/alice", 22, "nas ssh-ed25519 AAAA"), SSHSecret(password="pw"))
SSHM = ResolvedMount(3, "nasm", "mount", False, SSHSource("nas.example.edu", "alice", "/export/alice", 22, ""), SSHSecret(password="pw"))


def pod(volumes, mounts, inits):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "jupyter-alice", "namespace": "jhub"},
        "spec": {
            "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100, "runAsNonRoot": True},
            "initContainers": inits,
            "containers": [{
                "name": "notebook", "image": "quay.io/jupyter/base-notebook",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }


def validate(obj):
    kv.validate(obj, "1.33", strict=True)


@pytest.mark.parametrize("template", [CSI_RCLONE, CSI_S3], ids=["csi-rclone", "csi-s3"])
def test_csi_mount_and_copy_pod_validates(template):
    frag = k8s.pod_fragments([S3M, S3C, SSHC, SSHM], server_secret="jupyter-alice-secret",
                             csi_templates={"s3": template, "ssh": CSI_SSH}, copy_image="docker.io/rclone/rclone:1.68",
                             run_as_user=1000, run_as_group=100)
    p = pod(frag["volumes"], frag["volumeMounts"], frag["initContainers"])
    validate(p)
    vol = frag["volumes"][0]
    assert vol["csi"]["driver"] == template["driver"] and vol["csi"]["readOnly"] is True
    assert vol["csi"]["nodePublishSecretRef"] == {"name": "jupyter-alice-secret-m0"}
    attrs = vol["csi"]["volumeAttributes"]
    if template is CSI_RCLONE:
        assert attrs["remotePath"] == "lab-data/alice/run1" and attrs["s3-endpoint"] == "https://s3.example.edu"
    else:
        assert attrs["bucket"] == "lab-data" and attrs["prefix"] == "alice/run1"
    assert frag["volumeMounts"][0] == {"name": "data-0", "mountPath": "/home/jovyan/data/run1", "readOnly": True}
    # nothing secret in the pod itself
    text = repr(p)
    assert "SK" not in text and "TOK" not in text and "'pw'" not in text
    # no container is privileged or may gain anything
    for c in p["spec"]["initContainers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and "add" not in sc["capabilities"]
        assert sc["runAsUser"] == 1000
    for m, name in frag["secrets"]:
        sec = k8s.mount_secret(m, name, "jhub", {"app.kubernetes.io/managed-by": "gridspawner"},
                               {"s3": template, "ssh": CSI_SSH}["s3" if isinstance(m.source, S3Source) else "ssh"], iv=b"\0" * 16)
        validate(sec)


def test_secret_contents():
    sec = k8s.mount_secret(S3M, "s", "ns", {}, CSI_RCLONE)
    data = {k: base64.b64decode(v).decode() for k, v in sec["data"].items()}
    assert data == {"s3-access-key-id": "AK", "s3-secret-access-key": "SK", "s3-session-token": "TOK"}
    sec = k8s.mount_secret(SSHC, "s", "ns", {}, None, iv=b"\0" * 16)
    conf = base64.b64decode(sec["data"]["rclone.conf"]).decode()
    assert "type = sftp" in conf and "pw" not in conf.replace("pass = ", "")
    assert "pass = " + k8s.rclone_obscure("pw", b"\0" * 16) in conf
    assert base64.b64decode(sec["data"]["known_hosts"]).decode() == "nas ssh-ed25519 AAAA"


def test_rclone_obscure_matches_rclone():
    import shutil
    import subprocess

    if not shutil.which("rclone"):
        pytest.skip("rclone not installed")
    # random IVs, plus one whose base64 starts with "-" (rclone must not take it for a flag: "--")
    for iv in (None, None, b"\xf8" + b"\0" * 15):
        obscured = k8s.rclone_obscure("s3cret pass", iv)
        out = subprocess.run(["rclone", "reveal", "--", obscured], capture_output=True, text=True)
        assert out.stdout.strip() == "s3cret pass", (obscured, out.stderr)


def test_copy_init_container_exact():
    c = k8s.copy_init_container(S3C, "docker.io/rclone/rclone:1.68")
    assert c["command"] == ["rclone"]
    assert c["args"][:3] == ["copy", "m1:lab-data/alice", "/data"]
    assert c["securityContext"] == {
        "runAsNonRoot": True, "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_mount_without_template_refused():
    with pytest.raises(ValueError, match="use mode 'copy'"):
        k8s.pod_fragments([SSHM], server_secret="s", csi_templates={}, copy_image="i")


@pytest.mark.parametrize(
    "tmpl",
    [
        {"driver": "Bad_Driver"},
        {"driver": "d", "volumeAttributes": {"a": "{token}"}},
        {"driver": "d", "secret_keys": {"k": "api_token"}},
        {"driver": "d", "privileged": True},
        "csi-rclone",
    ],
)
def test_bad_templates(tmpl):
    with pytest.raises(CatalogError):
        k8s.parse_csi_template(tmpl, "k")
