"""PURE builders of the Kubernetes side of data mounts (plain JSON-able dicts).

- ``mount``: an inline CSI volume (``pod.spec.volumes[].csi``) made from the admin's driver
  template for the mount's type, with the credentials in a per-server, per-mount Secret
  (``nodePublishSecretRef`` names a whole Secret, and each driver wants its own key names).
  The driver must support inline ("Ephemeral") volumes. The user container only gets a
  ``volumeMount``: it is never privileged and never gets SYS_ADMIN — the FUSE work happens
  in the CSI node plugin.
- ``copy``: an init container (the admin's rclone image; non-root, no privilege escalation,
  all capabilities dropped, read-only root filesystem) runs ``rclone copy`` into an
  ``emptyDir`` that the notebook container mounts. Its rclone config lives in the
  per-server Secret, mounted read-only into the init container only.

Template placeholders (in any string of the template's ``volumeAttributes``): ``{bucket}``,
``{prefix}`` (no trailing '/'), ``{url}``, ``{region}``, ``{host}``, ``{port}``, ``{path}``,
``{user}``, ``{read_only}`` ("true"/"false"). Values are validated before they get here and
substituted literally (no format mini-language, no escaping surprises).

Example templates (``c.GridSpawner.storage['kubernetes']['csi']``)::

    # csi-rclone (github.com/wunderio/csi-rclone)
    "s3": {
        "driver": "csi-rclone",
        "volumeAttributes": {"remote": "s3", "remotePath": "{bucket}/{prefix}",
                             "s3-provider": "Other", "s3-endpoint": "{url}", "s3-region": "{region}"},
        "secret_keys": {"s3-access-key-id": "access_key", "s3-secret-access-key": "secret_key",
                        "s3-session-token": "session_token"},
    }
    # csi-s3 (github.com/yandex-cloud/k8s-csi-s3), with a driver build that accepts inline volumes
    "s3": {
        "driver": "ru.yandex.s3.csi",
        "volumeAttributes": {"mounter": "geesefs", "bucket": "{bucket}", "prefix": "{prefix}",
                             "options": "--memory-limit 1000 --dir-mode 0777 --file-mode 0666"},
        "secret_keys": {"accessKeyID": "access_key", "secretAccessKey": "secret_key", "endpoint": "endpoint"},
    }
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any, Mapping, Sequence

from ..vocabulary import CatalogError
from .resolved import ResolvedMount, S3Source, SSHSource

#: credential fields a template's ``secret_keys`` may name
CREDENTIAL_FIELDS = ("access_key", "secret_key", "session_token", "endpoint", "region", "password", "private_key", "user")
PLACEHOLDERS = ("bucket", "prefix", "url", "region", "host", "port", "path", "user", "read_only")
DATA_MOUNT_ROOT = "/home/jovyan/data"
_DRIVER = re.compile(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
_ATTR_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,252}")

#: rclone's fixed obscuring key (fs/config/obscure): obscuring is NOT encryption, it only
#: keeps a password from being read at a glance; the Secret is what protects it
_RCLONE_OBSCURE_KEY = bytes.fromhex("9c935b48730a554d6bfd7c63c886a92bd390198eb8128afbf4de162b8b95f638")


def parse_csi_template(raw: Any, key: str) -> Mapping[str, Any]:
    """Validate one CSI driver template (CatalogError naming the key)."""
    if not isinstance(raw, Mapping):
        raise CatalogError(key, f"must be a dict with driver, volumeAttributes and secret_keys (got {type(raw).__name__})")
    unknown = sorted(set(raw) - {"driver", "volumeAttributes", "secret_keys", "fsType"})
    if unknown:
        raise CatalogError(f"{key}[{unknown[0]!r}]", "unknown setting; expected driver, volumeAttributes, secret_keys, fsType")
    driver = raw.get("driver")
    if not isinstance(driver, str) or not _DRIVER.fullmatch(driver):
        raise CatalogError(f"{key}['driver']", f"must be a CSI driver name such as 'csi-rclone' (got {driver!r})")
    attrs = raw.get("volumeAttributes", {})
    if not isinstance(attrs, Mapping):
        raise CatalogError(f"{key}['volumeAttributes']", "must be a dict of string → string")
    for k, v in attrs.items():
        if not isinstance(k, str) or not _ATTR_KEY.fullmatch(k) or not isinstance(v, str):
            raise CatalogError(f"{key}['volumeAttributes'][{k!r}]", "keys and values must be strings")
        for name in re.findall(r"\{([^{}]*)\}", v):
            if name not in PLACEHOLDERS:
                raise CatalogError(f"{key}['volumeAttributes'][{k!r}]", f"unknown placeholder {{{name}}}; use: {', '.join(PLACEHOLDERS)}")
    skeys = raw.get("secret_keys", {})
    if not isinstance(skeys, Mapping):
        raise CatalogError(f"{key}['secret_keys']", "must be a dict of Secret key → credential field")
    for k, v in skeys.items():
        if not isinstance(k, str) or not _SECRET_KEY.fullmatch(k):
            raise CatalogError(f"{key}['secret_keys'][{k!r}]", "is not a valid Secret key")
        if v not in CREDENTIAL_FIELDS:
            raise CatalogError(f"{key}['secret_keys'][{k!r}]", f"must be one of: {', '.join(CREDENTIAL_FIELDS)} (got {v!r})")
    fs_type = raw.get("fsType")
    if fs_type is not None and not isinstance(fs_type, str):
        raise CatalogError(f"{key}['fsType']", "must be a string")
    return dict(raw)


# --------------------------------------------------------------------------- names


def volume_name(index: int) -> str:
    return f"data-{int(index)}"


def mount_secret_name(server_secret: str, index: int) -> str:
    """The Secret of one mount of a server: the server's Secret name + ``-m<index>``."""
    return f"{server_secret}-m{int(index)}"[:253]


def mount_path(target: str, root: str = DATA_MOUNT_ROOT) -> str:
    return f"{root.rstrip('/')}/{target}"


# --------------------------------------------------------------------------- credentials


def rclone_obscure(text: str, iv: bytes | None = None) -> str:
    """rclone's ``obscure`` (AES-CTR with rclone's public key, base64url of IV + data)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16) if iv is None else iv
    enc = Cipher(algorithms.AES(_RCLONE_OBSCURE_KEY), modes.CTR(iv)).encryptor()
    data = enc.update(text.encode()) + enc.finalize()
    return base64.urlsafe_b64encode(iv + data).decode().rstrip("=")


def _fields(m: ResolvedMount) -> dict[str, str]:
    s, sec = m.source, m.secret
    out: dict[str, str] = {}
    if isinstance(s, S3Source):
        out.update(endpoint=s.url, region=s.region, access_key=sec.access_key, secret_key=sec.secret_key)
        if sec.session_token:
            out["session_token"] = sec.session_token
    else:
        out["user"] = s.user
        if sec.password is not None:
            out["password"] = sec.password
        if sec.private_key is not None:
            out["private_key"] = sec.private_key
    return out


def rclone_config(m: ResolvedMount, *, iv: bytes | None = None) -> str:
    """The rclone config (remote ``m<index>``) for a copy init container. A SECRET."""
    s, sec = m.source, m.secret
    lines = [f"[m{m.index}]"]
    if isinstance(s, S3Source):
        lines += ["type = s3", f"provider = {s.provider}", "env_auth = false",
                  f"access_key_id = {sec.access_key}", f"secret_access_key = {sec.secret_key}"]
        if sec.session_token:
            lines.append(f"session_token = {sec.session_token}")
        lines += [f"endpoint = {s.url}", f"region = {s.region}",
                  f"force_path_style = {'true' if s.path_style else 'false'}", "no_check_bucket = true"]
    else:
        lines += ["type = sftp", f"host = {s.address}", f"port = {int(s.port)}", f"user = {s.user}",
                  "known_hosts_file = /etc/gridspawner-mount/known_hosts", "shell_type = none", "disable_hashcheck = true"]
        if sec.private_key is not None:
            lines.append("key_file = /etc/gridspawner-mount/key")
        else:
            lines.append(f"pass = {rclone_obscure(sec.password, iv)}")
    return "\n".join(lines) + "\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def mount_secret(
    m: ResolvedMount, name: str, namespace: str, labels: Mapping[str, str], template: Mapping[str, Any] | None,
    *, iv: bytes | None = None,
) -> dict:
    """The Secret of one mount: the CSI driver's keys (``mode: mount``) or ``rclone.conf``
    (+ ``known_hosts``/``key`` for SSH) for the copy init container. The backend sets the
    ownerReference to the pod, like for the server's own Secret."""
    data: dict[str, str] = {}
    if m.mode == "copy":
        data["rclone.conf"] = _b64(rclone_config(m, iv=iv))
        if isinstance(m.source, SSHSource):
            data["known_hosts"] = _b64(m.source.known_hosts or "\n")
            if m.secret.private_key is not None:
                data["key"] = _b64(m.secret.private_key.strip("\n") + "\n")
    else:
        if template is None:
            raise ValueError("no CSI driver template for this mount type")
        fields = _fields(m)
        for key, field_ in template.get("secret_keys", {}).items():
            if field_ in fields:
                data[key] = _b64(fields[field_])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "type": "Opaque",
        "data": data,
    }


# --------------------------------------------------------------------------- volumes / containers


def _substitute(value: str, m: ResolvedMount) -> str:
    s = m.source
    values = {"read_only": "true" if m.read_only else "false"}
    if isinstance(s, S3Source):
        values.update(bucket=s.bucket, prefix=s.prefix.rstrip("/"), url=s.url, region=s.region)
    else:
        values.update(host=s.address, port=str(int(s.port)), path=s.path, user=s.user)

    def sub(match: re.Match) -> str:
        return values.get(match.group(1), "")

    out = re.sub(r"\{(" + "|".join(PLACEHOLDERS) + r")\}", sub, value)
    return out.replace("//", "/") if not out.startswith("http") else out


def csi_volume(m: ResolvedMount, template: Mapping[str, Any], secret_name: str) -> dict:
    """``pod.spec.volumes[]`` entry: an inline CSI volume from the admin's template."""
    csi: dict[str, Any] = {
        "driver": template["driver"],
        "readOnly": bool(m.read_only),
        "volumeAttributes": {k: _substitute(v, m) for k, v in template.get("volumeAttributes", {}).items()},
    }
    if template.get("secret_keys"):
        csi["nodePublishSecretRef"] = {"name": secret_name}
    if template.get("fsType"):
        csi["fsType"] = template["fsType"]
    return {"name": volume_name(m.index), "csi": csi}


def empty_dir_volume(m: ResolvedMount, size_limit: str | None = None) -> dict:
    """``pod.spec.volumes[]`` entry for a copy: an emptyDir the init container fills."""
    ed: dict[str, Any] = {}
    if size_limit:
        ed["sizeLimit"] = size_limit
    return {"name": volume_name(m.index), "emptyDir": ed}


def secret_volume(m: ResolvedMount, secret_name: str) -> dict:
    return {"name": f"{volume_name(m.index)}-conf", "secret": {"secretName": secret_name, "defaultMode": 0o444}}  # only this init container mounts it; it runs as the user's uid


def volume_mount(m: ResolvedMount, root: str = DATA_MOUNT_ROOT) -> dict:
    """The notebook container's ``volumeMounts[]`` entry for a mount or a copy."""
    vm = {"name": volume_name(m.index), "mountPath": mount_path(m.target, root)}
    if m.mode == "mount" and m.read_only:
        vm["readOnly"] = True
    return vm


def copy_init_container(
    m: ResolvedMount,
    image: str,
    *,
    run_as_user: int | None = None,
    run_as_group: int | None = None,
    resources: Mapping[str, Any] | None = None,
) -> dict:
    """An init container that runs ``rclone copy`` into the mount's emptyDir. Runs as the
    notebook's uid (so the files are the user's), never as root, with nothing to escalate."""
    s = m.source
    remote = f"m{m.index}:" + (f"{s.bucket}/{s.prefix}".rstrip("/") if isinstance(s, S3Source) else s.path)
    sc: dict[str, Any] = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if run_as_user is not None:
        sc["runAsUser"] = int(run_as_user)
    if run_as_group is not None:
        sc["runAsGroup"] = int(run_as_group)
    c: dict[str, Any] = {
        "name": f"copy-data-{int(m.index)}",
        "image": image,
        "command": ["rclone"],
        "args": [
            "copy", remote, "/data",
            "--config", "/etc/gridspawner-mount/rclone.conf",
            "--cache-dir", "/tmp/rclone-cache",
            "--stats", "0", "--retries", "2", "--low-level-retries", "3",
        ],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "securityContext": sc,
        "volumeMounts": [
            {"name": volume_name(m.index), "mountPath": "/data"},
            {"name": f"{volume_name(m.index)}-conf", "mountPath": "/etc/gridspawner-mount", "readOnly": True},
            {"name": f"{volume_name(m.index)}-tmp", "mountPath": "/tmp"},
        ],
    }
    if resources:
        c["resources"] = dict(resources)
    return c


def pod_fragments(
    mounts: Sequence[ResolvedMount],
    *,
    server_secret: str,
    csi_templates: Mapping[str, Mapping[str, Any]],
    copy_image: str,
    run_as_user: int | None = None,
    run_as_group: int | None = None,
    root: str = DATA_MOUNT_ROOT,
    copy_resources: Mapping[str, Any] | None = None,
) -> dict[str, list]:
    """Everything the pod builder adds: ``volumes``, ``volumeMounts`` (notebook container),
    ``initContainers`` and the names of the Secrets to create (``secrets``: list of
    (mount, secret name)). A mount type without a template raises ValueError."""
    volumes: list = []
    mounts_: list = []
    inits: list = []
    secrets: list = []
    for m in mounts:
        sname = mount_secret_name(server_secret, m.index)
        secrets.append((m, sname))
        if m.mode == "copy":
            volumes += [empty_dir_volume(m), secret_volume(m, sname), {"name": f"{volume_name(m.index)}-tmp", "emptyDir": {}}]
            inits.append(copy_init_container(m, copy_image, run_as_user=run_as_user, run_as_group=run_as_group,
                                             resources=copy_resources))
        else:
            mtype = "s3" if isinstance(m.source, S3Source) else "ssh"
            if mtype not in csi_templates:
                raise ValueError(f"this backend cannot mount {mtype} storage (no CSI driver configured); use mode 'copy'")
            volumes.append(csi_volume(m, csi_templates[mtype], sname))
        mounts_.append(volume_mount(m, root))
    return {"volumes": volumes, "volumeMounts": mounts_, "initContainers": inits, "secrets": secrets}
