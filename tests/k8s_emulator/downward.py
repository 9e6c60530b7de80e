"""downwardAPI volumes in run mode: the kubelet's projection of pod fields into files.

A pod's ``downwardAPI`` volumes (and the ``downwardAPI`` sources of ``projected`` volumes)
become directories under the pod's scratch directory (`Runner.pod_dir`), written when the
pod's volumes are mounted and rewritten whenever the projected fields change (a PATCH of an
annotation), as the kubelet does at its next sync (a real cluster takes up to about a
minute; here it is at once). Files are replaced atomically, like the kubelet's ``..data``
symlink swap.

The container sees them at their ``mountPath``; a local process cannot, so an environment
value under a downwardAPI ``mountPath`` is rewritten to the local directory before the
container starts (as the runner rewrites 0.0.0.0 to the pod IP), and `local_path` answers
a test asking for a file by its path inside the container.
"""

from __future__ import annotations

import os
import re
import tempfile

_KEYED = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def field_value(pod: dict, path: str) -> str:
    """The text the kubelet writes for a downward API ``fieldRef.fieldPath``."""
    meta = pod.get("metadata") or {}
    m = _KEYED.fullmatch(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{items[k]}"' for k in sorted(items))
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(path.split(".")[1], ""))
    if path == "spec.nodeName":
        return str((pod.get("spec") or {}).get("nodeName", ""))
    return ""


def _items(volume: dict) -> list[dict]:
    if "downwardAPI" in volume:
        return list(volume["downwardAPI"].get("items") or [])
    out: list[dict] = []
    for source in (volume.get("projected") or {}).get("sources") or []:
        out.extend((source.get("downwardAPI") or {}).get("items") or [])
    return out


def volume_dir(pod_dir: str, volume: str) -> str:
    return os.path.join(pod_dir, "volumes", volume)


def files(pod: dict, pod_dir: str) -> dict[str, str]:
    """Local path → content of every downward API file of ``pod``."""
    out = {}
    for v in (pod.get("spec") or {}).get("volumes") or []:
        for item in _items(v):
            ref = item.get("fieldRef") or {}
            if ref.get("fieldPath"):
                out[os.path.join(volume_dir(pod_dir, v["name"]), item["path"])] = field_value(pod, ref["fieldPath"])
    return out


def write(pod: dict, pod_dir: str) -> None:
    """Write (or refresh) the pod's downward API files; unchanged files are left alone."""
    for path, content in files(pod, pod_dir).items():
        try:
            with open(path) as f:
                if f.read() == content:
                    continue
        except OSError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def _mounts(pod: dict, container: dict, pod_dir: str) -> list[tuple[str, str]]:
    """(mountPath, local directory) of the container's downward API volumes."""
    projected = {v["name"] for v in (pod.get("spec") or {}).get("volumes") or [] if _items(v)}
    return [(m["mountPath"].rstrip("/"), volume_dir(pod_dir, m["name"]))
            for m in container.get("volumeMounts") or [] if m.get("name") in projected]


def map_env(env: dict[str, str], pod: dict, container: dict, pod_dir: str) -> dict[str, str]:
    """``env`` with values under a downward API mountPath pointing at the local directory."""
    mounts = _mounts(pod, container, pod_dir)
    out = {}
    for k, v in env.items():
        for mount, local in mounts:
            if v == mount or v.startswith(mount + "/"):
                v = local + v[len(mount):]
                break
        out[k] = v
    return out


def local_path(pod: dict, container: dict, pod_dir: str, path: str) -> str | None:
    """Where the file the container sees at ``path`` lies here (None: not a downward API file)."""
    for mount, local in _mounts(pod, container, pod_dir):
        if path.startswith(mount + "/"):
            return local + path[len(mount):]
    return None
