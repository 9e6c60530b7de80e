"""Settings of a ``kind: kubernetes`` backend and of what an image runs there — validated once.

Everything here is pure: `parse_settings` and `parse_image` turn the admin's dicts into frozen
dataclasses or raise `CatalogError` naming the exact key, so a typo stops the hub at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ...vocabulary import NAME, CatalogError, parse_duration
from ...server_env import FACTS

#: Kubernetes label keys: optional DNS prefix + "/" + name (≤ 63, alnum at both ends).
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY_RE = re.compile(rf"({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}")
_LABEL_VALUE_RE = re.compile(rf"({_LABEL_NAME})?")
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_QUANTITY_RE = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?")
_MIG_RE = re.compile(r"[1-9][0-9]?g\.[1-9][0-9]{0,3}gb")
_RESOURCE_RE = re.compile(rf"{_DNS_SUBDOMAIN}/{_LABEL_NAME}")

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

DEFAULT_GPU_TOLERATIONS = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)


def _frozen(d: Mapping) -> Mapping:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class GPUType:
    """An admin-offered GPU choice: a product (``nvidia.com/gpu.product``) or a MIG profile."""

    key: str
    display_name: str
    product: str | None = None
    mig: str | None = None  # e.g. "1g.10gb" → resource nvidia.com/mig-1g.10gb


@dataclass(frozen=True)
class HomeVolume:
    """A per-user (or per-server) PersistentVolumeClaim mounted as home; kept on stop."""

    size: str = "10Gi"
    storage_class: str | None = None
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    mount_path: str = "/home/jovyan"
    per_server: bool = False  # False: one claim per user, shared by the user's named servers


@dataclass(frozen=True)
class KubernetesSettings:
    name: str
    namespace: str | None = None  # None: the hub pod's own namespace in-cluster, else "default"
    in_cluster: bool | None = None  # None: auto (in-cluster when KUBERNETES_SERVICE_HOST is set)
    kubeconfig: str | None = None
    context: str | None = None
    # GPUs
    gpu_resource: str = "nvidia.com/gpu"
    gpu_memory_label: str = "nvidia.com/gpu.memory"
    gpu_product_label: str = "nvidia.com/gpu.product"
    mig_profiles: tuple[str, ...] = ()
    gpu_types: Mapping[str, GPUType] = field(default_factory=dict)
    gpu_tolerations: tuple[Mapping, ...] = DEFAULT_GPU_TOLERATIONS
    gpu_node_selector: Mapping[str, str] = field(default_factory=dict)
    # every pod
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping, ...] = ()
    service_account: str | None = None  # None: no service account token in the pod
    run_as_user: int = 1000
    run_as_group: int = 100
    fs_group: int = 100
    shm_size: str = "1Gi"
    default_cpu: float | None = None
    default_memory: int | None = None  # GB
    image_pull_policy: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    #: run the server command through the image's ENTRYPOINT (as pod ``args``), e.g. the
    #: Jupyter Docker Stacks' tini + start.sh; False: as pod ``command``, replacing it
    keep_entrypoint: bool = True
    home_volume: HomeVolume | None = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    extra_annotations: Mapping[str, str] = field(default_factory=dict)
    # timing
    pending_timeout: float = 30.0
    start_timeout: float = 300.0
    stop_timeout: float = 60.0
    termination_grace_seconds: int = 30
    #: seconds added to a run's maximum run time in its pod's activeDeadlineSeconds
    #: (`batch_objects.deadline_once_started`): the executor's own timed_out comes first
    run_deadline_margin: float = 60.0
    api_retries: int = 5
    api_timeout: float = 30.0
    watch_timeout: int = 300  # seconds a watch request lasts before it is resumed
    # capacity
    capacity: bool = True
    capacity_all_namespaces: bool = False
    capacity_node_selector: str = ""


@dataclass(frozen=True)
class KubernetesImage:
    key: str
    image: str
    pull_policy: str | None = None
    cmd: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    keep_entrypoint: bool | None = None  # None: the backend's keep_entrypoint


SETTINGS_KEYS = (
    "namespace",
    "in_cluster",
    "kubeconfig",
    "context",
    "gpu_resource",
    "gpu_memory_label",
    "gpu_product_label",
    "mig_profiles",
    "gpu_types",
    "gpu_tolerations",
    "gpu_node_selector",
    "node_selector",
    "tolerations",
    "service_account",
    "run_as_user",
    "run_as_group",
    "fs_group",
    "shm_size",
    "default_cpu",
    "default_memory",
    "image_pull_policy",
    "image_pull_secrets",
    "keep_entrypoint",
    "home_volume",
    "extra_labels",
    "extra_annotations",
    "pending_timeout",
    "start_timeout",
    "stop_timeout",
    "termination_grace_seconds",
    "run_deadline_margin",
    "api_retries",
    "api_timeout",
    "watch_timeout",
    "capacity",
    "capacity_all_namespaces",
    "capacity_node_selector",
)

IMAGE_KEYS = ("image", "pull_policy", "cmd", "env", "keep_entrypoint")


# --------------------------------------------------------------------------- small checks


def _check_keys(raw: Mapping, allowed, key: str) -> None:
    for k in raw:
        if k not in allowed:
            raise CatalogError(f"{key}[{k!r}]", f"unknown setting; expected one of: {', '.join(sorted(allowed))}")


def _str(value: Any, key: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise CatalogError(key, f"must be a non-empty string (got {value!r})")
    return value


def _bool(value: Any, key: str, *, optional: bool = False) -> bool | None:
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise CatalogError(key, f"must be True or False (got {value!r})")
    return value


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CatalogError(key, f"must be an integer >= {minimum} (got {value!r})")
    return value


def _seconds(value: Any, key: str) -> float:
    seconds = parse_duration(value, key)
    if seconds is None:
        raise CatalogError(key, "must be a positive duration such as 30, '90s' or '5m'")
    return seconds


def _label_map(value: Any, key: str, *, values_are_labels: bool = True) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise CatalogError(key, f"must be a dict of label name → value (got {type(value).__name__})")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or len(k) > 316 or not _LABEL_KEY_RE.fullmatch(k):
            raise CatalogError(f"{key}[{k!r}]", "is not a valid Kubernetes label/annotation name")
        if not isinstance(v, str):
            raise CatalogError(f"{key}[{k!r}]", f"must be a string (got {v!r})")
        if values_are_labels and (len(v) > 63 or not _LABEL_VALUE_RE.fullmatch(v)):
            raise CatalogError(
                f"{key}[{k!r}]", "must be a valid label value (≤ 63 letters, digits, '-', '_', '.', alphanumeric at both ends)"
            )
        out[k] = v
    return out


def _quantity(value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str) or not _QUANTITY_RE.fullmatch(value):
        raise CatalogError(key, f"must be a Kubernetes quantity such as '1Gi' or '512Mi' (got {value!r})")
    return value


def _tolerations(value: Any, key: str) -> tuple[Mapping, ...]:
    if not isinstance(value, (list, tuple)):
        raise CatalogError(key, "must be a list of tolerations, e.g. [{'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}]")
    out = []
    for i, t in enumerate(value):
        k = f"{key}[{i}]"
        if not isinstance(t, Mapping):
            raise CatalogError(k, "must be a dict")
        _check_keys(t, TOLERATION_KEYS, k)
        op = t.get("operator", "Equal")
        if op not in TOLERATION_OPERATORS:
            raise CatalogError(f"{k}['operator']", f"must be one of {', '.join(TOLERATION_OPERATORS)}")
        if "effect" in t and t["effect"] not in TOLERATION_EFFECTS:
            raise CatalogError(f"{k}['effect']", f"must be one of {', '.join(TOLERATION_EFFECTS)}")
        if "key" in t and (not isinstance(t["key"], str) or not _LABEL_KEY_RE.fullmatch(t["key"])):
            raise CatalogError(f"{k}['key']", "must be a valid taint key")
        if op == "Exists" and t.get("value"):
            raise CatalogError(f"{k}['value']", "must be empty when operator is Exists")
        if "value" in t and not isinstance(t["value"], str):
            raise CatalogError(f"{k}['value']", "must be a string")
        if "tolerationSeconds" in t:
            _int(t["tolerationSeconds"], f"{k}['tolerationSeconds']", 0)
        out.append(_frozen(t))
    return tuple(out)


def _names(value: Any, key: str, pattern: re.Pattern, what: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise CatalogError(key, f"must be a list of {what}")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not pattern.fullmatch(v):
            raise CatalogError(f"{key}[{i}]", f"is not a valid {what[:-1] if what.endswith('s') else what} (got {v!r})")
    return tuple(value)


def _gpu_types(value: Any, key: str) -> dict[str, GPUType]:
    if not isinstance(value, Mapping):
        raise CatalogError(key, "must be a dict, e.g. {'a100-80': {'product': 'NVIDIA-A100-SXM4-80GB'}, 'mig-1g.10gb': {'mig': '1g.10gb'}}")
    out = {}
    for name, conf in value.items():
        k = f"{key}[{name!r}]"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise CatalogError(k, "names must be 1-63 letters, digits, '.', '_' or '-'")
        if not isinstance(conf, Mapping):
            raise CatalogError(k, "must be a dict with 'product' or 'mig'")
        _check_keys(conf, ("product", "mig", "display_name"), k)
        product, mig = conf.get("product"), conf.get("mig")
        if (product is None) == (mig is None):
            raise CatalogError(k, "must set exactly one of 'product' (a GPU Feature Discovery product label) or 'mig' (a MIG profile such as '1g.10gb')")
        if product is not None and (not isinstance(product, str) or len(product) > 63 or not _LABEL_VALUE_RE.fullmatch(product) or not product):
            raise CatalogError(f"{k}['product']", f"must be a node label value such as 'NVIDIA-A100-SXM4-80GB' (got {product!r})")
        if mig is not None and (not isinstance(mig, str) or not _MIG_RE.fullmatch(mig)):
            raise CatalogError(f"{k}['mig']", f"must be a MIG profile such as '1g.10gb' or '3g.40gb' (got {mig!r})")
        display = conf.get("display_name", product or f"MIG {mig}")
        if not isinstance(display, str):
            raise CatalogError(f"{k}['display_name']", "must be a string")
        out[name] = GPUType(name, display, product, mig)
    return out


def _home_volume(value: Any, key: str) -> HomeVolume | None:
    if value in (None, False):
        return None
    if value is True:
        return HomeVolume()
    if not isinstance(value, Mapping):
        raise CatalogError(key, "must be None, True or a dict with size, storage_class, access_modes, mount_path, per_server")
    _check_keys(value, ("size", "storage_class", "access_modes", "mount_path", "per_server"), key)
    size = _quantity(value.get("size", "10Gi"), f"{key}['size']")
    sc = value.get("storage_class")
    if sc is not None and (not isinstance(sc, str) or not _DNS_SUBDOMAIN_RE.fullmatch(sc)):
        raise CatalogError(f"{key}['storage_class']", f"must be a StorageClass name (got {sc!r})")
    modes = value.get("access_modes", ["ReadWriteOnce"])
    allowed = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
    if not isinstance(modes, (list, tuple)) or not modes or any(m not in allowed for m in modes):
        raise CatalogError(f"{key}['access_modes']", f"must be a non-empty list from {', '.join(allowed)}")
    mount = value.get("mount_path", "/home/jovyan")
    if not isinstance(mount, str) or not mount.startswith("/") or mount in ("/", "/dev/shm"):
        raise CatalogError(f"{key}['mount_path']", f"must be an absolute path (got {mount!r})")
    return HomeVolume(size, sc, tuple(modes), mount, _bool(value.get("per_server", False), f"{key}['per_server']"))


_DNS_SUBDOMAIN_RE = re.compile(_DNS_SUBDOMAIN)


# --------------------------------------------------------------------------- entry points


def parse_settings(name: str, raw: dict, key: str) -> KubernetesSettings:
    """Validate the settings of one Kubernetes backend (``key`` is how the admin wrote it)."""
    _check_keys(raw, SETTINGS_KEYS, key)
    k = lambda s: f"{key}[{s!r}]"  # noqa: E731
    out: dict[str, Any] = {"name": name}
    ns = raw.get("namespace")
    if ns is not None and (not isinstance(ns, str) or not _DNS_LABEL_RE.fullmatch(ns)):
        raise CatalogError(k("namespace"), f"must be a namespace name (lowercase letters, digits, '-'; got {ns!r})")
    out["namespace"] = ns
    out["in_cluster"] = _bool(raw.get("in_cluster"), k("in_cluster"), optional=True)
    out["kubeconfig"] = _str(raw.get("kubeconfig"), k("kubeconfig"), optional=True)
    out["context"] = _str(raw.get("context"), k("context"), optional=True)
    if out["in_cluster"] and (out["kubeconfig"] or out["context"]):
        raise CatalogError(k("in_cluster"), "in-cluster credentials exclude 'kubeconfig' and 'context'")

    for s in ("gpu_memory_label", "gpu_product_label"):
        if s in raw:
            v = raw[s]
            if not isinstance(v, str) or not _LABEL_KEY_RE.fullmatch(v):
                raise CatalogError(k(s), f"must be a node label name such as 'nvidia.com/gpu.memory' (got {v!r})")
            out[s] = v
    if "gpu_resource" in raw:
        v = raw["gpu_resource"]
        if not isinstance(v, str) or not _RESOURCE_RE.fullmatch(v):
            raise CatalogError(k("gpu_resource"), f"must be an extended resource name such as 'nvidia.com/gpu' (got {v!r})")
        out["gpu_resource"] = v
    mig = list(_names(raw.get("mig_profiles", []), k("mig_profiles"), _MIG_RE, "MIG profiles such as '1g.10gb'"))
    types = _gpu_types(raw.get("gpu_types", {}), k("gpu_types"))
    for t in types.values():  # a MIG gpu_type offers its profile even if mig_profiles omits it
        if t.mig and t.mig not in mig:
            mig.append(t.mig)
    out["mig_profiles"] = tuple(mig)
    out["gpu_types"] = _frozen(types)
    if "gpu_tolerations" in raw:
        out["gpu_tolerations"] = _tolerations(raw["gpu_tolerations"], k("gpu_tolerations"))
    out["tolerations"] = _tolerations(raw.get("tolerations", []), k("tolerations"))
    out["gpu_node_selector"] = _frozen(_label_map(raw.get("gpu_node_selector", {}), k("gpu_node_selector")))
    out["node_selector"] = _frozen(_label_map(raw.get("node_selector", {}), k("node_selector")))

    sa = raw.get("service_account")
    if sa is not None and (not isinstance(sa, str) or not _DNS_SUBDOMAIN_RE.fullmatch(sa)):
        raise CatalogError(k("service_account"), f"must be a ServiceAccount name or None (got {sa!r})")
    out["service_account"] = sa
    out["run_as_user"] = _int(raw.get("run_as_user", 1000), k("run_as_user"), 1)  # never root
    out["run_as_group"] = _int(raw.get("run_as_group", 100), k("run_as_group"), 0)
    out["fs_group"] = _int(raw.get("fs_group", 100), k("fs_group"), 0)
    out["shm_size"] = _quantity(raw.get("shm_size", "1Gi"), k("shm_size"))
    cpu = raw.get("default_cpu")
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or cpu <= 0):
        raise CatalogError(k("default_cpu"), f"must be a positive number of CPUs or None (got {cpu!r})")
    out["default_cpu"] = cpu
    mem = raw.get("default_memory")
    out["default_memory"] = None if mem is None else _int(mem, k("default_memory"), 1)

    pp = raw.get("image_pull_policy")
    if pp is not None and pp not in PULL_POLICIES:
        raise CatalogError(k("image_pull_policy"), f"must be one of {', '.join(PULL_POLICIES)} (got {pp!r})")
    out["image_pull_policy"] = pp
    out["image_pull_secrets"] = _names(
        raw.get("image_pull_secrets", []), k("image_pull_secrets"), _DNS_SUBDOMAIN_RE, "Secret names"
    )
    out["keep_entrypoint"] = _bool(raw.get("keep_entrypoint", True), k("keep_entrypoint"))
    out["home_volume"] = _home_volume(raw.get("home_volume"), k("home_volume"))
    out["extra_labels"] = _frozen(_label_map(raw.get("extra_labels", {}), k("extra_labels")))
    out["extra_annotations"] = _frozen(_label_map(raw.get("extra_annotations", {}), k("extra_annotations"), values_are_labels=False))

    for s, default in (("pending_timeout", 30), ("start_timeout", 300), ("stop_timeout", 60), ("api_timeout", 30)):
        out[s] = _seconds(raw.get(s, default), k(s))
    out["termination_grace_seconds"] = _int(raw.get("termination_grace_seconds", 30), k("termination_grace_seconds"), 0)
    margin = raw.get("run_deadline_margin", 60)
    out["run_deadline_margin"] = 0.0 if margin in (0, "0") else _seconds(margin, k("run_deadline_margin"))
    out["api_retries"] = _int(raw.get("api_retries", 5), k("api_retries"), 0)
    out["watch_timeout"] = _int(raw.get("watch_timeout", 300), k("watch_timeout"), 1)
    out["capacity"] = _bool(raw.get("capacity", True), k("capacity"))
    out["capacity_all_namespaces"] = _bool(raw.get("capacity_all_namespaces", False), k("capacity_all_namespaces"))
    sel = raw.get("capacity_node_selector", "")
    if not isinstance(sel, str):
        raise CatalogError(k("capacity_node_selector"), "must be a label selector string such as 'nvidia.com/gpu.present=true'")
    out["capacity_node_selector"] = sel
    return KubernetesSettings(**out)


def parse_image(image: str, raw: dict, key: str) -> KubernetesImage:
    """``{"image": "quay.io/jupyter/pytorch-notebook:…", "pull_policy": …, "cmd": […], "env": {…},
    "keep_entrypoint": …}``."""
    _check_keys(raw, IMAGE_KEYS, key)
    ref = raw.get("image")
    if not isinstance(ref, str) or not ref or any(c.isspace() for c in ref) or len(ref) > 512:
        raise CatalogError(f"{key}['image']", f"must be a container image reference such as 'quay.io/jupyter/base-notebook:latest' (got {ref!r})")
    pp = raw.get("pull_policy")
    if pp is not None and pp not in PULL_POLICIES:
        raise CatalogError(f"{key}['pull_policy']", f"must be one of {', '.join(PULL_POLICIES)} (got {pp!r})")
    cmd = raw.get("cmd")
    if cmd is not None:
        if not isinstance(cmd, (list, tuple)) or not cmd or not all(isinstance(c, str) and c for c in cmd):
            raise CatalogError(f"{key}['cmd']", "must be a non-empty list of strings (the command, without a shell)")
        cmd = tuple(cmd)
    env = raw.get("env", {})
    if not isinstance(env, Mapping):
        raise CatalogError(f"{key}['env']", "must be a dict of name → string")
    for n, v in env.items():
        if not isinstance(n, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", n):
            raise CatalogError(f"{key}['env'][{n!r}]", "is not a valid environment variable name")
        if n in FACTS:
            raise CatalogError(f"{key}['env'][{n!r}]", "is set by gridspawner and may not be overridden")
        if not isinstance(v, str):
            raise CatalogError(f"{key}['env'][{n!r}]", "must be a string")
    keep = _bool(raw.get("keep_entrypoint"), f"{key}['keep_entrypoint']", optional=True)
    return KubernetesImage(image, ref, pp, cmd, _frozen(env), keep)
