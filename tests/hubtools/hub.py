"""A real JupyterHub + configurable-http-proxy, started as subprocesses for tests and benches.

`Hub` owns one temporary directory (config, sqlite DB, cookie secret, logs, session root,
GPU ledger), random free ports, a CHP process it starts itself (``should_start = False``
on the hub, so restarting the hub keeps the proxy and its routes) and the hub process
(``python -m jupyterhub`` with the Python running the tests, so it works the same under
.venv with JupyterHub 6.x and .venv5 with 5.x).

A service token with admin scopes drives the REST API. Everything is stopped by PID in
`close()`: the servers (through the API, then any process still carrying this hub's API URL
or temp dir), the hub and the proxy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from . import procs
from .ports import free_port
from sshhosts.accounts import let_accounts_run, let_accounts_use_fuse, remove_accounts

REPO = Path(__file__).resolve().parents[2]
FAKE_NVIDIA_SMI = REPO / "tests" / "fixtures" / "fake_nvidia_smi"
#: configurable-http-proxy's directory: the locked one in .node/, unless the test run names
#: another (scripts/run-tests.sh sets it; `make test-latest` uses .node-latest/)
NODE_BIN = Path(os.environ.get("GRIDSPAWNER_NODE_BIN") or REPO / ".node" / "node_modules" / ".bin")

#: Four GPUs of mixed VRAM (the fake nvidia-smi's inventory for hub tests): two 80 GB cards,
#: one 40 GB card, one 16 GB card, as (name, memory.total in MiB). The fake derives stable
#: UUIDs from index and name; `Hub.gpus()` reads them back from the fake itself.
FAKE_GPUS = [
    ("NVIDIA A100-SXM4-80GB", 81920),
    ("NVIDIA A100-PCIE-40GB", 40960),
    ("Tesla T4", 15360),
    ("NVIDIA A100-SXM4-80GB", 81920),
]

NVIDIA_SMI_QUERY = ("--query-gpu=index,uuid,name,memory.total,memory.used", "--format=csv,noheader,nounits")
SERVICE_NAME = "gridtest"
SERVICE_SCOPES = [
    "admin:users",
    "admin:servers",
    "admin:server_state",
    "admin:groups",
    "tokens",
    "access:servers",
    "read:hub",
    "read:metrics",
]


def fake_gpus_spec(gpus=FAKE_GPUS) -> str:
    """FAKE_NVIDIA_SMI_GPUS's inline form: "NAME,MIB;NAME,MIB;…"."""
    return ";".join(f"{name},{mib}" for name, mib in gpus)


def fake_nvidia_smi_command(inventory_file: Path) -> list[str]:
    """The ``nvidia_smi`` setting that runs the fake with the inventory in ``inventory_file``.

    The local backend runs host scripts with a minimal environment (nothing of the hub's own
    leaks into them), so the inventory is passed on the command itself through ``env``."""
    return ["env", f"FAKE_NVIDIA_SMI_GPUS={inventory_file}", str(FAKE_NVIDIA_SMI)]


def read_fake_gpus(inventory_file: Path) -> list[tuple[int, str, str, int]]:
    """(index, uuid, name, MiB) of each GPU the fake reports for ``inventory_file``."""
    out = subprocess.run(
        [*fake_nvidia_smi_command(inventory_file), *NVIDIA_SMI_QUERY], capture_output=True, text=True, check=True
    ).stdout
    gpus = []
    for line in out.splitlines():
        index, uuid, name, total, _ = (x.strip() for x in line.split(","))
        gpus.append((int(index), uuid, name, int(total)))
    return gpus


def find_chp() -> str:
    found = shutil.which("configurable-http-proxy", path=f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        raise RuntimeError(
            "configurable-http-proxy not found; run scripts/install-test-deps.sh "
            "(npm install --prefix .node configurable-http-proxy)"
        )
    return found


def session_root_for(workdir: Path) -> Path:
    """A short directory for session sockets (unix socket paths must stay under ~100 bytes,
    so it cannot live deep in pytest's temp tree); `Hub.close()` removes it."""
    digest = hashlib.sha256(str(workdir).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"gs-{digest}"


def accounts_prefix(workdir: Path) -> str:
    """The prefix of the Unix accounts the local backend of the hub in ``workdir`` makes."""
    return "gs" + hashlib.sha256(str(workdir).encode()).hexdigest()[:6] + "-"


def created_account_prefixes(grid: dict) -> set[str]:
    """The prefixes of the accounts the local backends of ``grid`` make (`local_backend_config`
    for any workdir: a test may build its config from another directory than the hub's)."""
    found = set()
    for conf in (grid or {}).get("backends", {}).values():
        account = conf.get("account") if isinstance(conf, dict) else None
        if conf.get("create_accounts") and isinstance(account, str) and account.endswith("{username}"):
            prefix = account[: -len("{username}")]
            if re.fullmatch(r"gs[0-9a-f]{6}-", prefix):  # only ours
                found.add(prefix)
    return found


def local_backend_config(workdir: Path, **overrides) -> dict:
    """Settings for a ``kind: local`` backend whose files all live under ``workdir`` (and
    `session_root_for(workdir)`)."""
    conf = {
        "kind": "local",
        "display_name": "This machine",
        "session_root": str(session_root_for(workdir)),
        "ledger_dir": str(workdir / "ledger"),
        "nvidia_smi": fake_nvidia_smi_command(workdir / "fake-gpus.txt"),
    }
    if os.geteuid() == 0:
        # the product default as root: each user's server runs as its own account (the
        # notebook directory is in its home); this hub's accounts, made at their first
        # spawn and removed by `Hub.close()`, carry a prefix unique to the workdir
        conf.update(account=accounts_prefix(workdir) + "{username}", create_accounts=True)
    conf.update(overrides)
    return conf


def default_grid_config(workdir: Path) -> dict:
    """The GridSpawner config most hub tests use: one local backend with the fake 4-GPU
    inventory, two environments, a profile with a short maximum run time."""
    return {
        "backends": {"local": local_backend_config(workdir)},
        "images": {
            "lab": {
                "display_name": "JupyterLab (hub's Python)",
                "local": {},
            },
            "minimal": {
                "display_name": "Minimal (classic tree view)",
                "local": {"env": {"GRIDSPAWNER_TEST_IMAGE": "minimal"}},
            },
        },
        "gpu_memory_classes": [0, 16, 24, 40, 80],
        "max_gpus": 4,
        "profiles": {
            "short": {
                "display_name": "Short session",
                "description": "stopped after a few seconds",
                "values": {"backend": "local", "image": "lab", "gpus": 0},
                # counted from the start request: a spawn under load (several seconds) still
                # leaves the server running for a while
                "max_runtime": 10,
            },
        },
    }


CONFIG_TEMPLATE = """\
# Generated by tests/hubtools/hub.py for one test hub. Do not edit.
import json
c = get_config()  # noqa

_settings = json.loads({settings_json!r})

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = _settings["proxy_port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = _settings["hub_port"]
c.JupyterHub.db_url = "sqlite:///" + _settings["workdir"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = _settings["workdir"] + "/jupyterhub_cookie_secret"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.cleanup_proxy = False
c.JupyterHub.allow_named_servers = True
c.JupyterHub.log_level = "DEBUG" if _settings["debug"] else "INFO"

# The test starts and stops the proxy itself, so a hub restart keeps it and its routes.
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % _settings["proxy_api_port"]
c.ConfigurableHTTPProxy.auth_token = _settings["proxy_token"]

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = set(_settings["admin_users"])

c.JupyterHub.services = [{{"name": _settings["service"], "api_token": _settings["service_token"]}}]
c.JupyterHub.load_roles = [
    {{"name": "gridtest-driver", "scopes": _settings["service_scopes"], "services": [_settings["service"]]}},
]

c.JupyterHub.spawner_class = _settings["spawner_class"]
c.Spawner.http_timeout = 30
if _settings["start_timeout"] is not None:  # None: the spawner's own default applies
    c.Spawner.start_timeout = _settings["start_timeout"]
c.Spawner.poll_interval = _settings["poll_interval"]
# JupyterHub's own local spawner (the benchmark's baseline) keeps its home here too
c.SimpleLocalProcessSpawner.home_dir_template = _settings["workdir"] + "/home/{{username}}"
for _key, _value in _settings["spawner"].items():
    setattr(c.Spawner, _key, _value)
for _key, _value in _settings["grid"].items():
    setattr(c.GridSpawner, _key, _value)

{extra}
"""


CHART_CONFIG_TEMPLATE = """\
# Generated by tests/hubtools/hub.py for one test hub. Do not edit.
# The Helm chart's own jupyterhub_config.py, run as the hub pod runs it (beside the
# rendered ConfigMap's other files); after it, only what differs between the hub pod and
# this machine: addresses, ports, files, the login, the test's service. Everything about
# the servers' lifecycle (cleanup_servers, …) is the chart's, not the harness's.
import json
c = get_config()  # noqa
load_subconfig({chart_config!r})  # noqa

_settings = json.loads({settings_json!r})

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = _settings["proxy_port"]
c.JupyterHub.hub_bind_url = "http://127.0.0.1:%d" % _settings["hub_port"]
c.JupyterHub.hub_connect_url = "http://127.0.0.1:%d" % _settings["hub_port"]
c.JupyterHub.db_url = "sqlite:///" + _settings["workdir"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = _settings["workdir"] + "/jupyterhub_cookie_secret"
c.JupyterHub.log_level = "DEBUG" if _settings["debug"] else "INFO"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % _settings["proxy_api_port"]
c.ConfigurableHTTPProxy.auth_token = _settings["proxy_token"]

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": _settings["service"], "api_token": _settings["service_token"]}}]
c.JupyterHub.load_roles = [
    {{"name": "gridtest-driver", "scopes": _settings["service_scopes"], "services": [_settings["service"]]}},
]
c.Spawner.poll_interval = _settings["poll_interval"]

{extra}
"""


class HubExited(RuntimeError):
    pass


class Hub:
    """One real hub + proxy. Use as a context manager or call `start()` / `close()`."""

    def __init__(
        self,
        grid: dict | None = None,
        *,
        workdir: str | Path | None = None,
        spawner_class: str = "grid",
        spawner: dict | None = None,
        extra_config: str = "",
        env: dict[str, str] | None = None,
        gpus=FAKE_GPUS,
        admin_users: tuple[str, ...] = (),
        poll_interval: int = 30,
        start_timeout: int | None = 60,
        debug: bool = False,
        chart_config: str | Path | None = None,
    ):
        """``chart_config``: a jupyterhub_config.py rendered by the Helm chart (its ConfigMap's
        files beside it); the hub then runs that config, with only this machine's addresses,
        files and login set after it (`CHART_CONFIG_TEMPLATE`); ``grid`` and ``spawner`` are
        not used."""
        # a workdir made here is removed by close(); one passed in belongs to the caller
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="gridhub-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.session_root = session_root_for(self.workdir)
        let_accounts_run(sys.executable)  # servers of per-user accounts start the hub's Python
        let_accounts_use_fuse()
        self.grid = default_grid_config(self.workdir) if grid is None else grid
        self.hub_port = free_port()
        self.proxy_port = free_port()
        self.proxy_api_port = free_port()
        self.token = secrets.token_hex(32)
        self.proxy_token = secrets.token_hex(32)
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.hub_api_url = f"http://127.0.0.1:{self.hub_port}/hub/api"
        self.config_file = self.workdir / "jupyterhub_config.py"
        self.log_file = self.workdir / "hub.log"
        self.proxy_log_file = self.workdir / "proxy.log"
        self.extra_env = dict(env or {})
        self.inventory_file = self.workdir / "fake-gpus.txt"
        self.set_fake_gpus(gpus or [])
        settings = {
            "workdir": str(self.workdir),
            "hub_port": self.hub_port,
            "proxy_port": self.proxy_port,
            "proxy_api_port": self.proxy_api_port,
            "proxy_token": self.proxy_token,
            "service": SERVICE_NAME,
            "service_token": self.token,
            "service_scopes": SERVICE_SCOPES,
            "admin_users": list(admin_users),
            "spawner_class": spawner_class,
            "spawner": spawner or {},
            "grid": self.grid if spawner_class == "grid" or "GridSpawner" in spawner_class else {},
            "poll_interval": poll_interval,
            "start_timeout": start_timeout,
            "debug": debug,
        }
        if chart_config is not None:
            text = CHART_CONFIG_TEMPLATE.format(chart_config=str(chart_config), settings_json=json.dumps(settings), extra=extra_config)
        else:
            text = CONFIG_TEMPLATE.format(settings_json=json.dumps(settings), extra=extra_config)
        self.config_file.write_text(text)
        self.proxy: subprocess.Popen | None = None
        self.process: subprocess.Popen | None = None
        self._log_handle = None
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"

    # ------------------------------------------------------------------ fake GPUs
    def set_fake_gpus(self, gpus) -> None:
        """What the fake nvidia-smi reports from now on: a list of (name, MiB)."""
        self.inventory_file.write_text("".join(f"{name},{mib}\n" for name, mib in gpus))

    def gpus(self) -> list[tuple[int, str, str, int]]:
        """(index, uuid, name, MiB) of each fake GPU, as nvidia-smi reports them."""
        return read_fake_gpus(self.inventory_file)

    def gpu_uuids(self, min_mib: int = 0, max_mib: int | None = None) -> list[str]:
        return [u for _, u, _, mib in self.gpus() if mib >= min_mib and (max_mib is None or mib <= max_mib)]

    # ------------------------------------------------------------------ processes
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # the hub's Python first, so jupyterhub-singleuser comes from the same venv
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(NODE_BIN), env.get("PATH", "")])
        env.pop("JUPYTERHUB_API_TOKEN", None)
        env.update(self.extra_env)
        return env

    def start_proxy(self) -> None:
        env = self._env()
        env["CONFIGPROXY_AUTH_TOKEN"] = self.proxy_token
        with open(self.proxy_log_file, "ab") as log:
            self.proxy = subprocess.Popen(
                [
                    find_chp(),
                    "--ip", "127.0.0.1",
                    "--port", str(self.proxy_port),
                    "--api-ip", "127.0.0.1",
                    "--api-port", str(self.proxy_api_port),
                    "--default-target", f"http://127.0.0.1:{self.hub_port}",
                    "--error-target", f"http://127.0.0.1:{self.hub_port}/hub/error",
                    "--log-level", "warn",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proxy.poll() is not None:
                raise RuntimeError(f"configurable-http-proxy exited: {self.proxy_log_file.read_text()[-2000:]}")
            try:
                r = requests.get(
                    f"http://127.0.0.1:{self.proxy_api_port}/api/routes",
                    headers={"Authorization": f"token {self.proxy_token}"},
                    timeout=2,
                )
                if r.status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("configurable-http-proxy did not come up")

    def start_hub(self, wait: bool = True, timeout: float = 60) -> None:
        if self._log_handle is None:
            self._log_handle = open(self.log_file, "ab")
        self._log_handle.write(f"\n===== hub start {time.strftime('%H:%M:%S')} =====\n".encode())
        self._log_handle.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config_file)],
            cwd=self.workdir,
            env=self._env(),
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_up(timeout)

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HubExited(f"hub exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                r = requests.get(f"{self.url}/hub/api/", timeout=2)
                if r.status_code == 200 and requests.get(self.hub_api_url + "/", timeout=2).ok:
                    # the hub is up; wait for the proxy routes it adds at start-up
                    if self.session.get(f"{self.url}/hub/api/info", timeout=5).ok:
                        return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"hub did not come up in {timeout} s:\n{self.log()[-4000:]}")

    def wait_exit(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"hub still running after {timeout} s:\n{self.log()[-4000:]}") from None

    def start(self, wait: bool = True) -> "Hub":
        if self.proxy is None:
            self.start_proxy()
        self.start_hub(wait=wait)
        return self

    def stop_hub(self, timeout: float = 20) -> int | None:
        """SIGTERM the hub (servers keep running: cleanup_servers is False) and wait."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def restart_hub(self, timeout: float = 60) -> None:
        self.stop_hub()
        self.start_hub(wait=True, timeout=timeout)

    def leftover_pids(self) -> list[int]:
        """Processes still alive that this hub started (servers, helpers)."""
        own = {p.pid for p in (self.process, self.proxy) if p is not None}
        found = procs.matching(
            env_equals={"JUPYTERHUB_API_URL": f"http://127.0.0.1:{self.hub_port}/hub/api"},
            cmd_contains=str(self.workdir),
        ) + procs.matching(cmd_contains=str(self.session_root) + "/")
        return sorted({p for p in found if p not in own})

    def close(self) -> None:
        """Stop every server, the hub and the proxy, by PID. Safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.stop_all_servers()
            except Exception as e:  # still kill everything below
                print(f"hubtools: stopping servers through the API failed: {e}", file=sys.stderr)
        self.stop_hub()
        procs.terminate(self.leftover_pids())
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.terminate()
            try:
                self.proxy.wait(10)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
                self.proxy.wait(5)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        self.session.close()
        shutil.rmtree(self.session_root, ignore_errors=True)
        for prefix in {accounts_prefix(self.workdir), *created_account_prefixes(self.grid)}:
            remove_accounts(prefix)
        if self._own_workdir and not os.environ.get("GRIDSPAWNER_KEEP_HUB_DIRS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Hub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ logs
    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_mark(self) -> int:
        """A position in the hub log; `log_since(mark)` returns what came after."""
        try:
            return self.log_file.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, mark: int) -> str:
        with open(self.log_file, "rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    # ------------------------------------------------------------------ REST
    def api(self, method: str, path: str, **kw) -> requests.Response:
        """A hub REST call through the proxy with the service token (``path`` after /hub/api)."""
        kw.setdefault("timeout", 120)
        return self.session.request(method, f"{self.url}/hub/api{path}", **kw)

    def create_user(self, name: str, admin: bool = False) -> dict:
        r = self.api("POST", f"/users/{name}", json={"admin": admin} if admin else None)
        if r.status_code == 409:  # exists already
            return self.user(name)
        r.raise_for_status()
        return r.json()

    def create_group(self, name: str, users: list[str] = ()) -> dict:
        r = self.api("POST", f"/groups/{name}")
        if r.status_code not in (201, 409):
            r.raise_for_status()
        if users:
            r = self.api("POST", f"/groups/{name}/users", json={"users": list(users)})
            r.raise_for_status()
        return r.json()

    def user(self, name: str) -> dict:
        r = self.api("GET", f"/users/{name}")
        r.raise_for_status()
        return r.json()

    def server(self, name: str, server_name: str = "") -> dict | None:
        return self.user(name).get("servers", {}).get(server_name)

    def spawn(self, name: str, options: dict | None = None, server_name: str = "", **kw) -> requests.Response:
        """POST /users/NAME/server[s/SERVER] with ``options`` as user_options (raw response)."""
        path = f"/users/{name}/servers/{server_name}" if server_name else f"/users/{name}/server"
        return self.api("POST", path, json=options if options is not None else {}, **kw)

    def wait_ready(self, name: str, server_name: str = "", timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(name, server_name)
            if server is None:
                raise RuntimeError(f"server {name}/{server_name} is gone:\n{self.log()[-3000:]}")
            if server.get("ready"):
                return server
            time.sleep(0.1)
        raise TimeoutError(f"server {name}/{server_name} not ready after {timeout} s:\n{self.log()[-3000:]}")

    def wait_stopped(self, name: str, server_name: str = "", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server(name, server_name) is None:
                return
            time.sleep(0.2)
        raise TimeoutError(f"server {name}/{server_name} still there after {timeout} s")

    def spawn_ready(self, name: str, options: dict | None = None, server_name: str = "") -> dict:
        """Create the user if needed, spawn, wait until ready; returns the server model."""
        self.create_user(name)
        r = self.spawn(name, options, server_name)
        if r.status_code not in (201, 202):
            raise AssertionError(f"spawn of {name} failed: {r.status_code} {r.text}")
        return self.wait_ready(name, server_name)

    def server_status(self, name: str, server_name: str = "", **kw) -> requests.Response:
        """GET /user/NAME[/SERVER]/api/status through the proxy, with the service token."""
        prefix = f"/user/{name}/{server_name + '/' if server_name else ''}"
        kw.setdefault("timeout", 30)
        return self.session.get(f"{self.url}{prefix}api/status", allow_redirects=False, **kw)

    def stop_server(self, name: str, server_name: str = "", wait: bool = True) -> requests.Response:
        path = f"/users/{name}/servers/{server_name}" if server_name else f"/users/{name}/server"
        r = self.api("DELETE", path)
        if wait and r.status_code in (202, 204):
            self.wait_stopped(name, server_name)
        return r

    def stop_all_servers(self) -> None:
        r = self.api("GET", "/users", timeout=30)
        r.raise_for_status()
        for user in r.json():
            for server_name in list(user.get("servers") or {}):
                try:
                    self.stop_server(user["name"], server_name)
                except Exception as e:
                    print(f"hubtools: could not stop {user['name']}/{server_name}: {e}", file=sys.stderr)

    # ------------------------------------------------------------------ the servers' processes
    def server_pids(self, name: str, server_name: str = "") -> list[int]:
        """Live processes carrying this hub's environment for user ``name`` (and server)."""
        env = {
            "JUPYTERHUB_API_URL": f"http://127.0.0.1:{self.hub_port}/hub/api",
            "JUPYTERHUB_USER": name,
        }
        if server_name:
            env["JUPYTERHUB_SERVER_NAME"] = server_name
        found = procs.matching(env_equals=env)
        if not server_name:
            found = [p for p in found if not procs.environ(p).get("JUPYTERHUB_SERVER_NAME")]
        return found

    def server_pid(self, name: str, server_name: str = "") -> int:
        """The single-user server's PID (the process running jupyterhub-singleuser)."""
        pids = self.server_pids(name, server_name)
        main = [p for p in pids if any("singleuser" in a or "jupyter" in Path(a).name for a in procs.cmdline(p))]
        if not (main or pids):
            raise AssertionError(f"no process found for {name}/{server_name}")
        return (main or pids)[0]

    def form_session(self, name: str) -> "FormSession":
        return FormSession(self, name)


_XSRF_RE = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


class FormSession:
    """A browser-like requests.Session logged in through the proxy with the dummy authenticator."""

    def __init__(self, hub: Hub, name: str, password: str = "any-password"):
        self.hub = hub
        self.name = name
        self.http = requests.Session()
        r = self.http.get(f"{hub.url}/hub/login", timeout=30)
        r.raise_for_status()
        r = self.http.post(
            f"{hub.url}/hub/login",
            data={"username": name, "password": password, "_xsrf": self.xsrf(r.text)},
            allow_redirects=False,
            timeout=30,
        )
        if r.status_code != 302:
            raise AssertionError(f"login as {name} failed: {r.status_code} {r.text[:500]}")

    def xsrf(self, html: str) -> str:
        m = _XSRF_RE.search(html)
        if m:
            return m.group(1)
        return self.http.cookies.get("_xsrf", "")

    def get_form(self, server_name: str = "") -> requests.Response:
        path = f"/hub/spawn/{self.name}/{server_name}" if server_name else "/hub/spawn"
        return self.http.get(f"{self.hub.url}{path}", timeout=30)

    def post_form(self, fields: dict[str, Any], server_name: str = "") -> requests.Response:
        """GET the spawn page (for its _xsrf), then POST ``fields`` to it; no redirect followed."""
        page = self.get_form(server_name)
        page.raise_for_status()
        data = {"_xsrf": self.xsrf(page.text), **fields}
        path = f"/hub/spawn/{self.name}/{server_name}" if server_name else "/hub/spawn"
        return self.http.post(f"{self.hub.url}{path}", data=data, allow_redirects=False, timeout=120)

    def close(self) -> None:
        self.http.close()
