"""The Helm chart's usage settings, rendered by a REAL helm (tests/helm/helm_render.py): the
usage pages' service (usage.service) and the usage database's URL from a Secret (usage.db);
and, behind a real hub, the service listening where the chart tells it to (an address of
the pod, not its URL's host: the proxy runs in another pod).
"""

from __future__ import annotations

import time

import pytest
import requests
from helm_render import objects_of, one, render
from hubtools import Hub, default_grid_config, free_port
from test_chart_values import load_hub_config

from gridspawner.service.settings import ADMIN_ROLE, ADMIN_SCOPE, BIND_ENV, SERVICE_NAME

SECRET = {"name": "gridspawner-usage-db", "key": "url"}


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at ``port`` (the kernel's table, /proc/net/tcp)."""
    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))  # little-endian
    return found


def hub_container(objs):
    return one(objs, "Deployment", "-hub")["spec"]["template"]["spec"]["containers"][0]


def usage_service(c):
    return next((s for s in c.JupyterHub.services if s["name"] == SERVICE_NAME), None) if "services" in c.JupyterHub else None


def test_the_usage_pages_are_off_by_default(tmp_path, monkeypatch):
    objs = render()
    assert [p["name"] for p in one(objs, "Service", "-hub")["spec"]["ports"]] == ["hub"]
    hub = hub_container(objs)
    assert [p["name"] for p in hub["ports"]] == ["hub"]
    assert "GRIDSPAWNER_USAGE_DB_URL" not in {e["name"] for e in hub["env"]}
    assert usage_service(load_hub_config(objs, tmp_path, monkeypatch)) is None


def test_the_usage_db_url_comes_from_the_secret_only():
    objs = render("usage.yaml")
    [env] = [e for e in hub_container(objs)["env"] if e["name"] == "GRIDSPAWNER_USAGE_DB_URL"]
    assert env == {"name": "GRIDSPAWNER_USAGE_DB_URL", "valueFrom": {"secretKeyRef": SECRET}}
    config = one(objs, "ConfigMap")["data"]
    assert "usage_db_url" not in config["gridspawner.json"]
    assert "gridspawner-usage-db" not in str(config)  # not even the Secret's name: the pod reads it


def test_the_proxy_reaches_the_usage_service_through_the_hub_service():
    objs = render("usage.yaml")
    ports = {p["name"]: p for p in one(objs, "Service", "-hub")["spec"]["ports"]}
    assert ports["usage"]["port"] == 10101 and ports["usage"]["targetPort"] == "usage"
    assert {"name": "usage", "containerPort": 10101, "protocol": "TCP"} in hub_container(objs)["ports"]
    policy = [p for p in objects_of(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("-hub")][0]["spec"]
    from_proxy = [r for r in policy["ingress"]
                  if any(peer.get("podSelector", {}).get("matchLabels", {}).get("component") == "proxy" for peer in r["from"])]
    assert [p["port"] for p in from_proxy[0]["ports"]] == ["hub", 30000, "usage"]
    # the service, inside the hub pod, calls the hub's API through the hub's Service
    to_hub = [r for r in policy["egress"]
              if any(peer.get("podSelector", {}).get("matchLabels", {}).get("component") == "hub" for peer in r.get("to", []))]
    assert to_hub and to_hub[0]["ports"] == [{"port": 8081, "protocol": "TCP"}]
    # the default render opens none of it
    default = [p for p in objects_of(render(), "NetworkPolicy") if p["metadata"]["name"].endswith("-hub")][0]["spec"]
    assert "usage" not in str(default["ingress"]) and "'component': 'hub'" not in str(default["egress"])


def test_the_rendered_config_turns_the_service_on(tmp_path, monkeypatch):
    c = load_hub_config(render("usage.yaml"), tmp_path, monkeypatch)
    service = usage_service(c)
    assert service["url"] == "http://gs-gridspawner-hub.jupyter.svc:10101"
    assert service["environment"] == {BIND_ENV: "0.0.0.0"}
    [admins] = [r for r in c.JupyterHub.load_roles if r["name"] == ADMIN_ROLE]
    assert admins["users"] == ["alice"] and admins["groups"] == ["gpu-admins"] and ADMIN_SCOPE in admins["scopes"]
    assert ADMIN_SCOPE in c.JupyterHub.custom_scopes
    assert "usage_db_url" not in c.GridSpawner  # GRIDSPAWNER_USAGE_DB_URL (the Secret) gives it


@pytest.mark.hub
@pytest.mark.timeout(180)
def test_the_service_listens_on_the_bind_address_behind_a_real_hub(tmp_path):
    """As in the chart: the proxy reaches the service at its URL, the service listens on
    every address (``bind``), not only on its URL's host."""
    port = free_port()
    extra = ("from gridspawner.service.settings import enable_service\n"
             f"enable_service(c, port={port}, url='http://localhost:{port}', bind='0.0.0.0')\n")
    with Hub(default_grid_config(tmp_path), workdir=tmp_path, extra_config=extra) as hub:
        hub.create_user("ann")
        token = hub.api("POST", "/users/ann/tokens", json={"note": "test"}).json()["token"]
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{hub.url}/services/{SERVICE_NAME}/api/records?limit=1",
                                      headers={"Authorization": f"token {token}"}, timeout=10)
                if answer.status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, answer and answer.text[:300]
        assert answer.json()["records"] == []
        assert listening_addresses(port) == {"0.0.0.0"}
    assert not hub.leftover_pids()
