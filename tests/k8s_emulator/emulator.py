"""Starting the emulator: in-process (a thread with its own loop) or as a subprocess.

    with Emulator(nodes=[{"name": "gpu-1", "gpus": 4, "gpu_memory": 81920}]) as emu:
        emu.url, emu.kubeconfig_path          # a kubeconfig whose current context is the emulator
        emu.inject_fault(method="POST", path="/pods$", status=500, count=1)

    with EmulatorProcess(nodes=..., run_pods=True) as emu:   # python -m tests.k8s_emulator
        ...                                                   # same control methods, over HTTP

The control methods are the same on both (see `Controls`); each is one `ctl_*` of Cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from aiohttp import web

from .cluster import Cluster
from .server import Server


def write_kubeconfig(path: str, url: str, namespace: str = "default") -> str:
    """A kubeconfig (JSON is valid YAML) pointing at the emulator, bearer-token user."""
    cfg = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "emulator", "user": {"token": "emulator-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator",
                                                        "namespace": namespace}}],
        "current-context": "emulator",
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


class Controls:
    """Test controls; `_control(op, **kw)` runs Cluster.ctl_<op>(**kw) in the emulator."""

    def _control(self, op: str, **kw: Any) -> Any:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    # faults
    def inject_fault(self, method: str = ".*", path: str = ".*", status: int = 500, count: int = 1,
                     retry_after: int = 1, hang: float | None = None, drop: bool = False) -> dict:
        """The next `count` requests whose method fullmatches `method` and whose path (+ '?query')
        matches the regex `path` (re.search) answer `status` (429 adds Retry-After), or stall
        `hang` seconds and then proceed, or have their connection dropped. count=-1: until cleared."""
        action = "drop" if drop else ("hang" if hang is not None else "error")
        return self._control("inject_fault", method=method, path=path, status=status, count=count,
                             retry_after=retry_after, seconds=hang or 0.0, action=action)

    def clear_faults(self) -> None:
        self._control("clear_faults")

    def drop_watches(self, abrupt: bool = False) -> int:
        """End every open watch (cleanly, or by resetting the connection); returns how many."""
        return self._control("drop_watches", abrupt=abrupt)

    def compact(self) -> int:
        """Forget history: resuming a watch from any earlier resourceVersion gets 410 Expired."""
        return self._control("compact")

    # pods and nodes
    def evict_pod(self, namespace: str, name: str, delete_after: float | None = None,
                  message: str = "The node was low on resource: memory. ") -> dict:
        return self._control("evict", namespace=namespace, name=name, delete_after=delete_after, message=message)

    def delete_pod(self, namespace: str, name: str, grace: int | None = 0) -> dict:
        return self._control("delete_pod", namespace=namespace, name=name, grace=grace)

    def exit_container(self, namespace: str, name: str, code: int = 1, container: str | None = None) -> None:
        self._control("exit_container", namespace=namespace, name=name, code=code, container=container)

    def set_node_ready(self, name: str, ready: bool) -> dict:
        return self._control("set_node_ready", name=name, ready=ready)

    def add_node(self, spec: dict) -> dict:
        return self._control("add_node", spec=spec)

    def remove_node(self, name: str) -> dict:
        return self._control("remove_node", name=name)

    def cordon(self, name: str, unschedulable: bool = True) -> dict:
        return self._control("cordon", name=name, unschedulable=unschedulable)

    # observation
    def counters(self) -> dict[str, int]:
        """{'create pods': 3, 'watch events': 1, ...} — API requests since start / last reset."""
        return self._control("counters")

    def reset_counters(self) -> None:
        self._control("reset_counters")

    def requests(self) -> list[dict]:
        return self._control("requests")

    @property
    def validation_failures(self) -> list[dict]:
        """Every object rejected by schema or semantic validation (422): tests assert this is []."""
        return self._control("validation_failures")

    def ready_time(self, namespace: str, name: str) -> float | None:
        """time.time() when the pod's Ready condition first became True (None: not yet)."""
        return self._control("ready_time", namespace=namespace, name=name)

    def get(self, resource: str, namespace: str | None, name: str) -> dict | None:
        return self._control("get", resource=resource, namespace=namespace, name=name)

    def list(self, resource: str, namespace: str | None = None) -> list[dict]:
        return self._control("list", resource=resource, namespace=namespace)

    def events_for(self, namespace: str, name: str, kind: str = "Pod") -> list[dict]:
        return self._control("events_for", namespace=namespace, name=name, kind=kind)

    def gpu_usage(self) -> dict[str, dict[str, int]]:
        return self._control("gpu_usage")

    def pod_log(self, namespace: str, name: str) -> str:
        return self._control("pod_log", namespace=namespace, name=name)

    def pod_file(self, namespace: str, name: str, path: str) -> str | None:
        """A downwardAPI file of a running pod, by its path in the container (run mode)."""
        return self._control("pod_file", namespace=namespace, name=name, path=path)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
        """Poll predicate() until truthy; its value, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)


class Emulator(Controls):
    """In-process emulator on a background thread. Keyword arguments go to Cluster
    (nodes, namespaces, run_pods, pull_delay, start_delay, history_window, bookmark_interval...)."""

    def __init__(self, nodes: list[dict] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 kubeconfig_path: str | None = None, **cluster_kw: Any):
        self.host, self.port = host, port
        self._own_tmp = tempfile.mkdtemp(prefix="k8s-emu-")
        self.kubeconfig_path = kubeconfig_path or os.path.join(self._own_tmp, "kubeconfig")
        cluster_kw.setdefault("workdir", os.path.join(self._own_tmp, "pods"))
        self._cluster_kw = dict(cluster_kw, nodes=nodes)
        self.cluster: Cluster | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    def start(self) -> "Emulator":
        started = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._astart())
            except BaseException as e:  # surface start-up errors to the caller
                errors.append(e)
                started.set()
                return
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self._astop())
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

        self._thread = threading.Thread(target=main, name="k8s-emulator", daemon=True)
        self._thread.start()
        started.wait(30)
        if errors:
            raise errors[0]
        write_kubeconfig(self.kubeconfig_path, self.url)
        return self

    async def _astart(self) -> None:
        self.cluster = Cluster(**self._cluster_kw)
        await self.cluster.start()
        self.server = Server(self.cluster)
        self._runner = web.AppRunner(self.server.app, handle_signals=False, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"

    async def _astop(self) -> None:
        if self.cluster:
            await self.cluster.shutdown()
            self.cluster.ctl_drop_watches()
        if self._runner:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self.loop and self._thread and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(15)
        shutil.rmtree(self._own_tmp, ignore_errors=True)

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run fn(*args, **kw) on the emulator loop (awaiting it if it is a coroutine)."""
        assert self.loop is not None

        async def run() -> Any:
            r = fn(*args, **kw)
            if asyncio.iscoroutine(r):
                r = await r
            return r

        if threading.current_thread() is self._thread:
            raise RuntimeError("Emulator.call from the emulator's own thread")
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def _control(self, op: str, **kw: Any) -> Any:
        assert self.cluster is not None
        return self.call(getattr(self.cluster, f"ctl_{op}"), **kw)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmulatorProcess(Controls):
    """`python -m tests.k8s_emulator` as a child process (for a real hub in another process).

    The child writes the kubeconfig; controls go over HTTP to /_emulator/<op>."""

    def __init__(self, nodes: list[dict] | None = None, *, port: int = 0, run_pods: bool = False,
                 extra_args: list[str] | None = None, cwd: str | None = None, env: dict | None = None):
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.mkdtemp(prefix="k8s-emu-proc-")
        self.kubeconfig_path = os.path.join(self._tmp, "kubeconfig")
        self.nodes_path = os.path.join(self._tmp, "nodes.json")
        with open(self.nodes_path, "w") as f:
            json.dump(nodes or [], f)
        self.args = [sys.executable, "-m", "tests.k8s_emulator", "--port", str(self.port), "--nodes",
                     self.nodes_path, "--kubeconfig", self.kubeconfig_path] + (["--run-pods"] if run_pods else [])
        self.args += extra_args or []
        self.cwd = cwd or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "EmulatorProcess":
        self.log_path = os.path.join(self._tmp, "emulator.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited {self.proc.returncode}: {open(self.log_path).read()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                if os.path.exists(self.kubeconfig_path):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError("emulator did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "EmulatorProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _control(self, op: str, **kw: Any) -> Any:
        req = urllib.request.Request(f"{self.url}/_emulator/{op}", data=json.dumps(kw).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())["result"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"control {op} failed: {e.code} {e.read().decode()}") from None
