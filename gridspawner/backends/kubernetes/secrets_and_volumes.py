"""PURE builders of what a pod carries besides itself: the per-server Secret (API token and
other secret env values), the data mounts (volumes, init containers, their Secrets) and the
home PersistentVolumeClaim."""

from __future__ import annotations

import base64
import re
from typing import Any, Mapping

from ...mounts import k8s as mk8s
from ...mounts.resolved import S3Source
from .names import (
    CONTAINER,
    LAUNCH_ANNOTATION,
    LAUNCH_LABEL,
    SECRET_COMPONENT,
    SERVER_ANNOTATION,
    USER_ANNOTATION,
    BuildError,
    ServerNames,
    common_labels,
)
from .settings import KubernetesSettings

#: environment variables that carry a secret: delivered through the per-server Secret only
SECRET_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
_SECRET_ENV_RE = re.compile(r".*(_TOKEN|_SECRET|_PASSWORD|SECRET_ACCESS_KEY)")


# --------------------------------------------------------------------------- secret


def secret_env_names(env: Mapping[str, str]) -> list[str]:
    return sorted(n for n in env if n in SECRET_ENV or _SECRET_ENV_RE.fullmatch(n))


def build_secret(
    settings: KubernetesSettings,
    names: ServerNames,
    user: str,
    server_name: str,
    env: Mapping[str, str],
    launch_id: str = "",
) -> dict:
    """The per-server Secret holding the API token (and any other secret env values).

    Not owned by the pod (that would cost a patch per spawn): the backend deletes it at stop,
    after a failed launch, when the watch sees its pod deleted, and sweeps leftovers (our
    labels, no pod) once per hub start — see `secret_selector`."""
    data = {n: base64.b64encode(env[n].encode()).decode() for n in secret_env_names(env)}
    labels = common_labels(settings, user, server_name) | {"component": SECRET_COMPONENT}
    annotations = {USER_ANNOTATION: user, SERVER_ANNOTATION: server_name}
    if launch_id:
        labels[LAUNCH_LABEL] = launch_id
        annotations[LAUNCH_ANNOTATION] = launch_id
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": names.secret,
            "labels": labels,
            "annotations": annotations,
        },
        "type": "Opaque",
        "data": data,
    }


# --------------------------------------------------------------------------- data mounts


def build_mounts(
    settings: KubernetesSettings,
    names: ServerNames,
    user: str,
    server_name: str,
    mounts,
    storage,
    launch_id: str = "",
) -> tuple[dict, list[dict]]:
    """The pod fragments (``volumes``, ``volumeMounts``, ``initContainers``) and the Secret
    manifests of a server's data mounts (`gridspawner.mounts.k8s`). The Secrets are
    labelled like the token Secret (so the orphan sweep finds them) and, like it, not owned
    by the pod. Raises BuildError when a mount cannot be expressed here."""
    if not mounts:
        return {"volumes": [], "volumeMounts": [], "initContainers": []}, []
    kube = storage.kubernetes
    try:
        frag = mk8s.pod_fragments(
            mounts,
            server_secret=names.secret,
            csi_templates=kube.csi,
            copy_image=kube.copy_image,
            run_as_user=settings.run_as_user,
            run_as_group=settings.run_as_group,
            copy_resources=kube.copy_resources or None,
        )
    except ValueError as e:
        raise BuildError(str(e)) from None
    labels = common_labels(settings, user, server_name) | {"component": SECRET_COMPONENT}
    annotations = {USER_ANNOTATION: user, SERVER_ANNOTATION: server_name}
    if launch_id:
        labels[LAUNCH_LABEL] = launch_id
        annotations[LAUNCH_ANNOTATION] = launch_id
    secrets = []
    for m, name in frag["secrets"]:
        mtype = "s3" if isinstance(m.source, S3Source) else "ssh"
        manifest = mk8s.mount_secret(m, name, "", labels, kube.csi.get(mtype) if m.mode == "mount" else None)
        del manifest["metadata"]["namespace"]  # the backend's namespace applies
        manifest["metadata"]["annotations"] = dict(annotations)
        secrets.append(manifest)
    return {k: frag[k] for k in ("volumes", "volumeMounts", "initContainers")}, secrets


def add_mounts(pod: dict, fragments: Mapping[str, list]) -> dict:
    """Merge data mount fragments into a `build_pod` manifest (in place; returned)."""
    spec = pod["spec"]
    spec["volumes"] = [*spec.get("volumes", []), *fragments.get("volumes", [])]
    if fragments.get("initContainers"):
        spec["initContainers"] = [*spec.get("initContainers", []), *fragments["initContainers"]]
    container = next(c for c in spec["containers"] if c["name"] == CONTAINER)
    container["volumeMounts"] = [*container.get("volumeMounts", []), *fragments.get("volumeMounts", [])]
    return pod


# --------------------------------------------------------------------------- home volume


def build_home_claim(settings: KubernetesSettings, names: ServerNames, user: str, server_name: str) -> dict | None:
    home = settings.home_volume
    if home is None:
        return None
    labels = common_labels(settings, user, "" if not home.per_server else server_name)
    labels["component"] = "singleuser-storage"
    spec: dict[str, Any] = {"accessModes": list(home.access_modes), "resources": {"requests": {"storage": home.size}}}
    if home.storage_class:
        spec["storageClassName"] = home.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": names.home_claim,
            "labels": labels,
            "annotations": {USER_ANNOTATION: user, **({SERVER_ANNOTATION: server_name} if home.per_server else {})},
        },
        "spec": spec,
    }
