"""Image pulls the registry refuses (``Cluster(pull_errors={pattern: answer})``): the
container waits in ErrImagePull with the registry's answer, then ImagePullBackOff, with the
kubelet's events ("Failed to pull image …", "Back-off pulling image …") as a real node
reports them."""

from __future__ import annotations

import asyncio


async def pull_fails(kubelet, ns, name, uid, c, key, image: str, failure: str) -> None:
    """A pull the registry refuses: ErrImagePull with its answer, then ImagePullBackOff
    (whose message only says it backs off), as long as the pod exists."""
    msg = f"rpc error: code = Unknown desc = failed to pull and unpack image \"{image}\": {failure}"
    while kubelet.current(ns, name, uid) is not None:
        pod = kubelet.set_cstatus(ns, name, uid, key, c, lambda s: s.update(
            state={"waiting": {"reason": "ErrImagePull", "message": msg}}))
        if pod is None:
            break
        kubelet.event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {msg}', c["name"])
        kubelet.event(pod, "Warning", "Failed", "Error: ErrImagePull", c["name"])
        await asyncio.sleep(kubelet.retry_interval)
        pod = kubelet.set_cstatus(ns, name, uid, key, c, lambda s: s.update(
            state={"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}))
        if pod is None:
            break
        kubelet.event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', c["name"])
        kubelet.event(pod, "Warning", "Failed", "Error: ImagePullBackOff", c["name"])
        await asyncio.sleep(kubelet.retry_interval * 5)
    return None
