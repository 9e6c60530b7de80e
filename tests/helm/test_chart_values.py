"""What the Helm chart's (helm/gridspawner) values become, rendered by a REAL helm
(tests/helm/helm_render.py):

- the rendered hub config, executed the way JupyterHub executes jupyterhub_config.py,
  builds a real GridSpawner catalog;
- data mounts: STS admin keys reach the hub from the Secret, SSH keys stay on a volume;
- the schema rejects wrong values (a string for a GPU count, unknown keys, unknown kinds,
  a literal secret where storage wants an environment variable name), and has exactly the
  keys the code accepts (GridSpawner traits, every backend kind's settings, storage);
- values.yaml's defaults are GridSpawner's, every key is documented, and the docs'
  values reference is generated from the schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from helm_render import (
    BAD_VALUES_DIR,
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    objects_of,
    one,
    render,
    run_helm,
    values_params,
)

from gridspawner.backends import known_kinds
from gridspawner.backends import _KINDS as REGISTERED_KINDS
from gridspawner.catalog import CatalogError


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
    assert c.JupyterHub.cleanup_servers is False, "a new hub pod (helm upgrade) must not stop the servers"
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
    c = load_hub_config(render("ssh-only.yaml"), tmp_path, monkeypatch)
    assert c.JupyterHub.authenticator_class == "dummy"
    assert c.Authenticator.allowed_users == {"alice"}
    assert c.JupyterHub.admin_access is False
    assert c.JupyterHub.db_url == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    c = load_hub_config(render("external-db.yaml"), tmp_path, monkeypatch)
    assert c.JupyterHub.db_url == "postgresql://hub@db/hub"
    c = load_hub_config(render("ingress.yaml"), tmp_path, monkeypatch)
    assert c.JupyterHub.base_url == "/jupyter/"


def test_the_hub_is_named_after_its_release_for_crash_recovery(tmp_path, monkeypatch):
    """Crash recovery reclaims only what carries the hub's name: the chart names the hub after
    its namespace and release (the same across upgrades) unless the values name it."""
    from gridspawner import GridSpawner
    from gridspawner.hub_identity import resolve_hub_id

    spawner = GridSpawner(config=load_hub_config(render("ssh-only.yaml"), tmp_path, monkeypatch))
    assert resolve_hub_id(spawner.hub_id) == f"{NAMESPACE}/{RELEASE}"
    assert (spawner.orphan_grace, spawner.reconcile_interval) == (300, 60)
    named = render("ssh-only.yaml", "--set", "gridspawner.hub_id=physics-hub", "--set", "gridspawner.orphan_grace=600")
    spawner = GridSpawner(config=load_hub_config(named, tmp_path, monkeypatch))
    assert (spawner.hub_id, spawner.orphan_grace) == ("physics-hub", 600)


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


def test_the_chart_refuses_local_backends():
    """kind: local in the chart would run users' servers in the hub pod, as the hub's user,
    beside its database, tokens and mounted secrets: lint and template name the key and the
    kinds the chart runs."""
    path = str(BAD_VALUES_DIR / "local-backend.yaml")
    expected = 'gridspawner.backends.here.kind must be one of the following: "ssh", "kubernetes"'
    lint = run_helm("lint", str(CHART), "-f", path, check=False)
    assert lint.returncode != 0 and expected in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    tmpl = run_helm("template", RELEASE, str(CHART), "-f", path, check=False)
    assert tmpl.returncode != 0 and expected in tmpl.stderr, tmpl.stderr
    proc = run_helm("template", RELEASE, str(CHART), "--set", "gridspawner.backends.b.kind=local",
                    "--set", "gridspawner.images.i.local.cmd={jupyterhub-singleuser}", check=False)
    assert proc.returncode != 0 and "gridspawner.backends.b.kind must be one of" in proc.stderr, proc.stderr


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
    from gridspawner.backends.host.settings import HOST_IMAGE_KEYS
    from gridspawner.backends.kubernetes.settings import IMAGE_KEYS, SETTINGS_KEYS
    from gridspawner.backends.slurm.settings import SlurmSettings
    from gridspawner.backends.ssh import settings as ssh_settings
    from gridspawner.catalog_presets import POLICY_KEYS, PROFILE_KEYS
    from gridspawner.fields import PRESET_NAMES as PROFILE_VALUE_FIELDS

    schema = _schema()
    grid = schema["properties"]["gridspawner"]["properties"]
    own = set(GridSpawner.class_traits(config=True)) - set(Spawner.class_traits(config=True))
    # the usage database's URL may carry a password: it comes from a Secret (usage.db), never values
    own -= {"usage_db_url"}
    assert set(grid) == own, f"schema vs GridSpawner traits: {sorted(set(grid) ^ own)}"

    backend = grid["backends"]["additionalProperties"]
    # every kind but local (which would run servers in the hub pod) — see test_the_chart_refuses_local_backends
    chart_kinds = set(known_kinds()) - {"local"}
    assert set(backend["properties"]["kind"]["enum"]) == {"ssh", "kubernetes", "slurm"} == chart_kinds
    by_kind = {rule["if"]["properties"]["kind"]["const"]: set(rule["then"]["properties"]) for rule in backend["allOf"]}
    assert set(by_kind) == chart_kinds, "every kind the chart runs has a strict branch"
    common = {"kind", "display_name", "description"}
    assert by_kind["kubernetes"] == common | set(SETTINGS_KEYS)
    # the keys parse_ssh_settings accepts: SSHSettings' fields less the local-only ones
    ssh_keys = set(ssh_settings.SSHSettings.keys()) - set(ssh_settings._NOT_FOR_SSH)
    assert by_kind["ssh"] == common | ssh_keys, sorted(by_kind["ssh"] ^ (common | ssh_keys))
    assert by_kind["slurm"] == common | set(SlurmSettings.keys()), sorted(by_kind["slurm"] ^ (common | set(SlurmSettings.keys())))
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
    assert set(image["slurm"]["properties"]) == set(HOST_IMAGE_KEYS)

    # policies and profiles: the keys their parsers accept
    assert set(grid["group_policy"]["additionalProperties"]["properties"]) == set(POLICY_KEYS)
    assert set(grid["default_policy"]["properties"]) == set(POLICY_KEYS)
    assert set(grid["profiles"]["additionalProperties"]["properties"]) == set(PROFILE_KEYS)

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
