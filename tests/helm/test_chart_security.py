"""Security of the Helm chart (helm/gridspawner), rendered by a REAL helm
(tests/helm/helm_render.py):

- RBAC holds exactly the verbs the Kubernetes backend's code calls, never a wildcard;
- every pod runs non-root, without privilege escalation, capabilities dropped, and the hub
  image's USER is the one the chart runs it as;
- the NetworkPolicies select the pods the chart and the Kubernetes backend really make, and
  open egress only to what values name (SSH hosts, API server, storage).
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from helm_render import (
    CHART,
    NAMESPACE,
    ROOT,
    objects_of,
    one,
    render,
    selects,
    template_labels,
    values_id,
    values_params,
)

from gridspawner.backends.kubernetes import objects as k8s_objects

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")


def pod_specs(objs):
    for o in objs:
        if o["kind"] in WORKLOADS:
            yield o, o["spec"]["template"]["spec"] if o["kind"] != "Pod" else o["spec"]


# --------------------------------------------------------------------------- RBAC


def _backend_api_calls() -> set[tuple[str, str, str]]:
    """(scope, resource, verb) for every Kubernetes API method the backend's code names.

    Methods of the generated CoreV1Api: read_/list_/create_/delete_/patch_/replace_
    + namespaced_<kind> | <kind> (cluster-scoped) | <kind>_for_all_namespaces. A list is
    used as a list+watch (SharedWatch), so it needs `watch` too — except a one-off list sent
    through ``self.connection.call(core.list_…`` (e.g. the orphan-secret sweep), which needs
    `list` only.
    """
    source = "\n".join(p.read_text() for p in (ROOT / "gridspawner" / "backends" / "kubernetes").glob("*.py"))
    verbs = {"read": ["get"], "list": ["list", "watch"], "create": ["create"], "delete": ["delete"], "patch": ["patch"], "replace": ["update"]}
    plural = {"pod": "pods", "pod_log": "pods/log", "event": "events", "secret": "secrets", "persistent_volume_claim": "persistentvolumeclaims",
              "node": "nodes", "service": "services", "config_map": "configmaps", "namespace": "namespaces"}
    calls = set()
    for m in re.finditer(r"\bcore\.(read|list|create|delete|patch|replace)_(namespaced_)?([a-z_]+?)(_for_all_namespaces)?\b", source):
        op, namespaced, kind, all_ns = m.groups()
        assert kind in plural, f"unknown resource in core.{m.group(0)}: add it to the test's table"
        scope = "namespace" if namespaced else "cluster"
        one_off = op == "list" and re.search(r"\.connection\.call\(\s*$", source[: m.start()])
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


def test_no_cluster_permissions_without_a_kubernetes_backend():
    kinds = {o["kind"] for o in render("ssh-only.yaml")}
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


def test_no_singleuser_policy_without_kubernetes():
    names = [p["metadata"]["name"] for p in objects_of(render("ssh-only.yaml"), "NetworkPolicy")]
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
