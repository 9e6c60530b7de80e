"""PURE readers of a pod as the watch sees it: ready, over (with exit status and reason), or
stuck in a way that waiting cannot fix."""

from __future__ import annotations

from typing import Mapping


def pod_ready(pod: Mapping | None) -> bool:
    if not pod:
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def pod_finished(pod: Mapping | None) -> bool:
    """Phase Succeeded or Failed: its containers are over for good (``restartPolicy: Never``),
    whether the process exited, was killed or the kubelet evicted the pod."""
    return bool(pod) and (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_terminated(pod: Mapping | None) -> tuple[int, str] | None:
    """(exit status, reason) when the pod is over (or being deleted), else None."""
    if pod is None:
        return 1, "the pod no longer exists"
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        code = 0 if phase == "Succeeded" else 1
        reason = status.get("reason") or ""
        message = status.get("message") or ""
        for cs in status.get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                code = int(term.get("exitCode", code))
                reason = reason or term.get("reason", "")
                message = message or term.get("message", "")
        text = ", ".join(p.strip() for p in (reason, message) if p.strip()) or phase.lower()
        return code, text
    if meta.get("deletionTimestamp"):
        return 1, "the pod is being deleted"
    return None


#: an image pull error no retry fixes (the registry said so): the verdict at once
_PULL_NEVER = ("not found", "manifest unknown", "unauthorized", "denied", "forbidden", "401 ", "403 ")


def container_waiting_problem(pod: Mapping) -> str | None:
    """A reason the container will never start by itself (bad image, bad config)."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"):
            message = (waiting.get("message") or "").lower()
            if waiting.get("reason") == "ErrImagePull" and not any(w in message for w in _PULL_NEVER):
                continue  # pulls are retried; ImagePullBackOff is the verdict
            return f"{waiting.get('reason')}: {waiting.get('message', '')}".rstrip(": ")
    return None
