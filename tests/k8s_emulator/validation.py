"""Validation and defaulting, as the apiserver does before storing an object.

Two layers, both → 422 Invalid and recorded in `Emulator.validation_failures`:
1. The real OpenAPI schema via kubernetes_validate (strict: unknown fields are errors).
   A compiled validator per kind is cached for speed; any object it rejects is re-checked
   with `kubernetes_validate.validate(obj, version, strict=True)` whose message is reported.
2. The semantic checks the schema cannot express (pkg/apis/core/validation), worded like the
   apiserver: names (RFC 1123 / 1035), label keys and values, quantities, extended-resource
   requests == limits, node-affinity operators (Gt/Lt need one integer), tolerations,
   volumeMounts naming existing volumes, container port names (IANA_SVC_NAME ≤ 15)...
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import threading
from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from .util import Cause, QuantityError, canonical_quantity, parse_quantity

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
MSG_1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
            "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
MSG_LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
MSG_QUALIFIED = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                 "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                 "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")

STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage", "storage", "pods"}


def _inv(field: str, value: Any, why: str) -> Cause:
    return Cause(field, "FieldValueInvalid", f'Invalid value: "{value}": {why}' if not isinstance(value, int)
                 else f"Invalid value: {value}: {why}")


def _req(field: str, why: str = "") -> Cause:
    return Cause(field, "FieldValueRequired", "Required value" + (f": {why}" if why else ""))


class SchemaValidator:
    """Strict OpenAPI validation against a Kubernetes version's schema (cached per kind)."""

    def __init__(self, version: str = "1.33"):
        self.version = version
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _validator(self, api_version: str, kind: str):
        key = (api_version, kind)
        with self._lock:
            if key not in self._cache:
                ver = [v for v in kubernetes_validate.utils.all_versions()
                       if kubernetes_validate.utils.major_minor(v) <= self.version][-1]
                d = f"v{ver}-local-strict"
                group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
                schema = schema_contents(f"kubernetes-json-schema/{d}/{kind.lower()}-{group}.json", self.version)
                defs = schema_contents(f"kubernetes-json-schema/{d}/_definitions.json", self.version)
                reg = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
                self._cache[key] = jsonschema.validators.Draft202012Validator(schema, registry=reg)
            return self._cache[key]

    def check(self, obj: dict) -> Cause | None:
        v = self._validator(obj["apiVersion"], obj["kind"])
        if v.is_valid(obj):
            return None
        try:  # the authoritative verdict and wording
            kubernetes_validate.validate(obj, self.version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            return Cause(path, "FieldValueInvalid", e.message)
        return None


# ------------------------------------------------------------------ semantic checks
def check_name(field: str, name: Any, pattern: re.Pattern, msg: str, max_len: int) -> list[Cause]:
    if not isinstance(name, str) or not name:
        return [_req(field)]
    out = []
    if len(name) > max_len:
        out.append(_inv(field, name, f"must be no more than {max_len} characters"))
    if not pattern.match(name):
        out.append(_inv(field, name, msg))
    return out


def check_qualified_key(field: str, key: str) -> list[Cause]:
    prefix, _, name = key.rpartition("/")
    out = []
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        out.append(_inv(field, key, "prefix part " + MSG_SUBDOMAIN))
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        out.append(_inv(field, key, MSG_QUALIFIED if name and len(name) <= 63
                        else "name part must be no more than 63 characters"))
    return out


def check_labels(field: str, labels: dict | None) -> list[Cause]:
    out = []
    for k, v in (labels or {}).items():
        out += check_qualified_key(field, k)
        if not isinstance(v, str):
            out.append(_inv(f"{field}", v, "must be a string"))
        elif len(v) > 63:
            out.append(_inv(field, v, "must be no more than 63 characters"))
        elif not LABEL_VALUE.match(v):
            out.append(_inv(field, v, MSG_LABEL_VALUE))
    return out


NAME_RULES = {
    "Service": (DNS1035_LABEL, MSG_1035, 63),
    "Namespace": (DNS1123_LABEL, MSG_LABEL, 63),
}


def check_metadata(kind: str, meta: dict) -> list[Cause]:
    out: list[Cause] = []
    pattern, msg, max_len = NAME_RULES.get(kind, (DNS1123_SUBDOMAIN, MSG_SUBDOMAIN, 253))
    if not meta.get("name") and not meta.get("generateName"):
        out.append(_req("metadata.name", "name or generateName is required"))
    elif meta.get("name"):
        out += check_name("metadata.name", meta["name"], pattern, msg, max_len)
    out += check_labels("metadata.labels", meta.get("labels"))
    for k in (meta.get("annotations") or {}):
        out += check_qualified_key("metadata.annotations", k)
    controllers = 0
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        f = f"metadata.ownerReferences[{i}]"
        for req in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(req):
                out.append(_req(f"{f}.{req}", f"{req} must not be empty" if req != "uid" else "uid must not be empty"))
        controllers += bool(ref.get("controller"))
    if controllers > 1:
        out.append(_inv("metadata.ownerReferences", "…", "Only one reference can have Controller set to true"))
    return out


def check_resources(field: str, res: dict | None) -> list[Cause]:
    out: list[Cause] = []
    res = res or {}
    parsed: dict[str, dict] = {"limits": {}, "requests": {}}
    for section in ("limits", "requests"):
        for name, value in (res.get(section) or {}).items():
            f = f"{field}.{section}[{name}]"
            try:
                q = parse_quantity(value)
            except QuantityError as e:
                out.append(_inv(f, value, str(e)))
                continue
            if q < 0:
                out.append(_inv(f, value, "must be greater than or equal to 0"))
            extended = "/" in name and not name.startswith(("kubernetes.io/", "requests.", "hugepages-"))
            if extended and q != q.to_integral_value():
                out.append(_inv(f, value, "must be an integer"))
            parsed[section][name] = q
    for name, req in parsed["requests"].items():
        lim = parsed["limits"].get(name)
        extended = name not in STANDARD_RESOURCES and not name.startswith("hugepages-")
        if extended:
            if lim is None:
                out.append(_req(f"{field}.limits", "Limit must be set for non overcommitable resources"))
            elif req != lim:
                out.append(_inv(f"{field}.requests[{name}]", canonical_quantity(res["requests"][name]),
                                f"must be equal to {name} limit of {canonical_quantity(res['limits'][name])}"))
        elif lim is not None and req > lim:
            out.append(_inv(f"{field}.requests", canonical_quantity(res["requests"][name]),
                            f"must be less than or equal to {name} limit of {canonical_quantity(res['limits'][name])}"))
    return out


IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def check_container(field: str, c: dict, volumes: set[str], names: set[str]) -> list[Cause]:
    out = check_name(f"{field}.name", c.get("name"), DNS1123_LABEL, MSG_LABEL, 63)
    if c.get("name") in names:
        out.append(Cause(f"{field}.name", "FieldValueDuplicate", f'Duplicate value: "{c.get("name")}"'))
    names.add(c.get("name"))
    if not c.get("image"):
        out.append(_req(f"{field}.image"))
    port_names = set()
    for i, p in enumerate(c.get("ports") or []):
        pf = f"{field}.ports[{i}]"
        cp = p.get("containerPort")
        if not isinstance(cp, int) or not 1 <= cp <= 65535:
            out.append(_inv(f"{pf}.containerPort", cp, "must be between 1 and 65535, inclusive"))
        n = p.get("name")
        if n is not None:
            if len(n) > 15:
                out.append(_inv(f"{pf}.name", n, "must be no more than 15 characters"))
            elif not IANA_SVC_NAME.match(n) or "--" in n or not re.search("[a-z]", n):
                out.append(_inv(f"{pf}.name", n, "must contain only alpha-numeric characters (a-z, 0-9), "
                                "and hyphens (-)" if "--" not in n else "must not contain consecutive hyphens"))
            if n in port_names:
                out.append(Cause(f"{pf}.name", "FieldValueDuplicate", f'Duplicate value: "{n}"'))
            port_names.add(n)
        if p.get("protocol") not in (None, "TCP", "UDP", "SCTP"):
            out.append(Cause(f"{pf}.protocol", "FieldValueNotSupported",
                             f'Unsupported value: "{p.get("protocol")}": supported values: "SCTP", "TCP", "UDP"'))
    for i, e in enumerate(c.get("env") or []):
        ef = f"{field}.env[{i}]"
        if not e.get("name"):
            out.append(_req(f"{ef}.name"))
        vf = e.get("valueFrom")
        if vf is not None:
            if e.get("value"):
                out.append(_inv(f"{ef}.valueFrom", "", "may not be specified when `value` is not empty"))
            for ref in ("secretKeyRef", "configMapKeyRef"):
                if ref in vf:
                    if not vf[ref].get("key"):
                        out.append(_req(f"{ef}.valueFrom.{ref}.key"))
                    if not vf[ref].get("name"):
                        out.append(_req(f"{ef}.valueFrom.{ref}.name"))
            if len([k for k in vf if vf[k] is not None]) != 1:
                out.append(_inv(f"{ef}.valueFrom", "", "may not have more than one field specified at a time"))
    mount_paths = set()
    for i, m in enumerate(c.get("volumeMounts") or []):
        mf = f"{field}.volumeMounts[{i}]"
        if m.get("name") not in volumes:
            out.append(Cause(f"{mf}.name", "FieldValueNotFound", f'Not found: "{m.get("name")}"'))
        if not m.get("mountPath"):
            out.append(_req(f"{mf}.mountPath"))
        elif m["mountPath"] in mount_paths:
            out.append(_inv(f"{mf}.mountPath", m["mountPath"], "must be unique"))
        mount_paths.add(m.get("mountPath"))
    out += check_resources(f"{field}.resources", c.get("resources"))
    return out


VOLUME_SOURCES = {"emptyDir", "secret", "configMap", "persistentVolumeClaim", "hostPath", "csi", "projected",
                  "nfs", "downwardAPI", "ephemeral", "image", "iscsi", "cephfs", "rbd", "fc", "flexVolume"}


def check_affinity_terms(field: str, terms: list | None) -> list[Cause]:
    out = []
    for ti, term in enumerate(terms or []):
        for key in ("matchExpressions", "matchFields"):
            for ei, e in enumerate(term.get(key) or []):
                f = f"{field}[{ti}].{key}[{ei}]"
                op, vals = e.get("operator"), e.get("values") or []
                if op in ("In", "NotIn") and not vals:
                    out.append(_req(f"{f}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
                elif op in ("Exists", "DoesNotExist") and vals:
                    out.append(Cause(f"{f}.values", "FieldValueForbidden",
                                     "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
                elif op in ("Gt", "Lt"):
                    if len(vals) != 1:
                        out.append(_req(f"{f}.values",
                                        "must be specified single value when `operator` is 'Lt' or 'Gt'"))
                    elif not re.fullmatch(r"-?\d+", str(vals[0])):
                        out.append(_inv(f"{f}.values[0]", vals[0], "must be an integer"))
                elif op not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
                    out.append(Cause(f"{f}.operator", "FieldValueNotSupported",
                                     f'Unsupported value: "{op}": supported values: "DoesNotExist", "Exists", '
                                     '"Gt", "In", "Lt", "NotIn"'))
                if key == "matchExpressions":
                    out += check_qualified_key(f"{f}.key", e.get("key", ""))
    return out


def check_pod_spec(spec: dict, field: str = "spec") -> list[Cause]:
    out: list[Cause] = []
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        vf = f"{field}.volumes[{i}]"
        out += check_name(f"{vf}.name", v.get("name"), DNS1123_LABEL, MSG_LABEL, 63)
        if v.get("name") in volumes:
            out.append(Cause(f"{vf}.name", "FieldValueDuplicate", f'Duplicate value: "{v.get("name")}"'))
        volumes.add(v.get("name"))
        sources = [k for k in v if k in VOLUME_SOURCES]
        if not sources:
            out.append(_req(vf, "must specify a volume type"))
        elif len(sources) > 1:
            out.append(Cause(f"{vf}.{sources[1]}", "FieldValueForbidden", "Forbidden: may not specify more than 1 volume type"))
        if "persistentVolumeClaim" in v and not v["persistentVolumeClaim"].get("claimName"):
            out.append(_req(f"{vf}.persistentVolumeClaim.claimName"))
        if "secret" in v and not v["secret"].get("secretName"):
            out.append(_req(f"{vf}.secret.secretName"))
    containers = spec.get("containers") or []
    if not containers:
        out.append(_req(f"{field}.containers"))
    names: set[str] = set()
    for i, c in enumerate(containers):
        out += check_container(f"{field}.containers[{i}]", c, volumes, names)
    for i, c in enumerate(spec.get("initContainers") or []):
        out += check_container(f"{field}.initContainers[{i}]", c, volumes, names)
    rp = spec.get("restartPolicy")
    if rp is not None and rp not in ("Always", "OnFailure", "Never"):
        out.append(Cause(f"{field}.restartPolicy", "FieldValueNotSupported",
                         f'Unsupported value: "{rp}": supported values: "Always", "OnFailure", "Never"'))
    out += check_labels(f"{field}.nodeSelector", spec.get("nodeSelector"))
    na = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is not None:
        terms = req.get("nodeSelectorTerms")
        if not terms:
            out.append(_req(f"{field}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
                            "nodeSelectorTerms", "must have at least one node selector term"))
        out += check_affinity_terms(f"{field}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                                    ".nodeSelectorTerms", terms)
    for i, p in enumerate(na.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        out += check_affinity_terms(f"{field}.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"
                                    f"[{i}].preference", [p.get("preference") or {}])
    for i, t in enumerate(spec.get("tolerations") or []):
        tf = f"{field}.tolerations[{i}]"
        op = t.get("operator") or "Equal"
        if op == "Exists" and t.get("value"):
            out.append(_inv(f"{tf}.operator", op, "value must be empty when `operator` is 'Exists'"))
        if op not in ("Equal", "Exists"):
            out.append(Cause(f"{tf}.operator", "FieldValueNotSupported",
                             f'Unsupported value: "{op}": supported values: "Equal", "Exists"'))
        if not t.get("key") and op != "Exists":
            out.append(_inv(f"{tf}.operator", op, "operator must be Exists when `key` is empty, which means "
                            '"match all values and all keys"'))
        eff = t.get("effect")
        if eff not in (None, "", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            out.append(Cause(f"{tf}.effect", "FieldValueNotSupported",
                             f'Unsupported value: "{eff}": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'))
        if t.get("tolerationSeconds") is not None and eff != "NoExecute":
            out.append(_inv(f"{tf}.effect", eff or "", "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if t.get("key"):
            out += check_qualified_key(f"{tf}.key", t["key"])
    return out


def check_secret(obj: dict) -> list[Cause]:
    out = []
    total = 0
    for k, v in (obj.get("data") or {}).items():
        if not CONFIG_KEY.match(k):
            out.append(_inv(f"data[{k}]", k, "a valid config key must consist of alphanumeric characters, '-', "
                            "'_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                            "is '[-._a-zA-Z0-9]+')"))
        try:
            total += len(base64.b64decode(v or "", validate=True))
        except (binascii.Error, ValueError):
            out.append(_inv(f"data[{k}]", "<secret contents redacted>", "illegal base64 data"))
    for k, v in (obj.get("stringData") or {}).items():
        if not CONFIG_KEY.match(k):
            out.append(_inv(f"stringData[{k}]", k, "a valid config key must consist of alphanumeric characters"))
        total += len(str(v).encode())
    if total > 1024 * 1024:
        out.append(Cause("data", "FieldValueTooLong", "Too long: must have at most 1048576 bytes"))
    return out


def check_service(obj: dict) -> list[Cause]:
    spec = obj.get("spec") or {}
    out = []
    ports = spec.get("ports") or []
    if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
        out.append(_req("spec.ports"))
    for i, p in enumerate(ports):
        port = p.get("port")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            out.append(_inv(f"spec.ports[{i}].port", port, "must be between 1 and 65535, inclusive"))
        if len(ports) > 1 and not p.get("name"):
            out.append(_req(f"spec.ports[{i}].name"))
    out += check_labels("spec.selector", spec.get("selector"))
    return out


def check_pvc(obj: dict) -> list[Cause]:
    spec = obj.get("spec") or {}
    out = []
    if not spec.get("accessModes"):
        out.append(_req("spec.accessModes", "at least 1 access mode is required"))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        out.append(_req("spec.resources[storage]"))
    else:
        try:
            if parse_quantity(storage) <= 0:
                out.append(_inv("spec.resources[storage]", storage, "must be greater than zero"))
        except QuantityError as e:
            out.append(_inv("spec.resources[storage]", storage, str(e)))
    return out


def semantic_check(obj: dict) -> list[Cause]:
    kind = obj.get("kind")
    out = check_metadata(kind, obj.get("metadata") or {})
    if kind == "Pod":
        out += check_pod_spec(obj.get("spec") or {})
    elif kind == "Secret":
        out += check_secret(obj)
    elif kind == "Service":
        out += check_service(obj)
    elif kind == "PersistentVolumeClaim":
        out += check_pvc(obj)
    elif kind == "Event":
        if not (obj.get("involvedObject") or {}).get("name") and not (obj.get("involvedObject") or {}).get("kind"):
            out.append(_req("involvedObject"))
    return out


# ------------------------------------------------------------------ pod update rules
POD_UPDATE_FORBIDDEN = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
    "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
    "previously negative)"
)


def pod_spec_update_allowed(old: dict, new: dict) -> bool:
    def strip(spec: dict) -> dict:
        s = {k: v for k, v in spec.items() if k not in ("activeDeadlineSeconds", "tolerations",
                                                          "terminationGracePeriodSeconds", "schedulingGates")}
        for key in ("containers", "initContainers"):
            if key in s:
                s[key] = [{k: v for k, v in c.items() if k != "image"} for c in s[key]]
        return s

    return strip(old) == strip(new)


# ------------------------------------------------------------------ defaulting
_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choice(_GEN_ALPHABET) for _ in range(5))


def _default_container(c: dict) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image", "")
    tag = image.rsplit("/", 1)[-1]
    if "imagePullPolicy" not in c:
        c["imagePullPolicy"] = "Always" if ("@" not in image and (":" not in tag or tag.endswith(":latest"))) \
            else "IfNotPresent"
    res = c.setdefault("resources", {})
    for section in ("limits", "requests"):
        if section in res:
            res[section] = {k: canonical_quantity(v) for k, v in res[section].items()}
    # requests default to limits (pkg/apis/core/v1/defaults.go)
    for k, v in (res.get("limits") or {}).items():
        res.setdefault("requests", {}).setdefault(k, v)
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for e in c.get("env") or []:
        fr = (e.get("valueFrom") or {}).get("fieldRef")
        if fr is not None:
            fr.setdefault("apiVersion", "v1")


def qos_class(spec: dict) -> str:
    cs = spec.get("containers") or []
    reqs = [((c.get("resources") or {}).get("requests") or {}) for c in cs]
    lims = [((c.get("resources") or {}).get("limits") or {}) for c in cs]
    if not any(r.get("cpu") or r.get("memory") or l.get("cpu") or l.get("memory") for r, l in zip(reqs, lims)):
        return "BestEffort"
    for r, l in zip(reqs, lims):
        for k in ("cpu", "memory"):
            if not l.get(k) or r.get(k, l.get(k)) != l.get(k):
                return "Burstable"
    return "Guaranteed"


def default_pod(pod: dict) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    for c in spec.get("initContainers") or []:
        _default_container(c)
    for c in spec.get("containers") or []:
        _default_container(c)
    for v in spec.get("volumes") or []:
        if "secret" in v:
            v["secret"].setdefault("defaultMode", 420)
        if "configMap" in v:
            v["configMap"].setdefault("defaultMode", 420)
    # DefaultTolerationSeconds admission plugin
    tols = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tols) \
                and not any(t.get("operator") == "Exists" and not t.get("key") for t in tols):
            tols.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    # ServiceAccount admission plugin: the projected token volume (automount default true)
    if spec.get("automountServiceAccountToken", True) is not False:
        vol = "kube-api-access-" + "".join(random.choice(_GEN_ALPHABET) for _ in range(5))
        spec.setdefault("volumes", []).append({"name": vol, "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                               "fieldPath": "metadata.namespace"}}]}},
            ]}})
        for c in spec.get("containers") or []:
            if not any(m.get("mountPath") == "/var/run/secrets/kubernetes.io/serviceaccount"
                       for m in c.get("volumeMounts") or []):
                c.setdefault("volumeMounts", []).append({
                    "name": vol, "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


_cluster_ip_counter = [10]


def default_service(svc: dict) -> None:
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None":
        n = _cluster_ip_counter[0]
        _cluster_ip_counter[0] += 1
        spec.setdefault("clusterIP", f"10.96.{n // 250}.{n % 250 + 1}")
    spec["clusterIPs"] = [spec["clusterIP"]] if spec.get("clusterIP") else []
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p.get("port"))
    svc["status"] = {"loadBalancer": {}}


def default_secret(sec: dict) -> None:
    sec.setdefault("type", "Opaque")
    sd = sec.pop("stringData", None) or {}
    if sd:
        data = sec.setdefault("data", {})
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def default_pvc(pvc: dict) -> None:
    spec = pvc.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    spec.setdefault("storageClassName", "standard")
    res = spec.get("resources") or {}
    if "requests" in res:
        res["requests"] = {k: canonical_quantity(v) for k, v in res["requests"].items()}
    pvc["status"] = {"phase": "Pending"}


def default_namespace(ns: dict) -> None:
    ns.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = ns["metadata"]["name"]
    ns["spec"] = {"finalizers": ["kubernetes"]}
    ns["status"] = {"phase": "Active"}


DEFAULTERS = {"Pod": default_pod, "Service": default_service, "Secret": default_secret,
              "PersistentVolumeClaim": default_pvc, "Namespace": default_namespace}
