"""The kubelet side of a pod's life: status progression, events, env resolution, processes.

Pending → bound (PodScheduled) → ContainerCreating (mount check: FailedMount while a secret
volume or claim is missing; CreateContainerConfigError while an env secret is missing) →
Pulling/Pulled/Created/Started events → Running with podIP, Ready when the container port
answers TCP (run mode) or at once (no process). Deletion → Killing, SIGTERM…SIGKILL, terminal
status, then the object is removed. Exits follow restartPolicy (CrashLoopBackOff or terminal).
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import TYPE_CHECKING

import fnmatch

from . import deadline, downward
from .images import pull_fails
from .runner import PodProcess, Runner, expand, materialize
from .util import rfc3339

if TYPE_CHECKING:
    from .cluster import Cluster


class ConfigError(Exception):
    """CreateContainerConfigError: a referenced secret/configmap or key is missing."""


def _cond(type_: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict:
    c = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None,
         "lastTransitionTime": rfc3339()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def set_condition(pod: dict, type_: str, ok: bool, reason: str | None = None, message: str | None = None) -> None:
    conds = pod["status"].setdefault("conditions", [])
    for i, c in enumerate(conds):
        if c["type"] == type_:
            if c["status"] == ("True" if ok else "False") and c.get("reason") == reason:
                return
            conds[i] = _cond(type_, ok, reason, message)
            return
    conds.append(_cond(type_, ok, reason, message))


class Kubelet:
    def __init__(self, cluster: "Cluster", *, run_pods: bool, runner: Runner, pull_delay: float = 0.02,
                 start_delay: float = 0.02, kill_delay: float = 0.02, retry_interval: float = 0.2,
                 crash_backoff: float = 1.0, readiness_interval: float = 0.05,
                 pull_errors: dict[str, str] | None = None):
        self.cluster = cluster
        #: image pattern (fnmatch) → the registry's answer: pulls of it fail (ErrImagePull,
        #: then ImagePullBackOff, retried every retry_interval while the pod exists)
        self.pull_errors = dict(pull_errors or {})
        self.run_pods = run_pods
        self.runner = runner
        self.pull_delay = pull_delay
        self.start_delay = start_delay
        self.kill_delay = kill_delay
        self.retry_interval = retry_interval
        self.crash_backoff = crash_backoff
        self.readiness_interval = readiness_interval
        self.tasks: dict[str, asyncio.Task] = {}  # pod uid → lifecycle task
        self.procs: dict[str, dict[str, PodProcess]] = {}  # uid → container name → process
        self.terminating: set[str] = set()
        self.pulled: dict[str, set[str]] = {}  # node → images present
        self.ready_at: dict[str, float] = {}  # uid → time.time() when Ready became True
        self.ips: dict[str, str] = {}

    # ---------------------------------------------------------------- helpers
    @property
    def store(self):
        return self.cluster.store

    def current(self, ns: str, name: str, uid: str) -> dict | None:
        p = self.store.peek("pods", ns, name)
        if p is None or p["metadata"]["uid"] != uid or p["metadata"].get("deletionTimestamp"):
            return None
        return p

    def _update(self, ns: str, name: str, uid: str, fn) -> dict | None:
        if self.current(ns, name, uid) is None:
            return None
        return self.store.mutate("pods", ns, name, fn)

    def event(self, pod: dict, type_: str, reason: str, message: str, container: str | None = None) -> None:
        fp = f"spec.containers{{{container}}}" if container else None
        self.cluster.recorder.kubelet(pod, type_, reason, message, pod["spec"].get("nodeName", ""), fp)

    # ---------------------------------------------------------------- entry points (loop thread)
    def pod_bound(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        if uid not in self.tasks:
            self.tasks[uid] = asyncio.get_running_loop().create_task(
                self._run(pod["metadata"]["namespace"], pod["metadata"]["name"], uid))

    def pod_changed(self, pod: dict) -> None:
        """A running pod was modified: refresh its downwardAPI files (a patched annotation)."""
        if self.run_pods and pod["metadata"]["uid"] in self.ips:
            downward.write(pod, self.runner.pod_dir(pod["metadata"]["uid"]))

    def pod_deleting(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self.terminating:
            return
        self.terminating.add(uid)
        asyncio.get_running_loop().create_task(self._terminate(pod))

    # ---------------------------------------------------------------- env
    def resolve_env(self, pod: dict, c: dict, ip: str) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        env: dict[str, str] = {
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        }
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "secretRef" in src:
                ref = src["secretRef"]
                sec = self.store.peek("secrets", ns, ref["name"])
                if sec is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'secret "{ref["name"]}" not found')
                for k, v in (sec.get("data") or {}).items():
                    env[prefix + k] = base64.b64decode(v).decode(errors="replace")
            if "configMapRef" in src:
                ref = src["configMapRef"]
                cm = self.store.peek("configmaps", ns, ref["name"])
                if cm is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'configmap "{ref["name"]}" not found')
                for k, v in (cm.get("data") or {}).items():
                    env[prefix + k] = v
        for e in c.get("env") or []:
            if "valueFrom" not in e or e["valueFrom"] is None:
                env[e["name"]] = expand(e.get("value") or "", env)
                continue
            vf = e["valueFrom"]
            if "secretKeyRef" in vf:
                ref = vf["secretKeyRef"]
                sec = self.store.peek("secrets", ns, ref["name"])
                if sec is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'secret "{ref["name"]}" not found')
                data = sec.get("data") or {}
                if ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f"couldn't find key {ref['key']} in Secret {ns}/{ref['name']}")
                env[e["name"]] = base64.b64decode(data[ref["key"]]).decode(errors="replace")
            elif "configMapKeyRef" in vf:
                ref = vf["configMapKeyRef"]
                cm = self.store.peek("configmaps", ns, ref["name"])
                if cm is None or ref["key"] not in (cm.get("data") or {}):
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'configmap "{ref["name"]}" not found' if cm is None else
                                      f"couldn't find key {ref['key']} in ConfigMap {ns}/{ref['name']}")
                env[e["name"]] = cm["data"][ref["key"]]
            elif "fieldRef" in vf:
                path = vf["fieldRef"]["fieldPath"]
                meta = pod["metadata"]
                values = {"metadata.name": meta["name"], "metadata.namespace": ns, "metadata.uid": meta["uid"],
                          "spec.nodeName": pod["spec"].get("nodeName", ""),
                          "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
                          "status.podIP": ip, "status.podIPs": ip, "status.hostIP": ip, "status.hostIPs": ip}
                if path.startswith("metadata.labels['"):
                    env[e["name"]] = (meta.get("labels") or {}).get(path[17:-2], "")
                elif path.startswith("metadata.annotations['"):
                    env[e["name"]] = (meta.get("annotations") or {}).get(path[22:-2], "")
                else:
                    env[e["name"]] = values.get(path, "")
            elif "resourceFieldRef" in vf:
                res = vf["resourceFieldRef"].get("resource", "")
                section, _, rname = res.partition(".")
                env[e["name"]] = str(((c.get("resources") or {}).get(section) or {}).get(rname, "0"))
        for k in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_SERVICE_PORT_HTTPS",
                  "KUBERNETES_PORT"):
            env.setdefault(k, "")
        return env

    def missing_volume(self, pod: dict) -> tuple[str, str] | None:
        ns = pod["metadata"]["namespace"]
        for v in pod["spec"].get("volumes") or []:
            if "secret" in v and not v["secret"].get("optional"):
                if self.store.peek("secrets", ns, v["secret"]["secretName"]) is None:
                    return v["name"], f'secret "{v["secret"]["secretName"]}" not found'
            if "configMap" in v and not v["configMap"].get("optional"):
                if self.store.peek("configmaps", ns, v["configMap"]["name"]) is None:
                    return v["name"], f'configmap "{v["configMap"]["name"]}" not found'
        return None

    # ---------------------------------------------------------------- lifecycle
    async def _run(self, ns: str, name: str, uid: str) -> None:
        try:
            await self._run_inner(ns, name, uid)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.cluster.log.exception("kubelet: pod %s/%s failed in the emulator", ns, name)

    def _waiting(self, c: dict, reason: str, message: str | None = None) -> dict:
        st = {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
              "restartCount": 0, "started": False, "state": {"waiting": {"reason": reason}}}
        if message:
            st["state"]["waiting"]["message"] = message
        return st

    async def _run_inner(self, ns: str, name: str, uid: str) -> None:
        pod = self.current(ns, name, uid)
        if pod is None:
            return
        node = pod["spec"]["nodeName"]
        ip = self.cluster.alloc_ip(uid)
        self.ips[uid] = ip
        node_obj = self.store.peek("nodes", None, node)
        host_ip = next((a["address"] for a in (node_obj or {}).get("status", {}).get("addresses", [])
                        if a["type"] == "InternalIP"), "10.0.0.1")
        containers = pod["spec"]["containers"]
        inits = pod["spec"].get("initContainers") or []
        names = [c["name"] for c in containers]
        unready = f"containers with unready status: [{' '.join(names)}]"

        def creating(p: dict) -> None:
            st = p["status"]
            st.update({"hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}],
                       "startTime": rfc3339()})
            set_condition(p, "PodReadyToStartContainers", False)
            if inits:
                set_condition(p, "Initialized", False, "ContainersNotInitialized",
                              f"containers with incomplete status: [{' '.join(c['name'] for c in inits)}]")
                st["initContainerStatuses"] = [self._waiting(c, "PodInitializing") for c in inits]
            else:
                set_condition(p, "Initialized", True)
            set_condition(p, "Ready", False, "ContainersNotReady", unready)
            set_condition(p, "ContainersReady", False, "ContainersNotReady", unready)
            st["containerStatuses"] = [self._waiting(c, "PodInitializing" if inits else "ContainerCreating")
                                       for c in containers]

        await asyncio.sleep(0)
        if self._update(ns, name, uid, creating) is None:
            return
        if pod["spec"].get("activeDeadlineSeconds") is not None:  # (set later: not emulated)
            asyncio.get_running_loop().create_task(deadline.watch(self, ns, name, uid))
        # volumes must be mountable first
        while True:
            pod = self.current(ns, name, uid)
            if pod is None:
                return
            missing = self.missing_volume(pod)
            if missing is None:
                break
            self.event(pod, "Warning", "FailedMount",
                        f'MountVolume.SetUp failed for volume "{missing[0]}" : {missing[1]}')
            await asyncio.sleep(self.retry_interval)
        if self.run_pods:  # downwardAPI volumes: their files, refreshed by `pod_changed`
            downward.write(pod, self.runner.pod_dir(uid))
        self._update(ns, name, uid, lambda p: set_condition(p, "PodReadyToStartContainers", True))
        # init containers: one after another, each to completion
        for i, c in enumerate(inits):
            code = await self._start_container(ns, name, uid, c, ip, init_index=i)
            if code is None:
                return
            if code != 0:
                return  # restart semantics for init containers: the pod stays Init:Error
        if inits:
            self._update(ns, name, uid, lambda p: set_condition(p, "Initialized", True))
        for c in containers:
            if await self._start_container(ns, name, uid, c, ip) is None:
                return

    async def _start_container(self, ns: str, name: str, uid: str, c: dict, ip: str,
                               init_index: int | None = None, restart: bool = False) -> int | None:
        """Start one container; for init containers wait for its exit code. None = pod went away."""
        key = "initContainerStatuses" if init_index is not None else "containerStatuses"
        pod = self.current(ns, name, uid)
        if pod is None:
            return None
        # CreateContainerConfigError until every referenced secret/key exists
        last_msg = None
        while True:
            pod = self.current(ns, name, uid)
            if pod is None:
                return None
            try:
                env = self.resolve_env(pod, c, ip)
                break
            except ConfigError as e:
                msg = str(e)
                if msg != last_msg:
                    self.set_cstatus(ns, name, uid, key, c, lambda s: s.update(
                        state={"waiting": {"reason": "CreateContainerConfigError", "message": msg}}))
                    last_msg = msg
                self.event(pod, "Warning", "Failed", f"Error: {msg}", c["name"])
                await asyncio.sleep(self.retry_interval)
        node = pod["spec"]["nodeName"]
        image = c.get("image", "")
        present = self.pulled.setdefault(node, set())
        if image in present and c.get("imagePullPolicy") != "Always" or restart:
            self.event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', c["name"])
        else:
            self.event(pod, "Normal", "Pulling", f'Pulling image "{image}"', c["name"])
            failure = next((m for pat, m in self.pull_errors.items() if fnmatch.fnmatchcase(image, pat)), None)
            if failure is not None:
                return await pull_fails(self, ns, name, uid, c, key, image, failure)
            t0 = time.monotonic()
            await asyncio.sleep(self.pull_delay)
            if self.current(ns, name, uid) is None:
                return None
            took = f"{(time.monotonic() - t0) * 1000:.0f}ms"
            self.event(pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took} ({took} '
                                                 "including waiting). Image size: 104857600 bytes.", c["name"])
            present.add(image)
        self.event(pod, "Normal", "Created", f"Created container: {c['name']}", c["name"])
        await asyncio.sleep(self.start_delay)
        pod = self.current(ns, name, uid)
        if pod is None:
            return None
        pp = None
        if self.run_pods:
            try:
                env = downward.map_env(env, pod, c, self.runner.pod_dir(uid))
                mounts = materialize(pod, c, self.store.peek, self.runner.pod_dir(uid))
                pp = await self.cluster.runner.start(uid, c, env, ip, mounts)
            except Exception as e:  # the runtime could not start it: RunContainerError
                msg = str(e)
                self.set_cstatus(ns, name, uid, key, c, lambda s: s.update(
                    state={"waiting": {"reason": "RunContainerError", "message": msg}}))
                self.event(pod, "Warning", "Failed", f"Error: {msg}", c["name"])
                return 128
            self.procs.setdefault(uid, {})[c["name"]] = pp
        self.event(pod, "Normal", "Started", f"Started container {c['name']}", c["name"])
        started = rfc3339()
        cid = f"containerd://{uid.replace('-', '')}{c['name']}"
        ready_now = (not self.run_pods or not (c.get("ports") or [])) and init_index is None

        def running(s: dict) -> None:
            s.update(state={"running": {"startedAt": started}}, started=True, ready=ready_now,
                     containerID=cid, imageID=f"docker.io/library/{image}@sha256:{'0' * 64}")

        self.set_cstatus(ns, name, uid, key, c, running, phase="Running" if init_index is None else None)
        if init_index is not None:
            code = await pp.proc.wait() if pp else 0
            code = 128 - code if code < 0 else code
            if self.current(ns, name, uid) is None:
                return None
            self.set_cstatus(ns, name, uid, key, c, lambda s: s.update(
                state={"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                      "startedAt": started, "finishedAt": rfc3339(), "containerID": cid}},
                ready=code == 0, started=False))
            return code
        if ready_now:
            self._maybe_ready(ns, name, uid)
        if pp is not None:
            asyncio.get_running_loop().create_task(self._watch_process(ns, name, uid, c, pp, ip, started, cid))
        return 0

    def set_cstatus(self, ns, name, uid, key, c, fn, phase: str | None = None) -> dict | None:
        def mut(p: dict) -> None:
            for s in p["status"].setdefault(key, []):
                if s["name"] == c["name"]:
                    fn(s)
            if phase:
                p["status"]["phase"] = phase
            self._recompute_ready(p)

        return self._update(ns, name, uid, mut)

    def _recompute_ready(self, p: dict) -> None:
        statuses = p["status"].get("containerStatuses") or []
        unready = [s["name"] for s in statuses if not s.get("ready")]
        if statuses and not unready:
            set_condition(p, "ContainersReady", True)
            set_condition(p, "Ready", True)
        else:
            msg = f"containers with unready status: [{' '.join(unready)}]"
            set_condition(p, "ContainersReady", False, "ContainersNotReady", msg)
            set_condition(p, "Ready", False, "ContainersNotReady", msg)

    def _maybe_ready(self, ns: str, name: str, uid: str) -> None:
        p = self.store.peek("pods", ns, name)
        if p and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])):
            self.ready_at.setdefault(uid, time.time())

    async def _watch_process(self, ns, name, uid, c, pp: PodProcess, ip, started, cid) -> None:
        ports = [p["containerPort"] for p in c.get("ports") or []]
        ready_task = None
        if ports:
            async def probe() -> None:
                while pp.proc.returncode is None:
                    if await self.cluster.runner.tcp_ready(ip, ports[0]):
                        self.set_cstatus(ns, name, uid, "containerStatuses", c, lambda s: s.update(ready=True))
                        self._maybe_ready(ns, name, uid)
                        return
                    await asyncio.sleep(self.readiness_interval)

            ready_task = asyncio.get_running_loop().create_task(probe())
        code = await pp.proc.wait()
        if code < 0:  # killed by signal n: the container runtime reports 128+n
            code = 128 - code
        if ready_task:
            ready_task.cancel()
        if uid in self.terminating:
            return
        await self.container_exited(ns, name, uid, c, code, started, cid)

    async def container_exited(self, ns, name, uid, c, code: int, started: str, cid: str) -> None:
        pod = self.current(ns, name, uid)
        if pod is None or pod["status"].get("reason") == deadline.REASON:  # ended at its deadline
            return
        term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "startedAt": started, "finishedAt": rfc3339(), "containerID": cid}
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            def final(s: dict) -> None:
                s.update(state={"terminated": term}, ready=False, started=False)

            others = [s for s in pod["status"].get("containerStatuses", [])
                      if s["name"] != c["name"] and "terminated" not in s.get("state", {})]
            phase = None if others else ("Succeeded" if code == 0 else "Failed")
            self.set_cstatus(ns, name, uid, "containerStatuses", c, final, phase=phase)
            self.cluster.scheduler.kick()
            return
        restarts = next((s.get("restartCount", 0) for s in pod["status"].get("containerStatuses", [])
                         if s["name"] == c["name"]), 0)
        delay = min(self.crash_backoff * (2 ** restarts), 10 * self.crash_backoff)
        pod_ref = f"{name}_{ns}({uid})"

        def backoff(s: dict) -> None:
            s.update(lastState={"terminated": term}, ready=False, started=False, restartCount=restarts + 1,
                     state={"waiting": {"reason": "CrashLoopBackOff", "message":
                                        f"back-off {delay:g}s restarting failed container={c['name']} pod={pod_ref}"}})

        self.set_cstatus(ns, name, uid, "containerStatuses", c, backoff)
        self.event(pod, "Warning", "BackOff", f"Back-off restarting failed container {c['name']} in pod {pod_ref}",
                    c["name"])
        await asyncio.sleep(delay)
        ip = self.ips.get(uid, "")
        if self.current(ns, name, uid) is not None:
            await self._start_container(ns, name, uid, c, ip, restart=True)

    # ---------------------------------------------------------------- termination
    async def stop_processes(self, uid: str, grace: float) -> dict[str, int]:
        procs = self.procs.pop(uid, {})
        codes = await asyncio.gather(*(self.runner.stop(pp, grace) for pp in procs.values()))
        return dict(zip(procs, codes))

    async def _terminate(self, pod: dict) -> None:
        ns, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
        grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
        task = self.tasks.pop(uid, None)
        if task:
            task.cancel()
        for s in pod["status"].get("containerStatuses") or []:
            if "running" in s.get("state", {}):
                self.event(pod, "Normal", "Killing", f"Stopping container {s['name']}", s["name"])
        if self.run_pods:
            codes = await self.stop_processes(uid, grace)
        else:
            await asyncio.sleep(min(self.kill_delay, grace))
            codes = {}
        cur = self.store.peek("pods", ns, name)
        if cur is None or cur["metadata"]["uid"] != uid:
            return

        def terminated(p: dict) -> None:
            all_ok = True
            for s in p["status"].get("containerStatuses") or []:
                st = s.get("state", {})
                if "terminated" in st:
                    all_ok &= st["terminated"]["exitCode"] == 0
                    continue
                code = codes.get(s["name"], 0)
                if code < 0:  # killed by a signal: the runtime reports 128+n
                    code = 128 - code
                all_ok &= code == 0
                s.update(ready=False, started=False, state={"terminated": {
                    "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                    "startedAt": (st.get("running") or {}).get("startedAt", rfc3339()), "finishedAt": rfc3339(),
                    "containerID": s.get("containerID", "")}})
            if p["status"].get("phase") not in ("Succeeded", "Failed"):
                p["status"]["phase"] = "Succeeded" if all_ok else "Failed"
            self._recompute_ready(p)

        if cur.get("spec", {}).get("nodeName") and cur["status"].get("containerStatuses"):
            self.store.mutate("pods", ns, name, terminated)
        self.cluster.finish_pod_deletion(ns, name, uid)

    def forget(self, uid: str) -> None:
        self.terminating.discard(uid)
        task = self.tasks.pop(uid, None)
        if task:
            task.cancel()
        self.ips.pop(uid, None)
        self.cluster.release_ip(uid)
