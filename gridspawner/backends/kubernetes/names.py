"""PURE: the names, labels, annotations and selectors of every object this backend makes,
and `BuildError`, which every builder raises for a request it cannot express.

The shared watches, the orphan-Secret sweep and zero-to-jupyterhub's NetworkPolicies all
select on these, so they are one vocabulary, kept in one place.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from .settings import KubernetesSettings

CONTAINER = "notebook"
MANAGED_BY = "gridspawner"

#: label every object of ours carries; the shared watches select on it
MANAGED_LABEL = "app.kubernetes.io/managed-by"
BACKEND_LABEL = "gridspawner.io/backend"
#: which hub made it (`gridspawner.hub_identity`, as a label value): crash recovery reclaims
#: only pods of its own hub (and pods made before hubs had ids, which have no such label)
HUB_LABEL = "gridspawner.io/hub"
USER_LABEL = "hub.jupyter.org/username"
SERVER_LABEL = "hub.jupyter.org/servername"
USER_ANNOTATION = "hub.jupyter.org/username"
SERVER_ANNOTATION = "hub.jupyter.org/servername"
LAUNCH_ANNOTATION = "gridspawner.io/launch-id"
#: label on the per-server Secret: which launch made it (the pod carries it as annotation)
LAUNCH_LABEL = "gridspawner.io/launch-id"
#: annotation on the pod: the uid of its Secret, so a sweep deletes exactly that Secret
SECRET_UID_ANNOTATION = "gridspawner.io/secret-uid"
SECRET_COMPONENT = "singleuser-secret"
SECRET_SUFFIX = "-secret"
#: annotation on the pod: its data mounts' Secrets, "name=uid,name=uid" (for the pod watch)
MOUNT_SECRETS_ANNOTATION = "gridspawner.io/mount-secrets"
_MOUNT_SECRET_RE = re.compile(r"(.+)-secret-m[0-9]{1,3}")
REQUEST_ANNOTATION = "gridspawner.io/request"
#: annotation on the pod: the stops the hub plans (the stops file's JSON), projected into the
#: server's stops file by a downwardAPI volume (`STOPS_VOLUME` at `STOPS_DIR`)
STOPS_ANNOTATION = "gridspawner.io/stops"
STOPS_VOLUME = "gridspawner-stops"
STOPS_DIR = "/etc/gridspawner"
#: label on a notebook run's pod and Secrets (the run id): the hub's pod reconciler, the
#: ended-server removal and the Secret sweep leave these alone (the runs executor owns them)
RUN_LABEL = "gridspawner.io/run"
#: ``component`` of a run's Secrets (not ``singleuser-secret``: out of the hub's sweep)
RUN_SECRET_COMPONENT = "notebook-run-secret"

_LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


class BuildError(ValueError):
    """The request cannot be expressed on this backend (a user-facing message)."""


# --------------------------------------------------------------------------- names


def _digest(*parts: str, n: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:n]


def _readable(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower())[:limit].strip("-")


def label_value(text: str) -> str:
    """``text`` as a valid label value; unchanged when it already is one, else a readable
    part plus a hash of the original, so two different names never share a label."""
    if len(text) <= 63 and _LABEL_VALUE_RE.fullmatch(text):
        return text
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:50].strip("-_.")
    return f"{readable}-{_digest(text)}" if readable else _digest(text)


@dataclass(frozen=True)
class ServerNames:
    """Object names for one (user, server): DNS-1123 labels of at most 63 characters."""

    pod: str
    secret: str
    home_claim: str


def server_names(user: str, server_name: str, settings: KubernetesSettings | None = None) -> ServerNames:
    """Stable, collision-free names: a readable part plus a hash of the exact (user, server)."""
    readable = _readable(f"{user}--{server_name}" if server_name else user, 36)
    pod = f"jupyter-{readable}-{_digest(user, server_name)}" if readable else f"jupyter-{_digest(user, server_name)}"
    per_server = bool(settings and settings.home_volume and settings.home_volume.per_server)
    if per_server:
        claim = f"home-{readable}-{_digest('home', user, server_name)}" if readable else f"home-{_digest('home', user, server_name)}"
    else:
        ruser = _readable(user, 36)
        claim = f"home-{ruser}-{_digest('home', user)}" if ruser else f"home-{_digest('home', user)}"
    return ServerNames(pod=pod, secret=secret_name(pod), home_claim=claim)


def secret_name(pod: str) -> str:
    """The name of the per-server Secret of ``pod``."""
    return f"{pod}{SECRET_SUFFIX}"


def pod_of_secret(secret: str) -> str | None:
    """The pod a per-server Secret (or one of its data mounts' Secrets, ``…-secret-m<i>``)
    belongs to (None: not one of ours by its name)."""
    m = _MOUNT_SECRET_RE.fullmatch(secret)
    if m:
        return m.group(1)
    return secret[: -len(SECRET_SUFFIX)] if secret.endswith(SECRET_SUFFIX) and len(secret) > len(SECRET_SUFFIX) else None


def mount_secrets_of(pod: Mapping) -> list[tuple[str, str | None]]:
    """(name, uid) of the data mount Secrets a pod's annotation names."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(MOUNT_SECRETS_ANNOTATION) or ""
    out = []
    for item in text.split(","):
        name, _, uid = item.partition("=")
        if name:
            out.append((name, uid or None))
    return out


# --------------------------------------------------------------------------- labels


def common_labels(settings: KubernetesSettings, user: str, server_name: str) -> dict[str, str]:
    """zero-to-jupyterhub's NetworkPolicies select ``component``/``app`` and let pods with
    ``hub.jupyter.org/network-access-hub`` reach the hub; the rest is ours."""
    labels = dict(settings.extra_labels)
    labels.update(
        {
            "app": "jupyterhub",
            "component": "singleuser-server",
            "hub.jupyter.org/network-access-hub": "true",
            MANAGED_LABEL: MANAGED_BY,
            BACKEND_LABEL: label_value(settings.name),
            USER_LABEL: label_value(user),
            SERVER_LABEL: label_value(server_name),
        }
    )
    return labels


def is_run(manifest: Mapping) -> bool:
    """Whether ``manifest`` (a pod or Secret) belongs to a notebook run, not a server."""
    return bool(((manifest.get("metadata") or {}).get("labels") or {}).get(RUN_LABEL))


def run_names(run_id: str) -> ServerNames:
    """The pod and Secret of a notebook run (no home claim of its own: ``home_claim`` is
    the user's, filled in by the caller). Unique per run id, at most 63 characters."""
    readable = _readable(run_id, 40)
    pod = f"run-{readable}-{_digest('run', run_id)}" if readable else f"run-{_digest('run', run_id)}"
    return ServerNames(pod=pod, secret=secret_name(pod), home_claim="")


def mark_hub(manifest: dict, hub_id: str) -> dict:
    """Label ``manifest`` (a pod or Secret) with the hub that makes it (none without an id)."""
    if hub_id:
        manifest.setdefault("metadata", {}).setdefault("labels", {})[HUB_LABEL] = label_value(hub_id)
    return manifest


def pod_selector(settings: KubernetesSettings) -> str:
    """The label selector of the shared pod watch: every pod this backend made."""
    return f"{MANAGED_LABEL}={MANAGED_BY},{BACKEND_LABEL}={label_value(settings.name)}"


def secret_selector(settings: KubernetesSettings) -> str:
    """The label selector of this backend's per-server Secrets (for the orphan sweep)."""
    return f"{pod_selector(settings)},component={SECRET_COMPONENT}"


def api_time(text: object) -> float | None:
    """A Kubernetes timestamp (RFC 3339, ``2026-12-07T16:00:00Z``) as a time.time() value;
    None when it is absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
