"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Strategic merge follows the patchMergeKey/patchStrategy tags of core/v1 for the lists clients
actually patch (containers by name, env by name, ownerReferences by uid, conditions by type...),
and honours `$patch: delete|replace` and `$setElementOrder` (ignored) / `$deleteFromPrimitiveList`.
"""

from __future__ import annotations

import copy
from typing import Any

from .util import bad_request

# list field name → merge key (from the Go struct tags: patchStrategy:"merge" patchMergeKey:"...")
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "ports": "containerPort",
    "ownerReferences": "uid", "conditions": "type", "imagePullSecrets": "name", "hostAliases": "ip",
    "taints": "key", "addresses": "type", "containerStatuses": "name", "initContainerStatuses": "name",
    "podIPs": "ip", "hostIPs": "ip", "resourceClaims": "name", "topologySpreadConstraints": "topologyKey",
}
PRIMITIVE_MERGE = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge(target: Any, patch: Any, field: str | None = None) -> Any:
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        out = copy.deepcopy(target) if isinstance(target, dict) else {}
        for k, v in patch.items():
            if k.startswith("$setElementOrder/") or k == "$retainKeys":
                continue
            if k.startswith("$deleteFromPrimitiveList/"):
                name = k.split("/", 1)[1]
                out[name] = [x for x in out.get(name) or [] if x not in v]
                continue
            if v is None:
                out.pop(k, None)
            else:
                merged = strategic_merge(out.get(k), v, k)
                if merged is None and isinstance(v, dict) and v.get("$patch") == "delete":
                    out.pop(k, None)
                else:
                    out[k] = merged
        return out
    if isinstance(patch, list):
        if field in PRIMITIVE_MERGE:
            cur = list(target or [])
            return cur + [x for x in patch if x not in cur]
        key = MERGE_KEYS.get(field or "")
        if not key or not all(isinstance(x, dict) for x in patch):
            return [x for x in copy.deepcopy(patch) if not (isinstance(x, dict) and x.get("$patch"))]
        if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
            return [x for x in copy.deepcopy(patch) if not x.get("$patch")]
        cur = copy.deepcopy(target) if isinstance(target, list) else []
        for item in patch:
            if key not in item:
                raise bad_request(f"map: {item} does not contain declared merge key: {key}")
            idx = next((i for i, x in enumerate(cur) if isinstance(x, dict) and x.get(key) == item[key]), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    cur.pop(idx)
                continue
            if idx is None:
                cur.append({k: v for k, v in item.items() if v is not None and not k.startswith("$")})
            else:
                cur[idx] = strategic_merge(cur[idx], item)
        return cur
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"the server rejected our request due to an error in our request: invalid path {path}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        if isinstance(doc, list):
            doc = doc[int(p)]
        else:
            doc = doc[p]
    return doc


def json_patch(doc: Any, ops: list) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            kind, parts = op["op"], _pointer(op["path"])
            if kind == "test":
                if _walk(doc, parts) != op.get("value"):
                    raise bad_request(f"the server rejected our request due to an error in our request: "
                                      f"testing value {op['path']} failed")
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                doc = json_patch(doc, [{"op": "add", "path": op["path"], "value": value}])
                continue
            parent = _walk(doc, parts[:-1])
            last = parts[-1]
            if kind == "add":
                if isinstance(parent, list):
                    parent.insert(len(parent) if last == "-" else int(last), op["value"])
                else:
                    parent[last] = op["value"]
            elif kind == "replace":
                if isinstance(parent, list):
                    parent[int(last)] = op["value"]
                else:
                    if last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            elif kind == "remove":
                if isinstance(parent, list):
                    parent.pop(int(last))
                else:
                    del parent[last]
            else:
                raise bad_request(f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiErrorLike(op) from None
    return doc


def ApiErrorLike(op: dict):  # noqa: N802 - mirrors the apiserver wording
    from .util import ApiError

    return ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                    f"jsonpatch {op.get('op')} operation does not apply: doc is missing path: "
                                    f"\"{op.get('path')}\": missing value")
