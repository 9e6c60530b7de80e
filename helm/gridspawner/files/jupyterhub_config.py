"""JupyterHub configuration made by the gridspawner Helm chart. Do not edit in the pod.

Everything here comes from the chart's values, rendered into the hub ConfigMap next to
this file:

- gridspawner.json: the `gridspawner:` block of values.yaml; each key is set as
  ``c.GridSpawner.<key>`` (the hub validates them all at start-up).
- hub.json: what the chart knows about its own objects (service names, ports, database)
  plus `hub.config` ({Class: {trait: value}}), `hub.extraConfig` (Python snippets) and
  `usage.service` (the usage pages).

JupyterHub loads this file with traitlets' PyFileConfigLoader: ``c`` is the Config.
"""

import json
import os
from pathlib import Path

_CONFIG_DIR = Path(__file__).resolve().parent


def _load_json(name):
    with open(_CONFIG_DIR / name, encoding="utf-8") as f:
        return json.load(f)


chart = _load_json("hub.json")
gridspawner_settings = _load_json("gridspawner.json")

# -- the spawner and its catalog
c.JupyterHub.spawner_class = "grid"

# ssh backends relay each server's unix socket to a TCP port the proxy connects to. The
# proxy runs in another pod, so unless the admin chose otherwise the relays listen on this
# pod's IP (GRIDSPAWNER_TUNNEL_HOST) and take their ports from hub.tunnelPorts
# (GRIDSPAWNER_TUNNEL_PORTS, "first-last"): the range the hub's NetworkPolicy opens to the
# proxy. (The chart's schema refuses kind: local, which would run servers in this pod.)
_tunnel_host = os.environ.get("GRIDSPAWNER_TUNNEL_HOST")
_tunnel_ports = os.environ.get("GRIDSPAWNER_TUNNEL_PORTS")
for _backend in gridspawner_settings.get("backends", {}).values():
    if not isinstance(_backend, dict) or _backend.get("kind") != "ssh":
        continue
    if _tunnel_host:
        _backend.setdefault("relay_host", _tunnel_host)
    if _tunnel_ports:
        _backend.setdefault("relay_ports", _tunnel_ports)
for _trait, _value in gridspawner_settings.items():
    setattr(c.GridSpawner, _trait, _value)

# -- the hub's home and admin pages show what each server got and when it stops
# (docs/admin/hub-pages.md); hub.config's JupyterHub.template_paths may replace them
import gridspawner.pages  # noqa: E402

gridspawner.pages.enable(c)

# -- users' servers outlive the hub pod: every `helm upgrade` that changes the config
# replaces the hub pod (its checksum annotation), and a hub stopping with cleanup_servers
# on would stop every server. The new hub re-attaches them from its database. (The proxy
# runs in its own pod and keeps their routes meanwhile.) hub.config may still override it.
c.JupyterHub.cleanup_servers = False

# -- the hub listens on all interfaces of its pod; servers and the proxy reach it by Service
c.JupyterHub.base_url = chart["baseUrl"]
c.JupyterHub.hub_bind_url = f"http://:{chart['hubPort']}"
c.JupyterHub.hub_connect_url = chart["hubConnectUrl"]

# -- configurable-http-proxy runs in its own pod; the token comes from the chart's Secret
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = chart["proxyApiUrl"]
if os.environ.get("CONFIGPROXY_AUTH_TOKEN"):
    c.ConfigurableHTTPProxy.auth_token = os.environ["CONFIGPROXY_AUTH_TOKEN"]
# JPY_COOKIE_SECRET (hex) is read by JupyterHub itself from the environment.

# -- the database: SQLite on the chart's volume, or a URL from an existing Secret
if chart["db"]["type"] == "external":
    if os.environ.get("GRIDSPAWNER_DB_URL"):
        c.JupyterHub.db_url = os.environ["GRIDSPAWNER_DB_URL"]
else:
    c.JupyterHub.db_url = chart["db"]["url"]

# -- any other traitlets config from values: hub.config = {Class: {trait: value}}
for _cls, _traits in chart["config"].items():
    for _trait, _value in _traits.items():
        setattr(c[_cls], _trait, _value)

# -- the usage pages (usage.service): a managed service in this pod that the proxy, in its own
# pod, reaches through the hub's Service; after hub.config, whose services and roles it extends.
# The usage database's URL comes from GRIDSPAWNER_USAGE_DB_URL (usage.db: a Secret), not from here.
if chart["usageService"]["enabled"]:
    from gridspawner.service.settings import enable_service

    _usage = chart["usageService"]
    enable_service(c, port=_usage["port"], url=_usage["url"], bind="0.0.0.0",
                   admin_users=_usage["adminUsers"], admin_groups=_usage["adminGroups"])

# -- hub.extraConfig snippets, in name order
for _name in sorted(chart["extraConfig"]):
    exec(compile(chart["extraConfig"][_name], f"<hub.extraConfig.{_name}>", "exec"), globals())
