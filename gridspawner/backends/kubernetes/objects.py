"""PURE builders: (request, settings, who) → Kubernetes manifests as plain JSON-able dicts.

Nothing here talks to a cluster; `backend.py` only sends what these functions return, and the
unit tests validate every manifest against the Kubernetes 1.33 OpenAPI schema.

This module builds the pod (container, security contexts, resources, scheduling) and is
the one place callers import builders from; the rest lives by topic next to it:

- ``names``                object names, labels, annotations, selectors; `BuildError`;
- ``gpu_scheduling``       a GPU request as resources, node affinity and tolerations;
- ``secrets_and_volumes``  the per-server Secret, data mounts, the home claim;
- ``pod_status``           reading a pod back: ready, terminated, stuck.
"""

from __future__ import annotations

from typing import Any, Mapping

from ...server_env import FACTS, HOST, HOST_FIELD_PATH, PREFIX as FACTS_PREFIX, STOPS_FILE, STOPS_FILE_NAME, gpu_type_env
from ...stops import stops_document
from .gpu_scheduling import GPUScheduling, gpu_scheduling, mig_memory_gb
from .names import (
    BACKEND_LABEL,
    CONTAINER,
    HUB_LABEL,
    LAUNCH_ANNOTATION,
    LAUNCH_LABEL,
    MANAGED_BY,
    MANAGED_LABEL,
    MOUNT_SECRETS_ANNOTATION,
    REQUEST_ANNOTATION,
    RUN_LABEL,
    SECRET_COMPONENT,
    SECRET_SUFFIX,
    SECRET_UID_ANNOTATION,
    SERVER_ANNOTATION,
    SERVER_LABEL,
    STOPS_ANNOTATION,
    STOPS_DIR,
    STOPS_VOLUME,
    USER_ANNOTATION,
    USER_LABEL,
    BuildError,
    ServerNames,
    common_labels,
    is_run,
    label_value,
    mark_hub,
    mount_secrets_of,
    pod_of_secret,
    pod_selector,
    run_names,
    secret_name,
    secret_selector,
    server_names,
)
from .pod_status import container_waiting_problem, pod_finished, pod_ready, pod_terminated
from .secrets_and_volumes import SECRET_ENV, add_mounts, build_home_claim, build_mounts, build_secret, secret_env_names
from .settings import GPUType, KubernetesImage, KubernetesSettings

__all__ = [
    "BACKEND_LABEL",
    "CONTAINER",
    "HUB_LABEL",
    "LAUNCH_ANNOTATION",
    "LAUNCH_LABEL",
    "MANAGED_BY",
    "MANAGED_LABEL",
    "MOUNT_SECRETS_ANNOTATION",
    "PORT",
    "PORT_NAME",
    "REQUEST_ANNOTATION",
    "RUN_LABEL",
    "SECRET_COMPONENT",
    "SECRET_ENV",
    "SECRET_SUFFIX",
    "SECRET_UID_ANNOTATION",
    "SERVER_ANNOTATION",
    "SERVER_LABEL",
    "STOPS_ANNOTATION",
    "STOPS_DIR",
    "STOPS_VOLUME",
    "USER_ANNOTATION",
    "USER_LABEL",
    "BuildError",
    "GPUScheduling",
    "ServerNames",
    "add_mounts",
    "build_home_claim",
    "build_mounts",
    "build_pod",
    "build_secret",
    "common_labels",
    "container_waiting_problem",
    "gpu_scheduling",
    "is_run",
    "label_value",
    "mark_hub",
    "mig_memory_gb",
    "mount_secrets_of",
    "pod_env",
    "pod_finished",
    "pod_of_secret",
    "pod_ready",
    "pod_selector",
    "pod_terminated",
    "run_names",
    "secret_env_names",
    "secret_name",
    "secret_selector",
    "server_names",
    "stops_patch",
]

PORT = 8888
PORT_NAME = "notebook-port"


# --------------------------------------------------------------------------- pod


def _env_list(env: Mapping[str, str], secret_name: str) -> list[dict]:
    secret = set(secret_env_names(env))
    entries: dict[str, dict] = {}
    for name in env:
        if name in secret:
            entries[name] = {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": name}}}
        elif name in FACTS:  # data, never a $(VAR) reference: kubelet turns $$ back into $
            entries[name] = {"name": name, "value": str(env[name]).replace("$", "$$")}
        else:
            entries[name] = {"name": name, "value": str(env[name])}
    # the node is known only once the pod is scheduled: the kubelet fills it in (Downward API)
    entries[HOST] = {"name": HOST, "valueFrom": {"fieldRef": {"fieldPath": HOST_FIELD_PATH}}}
    return [entries[name] for name in sorted(entries)]


def pod_env(env: Mapping[str, str], image: KubernetesImage, gpus: int, gpu_type: GPUType | None = None) -> dict[str, str]:
    """The server's environment: the hub's, the image's (which replaces neither JupyterHub's
    nor gridspawner's facts), what a GPU type fixes, and the bind address for port 8888.
    ``GRIDSPAWNER_HOST`` is not in it: `build_pod` takes it from the pod's node."""
    out = dict(env)
    out.update(image.env)
    out.update({k: v for k, v in env.items() if k.startswith(FACTS_PREFIX)})
    if gpu_type is not None:
        out.update(gpu_type_env(gpus, gpu_type.product, mig_memory_gb(gpu_type.mig) if gpu_type.mig else None))
    # the JupyterLab extension's stops file: the pod's stops annotation, projected by kubelet
    out[STOPS_FILE] = f"{STOPS_DIR}/{STOPS_FILE_NAME}"
    prefix = out.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    # The hub reaches the server at http://<pod IP>:8888 — listen on every address there.
    out["JUPYTERHUB_SERVICE_URL"] = f"http://0.0.0.0:{PORT}{prefix}"
    if gpus == 0:
        # the NVIDIA runtime otherwise exposes every GPU of the node to pods that asked for none
        out["NVIDIA_VISIBLE_DEVICES"] = "void"
    return out


def stops_volume() -> dict:
    """The downwardAPI volume holding the stops file: the pod's `STOPS_ANNOTATION`, which the
    kubelet writes to ``stops.json`` and refreshes when the annotation changes (at its next
    sync, within about a minute: docs/admin/lab-extension.md)."""
    return {"name": STOPS_VOLUME, "downwardAPI": {
        "defaultMode": 0o444,
        "items": [{"path": STOPS_FILE_NAME, "fieldRef": {"fieldPath": f"metadata.annotations['{STOPS_ANNOTATION}']"}}],
    }}


def stops_patch(uid: str, entries: list[dict]) -> dict:
    """The strategic-merge patch announcing ``entries`` to the pod whose uid is ``uid`` (the
    uid makes it fail with 422 on a newer pod of the same name: uids are immutable)."""
    return {"metadata": {"uid": uid, "annotations": {STOPS_ANNOTATION: stops_document(entries)}}}


def _quantity_cpu(cpu: float) -> str:
    return f"{cpu:g}" if float(cpu) >= 1 and float(cpu).is_integer() else f"{int(round(cpu * 1000))}m"


def build_pod(
    settings: KubernetesSettings,
    image: KubernetesImage,
    *,
    user: str,
    server_name: str,
    names: ServerNames,
    env: Mapping[str, str],
    cmd: tuple[str, ...],
    args: tuple[str, ...],
    gpus: int,
    gpu_memory: int,
    cpu: float | None,
    memory: int | None,
    tolerance: float,
    gpu_type: GPUType | None = None,
    launch_id: str = "",
    summary: str = "",
    node_vram_mib: tuple[int, ...] = (),
) -> dict:
    """The single-user server pod. ``node_vram_mib``: the VRAM labels of the cluster's GPU
    nodes, for the smallest-card preference (see `gpu_scheduling`)."""
    gpu = gpu_scheduling(settings, gpus, gpu_memory, tolerance, gpu_type, node_vram_mib)
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    cpu = cpu if cpu is not None else settings.default_cpu
    memory = memory if memory is not None else settings.default_memory
    if cpu:
        requests["cpu"] = limits["cpu"] = _quantity_cpu(cpu)
    if memory:
        requests["memory"] = limits["memory"] = f"{memory}Gi"
    for res, n in gpu.resources.items():  # extended resources: limit must equal request
        requests[res] = limits[res] = n

    server_cmd = list(image.cmd if image.cmd is not None else cmd)
    keep_entrypoint = image.keep_entrypoint if image.keep_entrypoint is not None else settings.keep_entrypoint
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image.image,
        # Kept: the image's ENTRYPOINT (Jupyter Docker Stacks: tini -g -- start.sh, which runs
        # the start hooks and then its arguments) starts the server, as kubespawner does.
        # Not kept: the server command replaces the ENTRYPOINT.
        "command": [] if keep_entrypoint else server_cmd,
        "args": [*server_cmd, *args] if keep_entrypoint else list(args),
        "env": _env_list(pod_env(env, image, gpus, gpu_type), names.secret),
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"},
                         {"name": STOPS_VOLUME, "mountPath": STOPS_DIR, "readOnly": True}],
        # Ready = the server accepts connections, so start() returns a URL that answers
        "readinessProbe": {"tcpSocket": {"port": PORT_NAME}, "periodSeconds": 2, "failureThreshold": 3},
    }
    pull = image.pull_policy or settings.image_pull_policy
    if pull:
        container["imagePullPolicy"] = pull
    if not container["command"]:
        del container["command"]
    volumes: list[dict] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm_size}}, stops_volume()]
    if settings.home_volume is not None:
        volumes.append({"name": "home", "persistentVolumeClaim": {"claimName": names.home_claim}})
        container["volumeMounts"].append({"name": "home", "mountPath": settings.home_volume.mount_path})

    annotations = dict(settings.extra_annotations)
    annotations.update({USER_ANNOTATION: user, SERVER_ANNOTATION: server_name, STOPS_ANNOTATION: stops_document([])})
    if launch_id:
        annotations[LAUNCH_ANNOTATION] = launch_id
    if summary:
        annotations[REQUEST_ANNOTATION] = summary

    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "restartPolicy": "Never",  # a server that exits is stopped; the hub restarts it
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "automountServiceAccountToken": settings.service_account is not None,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_group,
            "fsGroup": settings.fs_group,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if settings.service_account is not None:
        spec["serviceAccountName"] = settings.service_account
    node_selector = {**settings.node_selector, **gpu.node_selector}
    if node_selector:
        spec["nodeSelector"] = node_selector
    tolerations = [dict(t) for t in (*settings.tolerations, *gpu.tolerations)]
    if tolerations:
        spec["tolerations"] = tolerations
    node_affinity: dict[str, Any] = {}
    if gpu.match_expressions:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [{"matchExpressions": [dict(e) for e in gpu.match_expressions]}]
        }
    if gpu.preferred:
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [dict(t) for t in gpu.preferred]
    if node_affinity:
        spec["affinity"] = {"nodeAffinity": node_affinity}
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in settings.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.pod,
            "labels": common_labels(settings, user, server_name),
            "annotations": annotations,
        },
        "spec": spec,
    }
