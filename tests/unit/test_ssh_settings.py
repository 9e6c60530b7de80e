"""Validation of ``kind: ssh`` settings and image entries: every mistake names its key."""

from __future__ import annotations

import os

import pytest

from gridspawner.backends import backend_class
from gridspawner.backends.ssh import SSHBackend
from gridspawner.backends.ssh.runtimes import Runtime
from gridspawner.catalog import CatalogError

KEY = "c.GridSpawner.backends['gpu']"


@pytest.fixture
def kh(tmp_path):
    p = tmp_path / "known_hosts"
    p.write_text("")
    return str(p)


def parse(kh, **raw):
    raw.setdefault("hosts", ["gpu1"])
    raw.setdefault("known_hosts", kh)
    raw.setdefault("username", "jupyter")
    return SSHBackend.parse_settings("gpu", raw, KEY)


def test_registered_as_kind_ssh():
    assert backend_class("ssh") is SSHBackend


def test_defaults(kh):
    s = parse(kh)
    (h,) = s.hosts
    assert (h.name, h.address, h.port, h.username, h.runtime, h.jump) == ("gpu1", "gpu1", None, None, None, None)
    assert s.port == 22 and s.username == "jupyter" and s.client_keys is None
    assert s.session_root == "/tmp/gridspawner-{account}"
    assert (s.connect_timeout, s.keepalive_interval, s.keepalive_count_max, s.down_grace) == (10.0, 15.0, 3, 60.0)
    assert s.hub_api_url is None and s.relay_ports is None and s.relay_host == "127.0.0.1"
    assert s.runtime == Runtime("none") and s.max_sessions == 8 and not s.allow_host_choice
    assert s.connection_idle_timeout == 120.0
    assert parse(kh, connection_idle_timeout=30).connection_idle_timeout == 30.0


def test_full_host_entries(kh):
    s = parse(
        kh,
        hosts=[
            {"name": "n1", "address": "10.1.0.11", "port": 2222, "username": "{username}", "gpus": [0, "GPU-x"],
             "nvidia_smi": "/usr/bin/nvidia-smi", "runtime": {"kind": "apptainer", "prefix": "module load apptainer"}},
            {"name": "n2", "jump": {"address": "gate.example.org", "port": 2200, "username": "hop"}, "runtime": "podman"},
        ],
        probe_username="gridprobe",
        client_keys=["/etc/gridspawner/keys/{username}"],
        relay_ports="30000-30999",
        hub_api_url="http://hub.example.org:8081/hub/api/",
    )
    n1, n2 = s.hosts
    assert (n1.address, n1.port, n1.username, n1.gpus, n1.nvidia_smi) == ("10.1.0.11", 2222, "{username}", ("0", "GPU-x"), ("/usr/bin/nvidia-smi",))
    assert n1.runtime == Runtime("apptainer", prefix="module load apptainer")
    assert (n2.jump.address, n2.jump.port, n2.jump.username, n2.runtime.kind) == ("gate.example.org", 2200, "hop", "podman")
    assert s.relay_ports == (30000, 30999) and s.hub_api_url == "http://hub.example.org:8081/hub/api"
    assert s.client_keys == ("/etc/gridspawner/keys/{username}",)


@pytest.mark.parametrize(
    "raw, key, message",
    [
        ({"hosts": []}, "['hosts']", "non-empty list"),
        ({"hosts": ["a", "a"]}, "['hosts']", "twice"),
        ({"hosts": [{"name": "a", "port": 0}]}, "['hosts'][0]['port']", "1-65535"),
        ({"hosts": [{"name": "a", "address": "-oProxyCommand=x"}]}, "['hosts'][0]['address']", "host name"),
        ({"hosts": [{"name": "a b"}]}, "['hosts'][0]['name']", "short name"),
        ({"hosts": [{"name": "a", "colour": 1}]}, "['hosts'][0]['colour']", "unknown setting"),
        ({"hosts": [{"name": "a", "runtime": "lxc"}]}, "['hosts'][0]['runtime']['kind']", "none, apptainer"),
        ({"hosts": [{"name": "a", "runtime": {"kind": "none", "args": ["x"]}}]}, "['hosts'][0]['runtime']['args']", "container"),
        ({"username": "{user}"}, "['username']", "{username}"),
        ({"username": "Bad User"}, "['username']", "account"),
        ({"username": "{username}"}, "['probe_username']", "required"),
        ({"known_hosts": "relative/known_hosts"}, "['known_hosts']", "absolute path"),
        ({"relay_ports": "3000-2000"}, "['relay_ports']", "first <= last"),
        ({"hub_api_url": "hub:8081"}, "['hub_api_url']", "http(s) URL"),
        ({"down_grace": -1}, "['down_grace']", ">= 0"),
        ({"session_root": "/tmp/" + "x" * 40 + "{account}"}, "['session_root']", "too long"),
        ({"session_root": "/tmp/{user}"}, "['session_root']", "{account}"),
        ({"host_name": "x"}, "['host_name']", "unknown setting"),
        ({"max_sessions": 0}, "['max_sessions']", ">= 1"),
        ({"connection_idle_timeout": 0}, "['connection_idle_timeout']", ">= 0.1"),
        ({"connection_idle_timeout": "2m"}, "['connection_idle_timeout']", "seconds"),
    ],
)
def test_errors_name_the_key(kh, raw, key, message):
    with pytest.raises(CatalogError) as e:
        parse(kh, **raw)
    assert f"{KEY}{key}" in str(e.value) and message in str(e.value)


def test_image_entries():
    img = SSHBackend.parse_image("torch", {"image": "docker://quay.io/jupyter/pytorch-notebook:latest",
                                           "cmd": ["jupyterhub-singleuser"], "prefix": "module load cuda",
                                           "env": {"A": "1"}}, "img")
    assert img.image == "docker://quay.io/jupyter/pytorch-notebook:latest" and img.cmd == ("jupyterhub-singleuser",)
    assert img.prefix == "module load cuda" and img.env == (("A", "1"),)
    for bad in ("", "--privileged", "a b"):
        with pytest.raises(CatalogError, match=r"img\['image'\]"):
            SSHBackend.parse_image("x", {"image": bad}, "img")
    with pytest.raises(CatalogError, match="unknown setting"):
        SSHBackend.parse_image("x", {"registry": "x"}, "img")


def test_account_for(kh):
    s = parse(kh, username="{username}", probe_username="probe", hosts=["h1", {"name": "h2", "username": "shared"}])
    b = SSHBackend("gpu", s)
    assert b.account_for("h1", "alice") == "alice"
    assert b.account_for("h1", None) == "probe"
    assert b.account_for("h2", "alice") == "shared"
    from gridspawner.backends.base import BackendError

    with pytest.raises(BackendError, match="cannot be an account"):
        b.account_for("h1", "alice@example.org")
    with pytest.raises(BackendError, match="cannot be an account"):
        b.account_for("h1", "$(reboot)")



@pytest.mark.parametrize(
    "backend_runtime, host_runtimes, expected",
    [
        ("none", [None, None], "none"),
        ("apptainer", [None, None], "none"),
        ("podman", [None, None], "all"),
        ("none", ["docker", "podman"], "all"),
        ("docker", [None, "apptainer"], "some"),
    ],
)
def test_resource_limits_follow_the_hosts_runtimes(kh, backend_runtime, host_runtimes, expected):
    """The form says where cpu/memory are enforced: podman and docker hosts limit them."""
    hosts = [{"name": f"h{i}", **({"runtime": rt} if rt else {})} for i, rt in enumerate(host_runtimes)]
    s = parse(kh, hosts=hosts, runtime=backend_runtime)
    assert SSHBackend.resource_limits(s) == expected


def test_resource_limits_of_the_other_kinds_reach_the_catalog(kh, tmp_path):
    from gridspawner.catalog import build_catalog

    cat = build_catalog(
        backends={
            "here": {"kind": "local", "session_root": "/tmp/gs-limits-test", "enforce_limits": False},
            "cg": {"kind": "local", "session_root": "/tmp/gs-limits-test2"},  # cgroups: the default as root
            "gpu": {"kind": "ssh", "hosts": ["gpu1"], "known_hosts": kh, "username": "jupyter", "runtime": "docker"},
            "k8s": {"kind": "kubernetes", "kubeconfig": str(tmp_path / "kubeconfig")},
        },
        images={"lab": {"display_name": "Lab", "local": {}, "ssh": {"image": "docker://lab:1"}, "kubernetes": {"image": "lab:1"}}},
    )
    assert {n: b.resource_limits for n, b in cat.backends.items()} == {
        "here": "none", "cg": "all" if os.geteuid() == 0 else "none", "gpu": "all", "k8s": "all"}
