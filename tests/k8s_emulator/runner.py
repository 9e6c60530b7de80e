"""Run mode: a scheduled pod's containers become local processes.

What stands in for what:
- the container image → nothing: `command` + `args` run on this machine (with
  `image_entrypoints[image]` as the entrypoint when the pod gives no `command`);
- the pod network namespace → a distinct loopback address 127.0.0.N per pod. Inside a real pod,
  binding 0.0.0.0 means "the pod's own interface", so the literal "0.0.0.0" in args and env
  values is rewritten to the pod IP; `POD_IP` is exported as well. The URL a backend builds from
  `status.podIP` and the container port (http://podIP:8888) then reaches the process.
- the container filesystem → `workingDir` when it exists here, else a per-pod scratch directory
  (also HOME). Only a few variables of the emulator's own environment pass through (PATH...).
- volume mounts of secret, configMap and (disk) emptyDir volumes → directories under the pod's
  scratch directory (`materialize`: a secret's keys, or its ``items``, as files; an emptyDir
  empty and shared by the pod's containers); a mountPath in command, args, env values or
  workingDir is rewritten to that directory, as "0.0.0.0" is rewritten to the pod IP.
Stop = SIGTERM to the process group, SIGKILL after the grace period (kubelet's order).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass

PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "PYTHONPATH", "SSL_CERT_FILE", "TZ")


@dataclass
class PodProcess:
    proc: asyncio.subprocess.Process
    log_path: str
    container: str

    @property
    def pid(self) -> int:
        return self.proc.pid


def expand(value: str, env: dict[str, str]) -> str:
    """kubelet's $(VAR) expansion; $$ escapes; unknown references stay as written."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, value)


def materialize(pod: dict, container: dict, peek, pod_dir: str) -> dict[str, str]:
    """mountPath → local directory for ``container``'s secret/configMap/emptyDir mounts (see
    the module); ``peek(resource, ns, name)`` reads the store."""
    ns = pod["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    out: dict[str, str] = {}
    for m in container.get("volumeMounts") or []:
        v = volumes.get(m.get("name"))
        if v is None or m["mountPath"].startswith("/dev/"):
            continue
        local = os.path.join(pod_dir, "volumes", m["name"])
        if "emptyDir" in v and (v["emptyDir"] or {}).get("medium") != "Memory":
            os.makedirs(local, exist_ok=True)
        elif "secret" in v or "configMap" in v:
            src = v.get("secret") or v.get("configMap") or {}
            obj = peek("secrets", ns, src.get("secretName")) if "secret" in v else peek("configmaps", ns, src.get("name"))
            if "secret" in v:
                data = {k: base64.b64decode(x) for k, x in ((obj or {}).get("data") or {}).items()}
            else:
                data = {k: x.encode() for k, x in ((obj or {}).get("data") or {}).items()}
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            os.makedirs(local, exist_ok=True)
            for item in items:
                if item["key"] in data:
                    path = os.path.join(local, item["path"])
                    with open(path, "wb") as f:
                        f.write(data[item["key"]])
                    os.chmod(path, item.get("mode", src.get("defaultMode", 0o644)) & 0o777 | 0o400)
        else:
            continue
        out[m["mountPath"]] = local
    return out


def _rewrite(value: str, mounts: dict[str, str]) -> str:
    for path in sorted(mounts, key=len, reverse=True):
        if value == path or value.startswith(path + "/"):
            return mounts[path] + value[len(path):]
    return value


class Runner:
    def __init__(self, workdir: str | None = None, passthrough_env: tuple[str, ...] = PASSTHROUGH_ENV,
                 image_entrypoints: dict[str, list[str]] | None = None, extra_env: dict[str, str] | None = None):
        self._owns_workdir = workdir is None  # made here, so removed by close()
        self.workdir = workdir or tempfile.mkdtemp(prefix="k8s-emulator-")
        self.passthrough = passthrough_env
        self.image_entrypoints = image_entrypoints or {}
        self.extra_env = extra_env or {}

    def close(self) -> None:
        """Remove the work directory if this runner made it (pods' logs and files)."""
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pod_dir(self, uid: str) -> str:
        d = os.path.join(self.workdir, uid)
        os.makedirs(d, exist_ok=True)
        return d

    async def start(self, uid: str, container: dict, env: dict[str, str], ip: str,
                    mounts: dict[str, str] | None = None) -> PodProcess:
        mounts = mounts or {}
        env = {k: _rewrite(v.replace("0.0.0.0", ip), mounts) for k, v in env.items()}
        argv = list(container.get("command") or self.image_entrypoints.get(container.get("image", ""), []))
        argv += list(container.get("args") or [])
        argv = [_rewrite(expand(a, env).replace("0.0.0.0", ip), mounts) for a in argv]
        if not argv:
            raise RuntimeError(f"container {container.get('name')} has no command to run "
                               f"(set command, or image_entrypoints[{container.get('image')!r}])")
        d = self.pod_dir(uid)
        full_env = {k: os.environ[k] for k in self.passthrough if k in os.environ}
        full_env.update(self.extra_env)
        full_env.setdefault("HOME", d)
        full_env["POD_IP"] = ip
        full_env.update(env)
        cwd = _rewrite(container.get("workingDir") or "", mounts)
        if not cwd or not os.path.isdir(cwd):
            cwd = d
        log_path = os.path.join(d, f"{container['name']}.log")
        log = open(log_path, "ab")
        try:
            exe = argv[0] if os.sep in argv[0] else (shutil.which(argv[0], path=full_env.get("PATH")) or argv[0])
            proc = await asyncio.create_subprocess_exec(
                exe, *argv[1:], env=full_env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        return PodProcess(proc, log_path, container["name"])

    @staticmethod
    async def stop(pp: PodProcess, grace: float) -> int | None:
        if pp.proc.returncode is not None:
            return pp.proc.returncode
        try:
            os.killpg(pp.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(pp.proc.wait(), timeout=max(grace, 0.0))
        except asyncio.TimeoutError:
            pass
        try:  # the whole group: children that ignored TERM, or outlived their parent
            os.killpg(pp.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return await pp.proc.wait()

    @staticmethod
    async def tcp_ready(ip: str, port: int, timeout: float = 0.5) -> bool:
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
        except (OSError, asyncio.TimeoutError):
            return False
        w.close()
        try:
            await w.wait_closed()
        except OSError:
            pass
        return True

    def cleanup(self, uid: str) -> None:
        shutil.rmtree(os.path.join(self.workdir, uid), ignore_errors=True)
