"""python -m tests.k8s_emulator --port N --nodes nodes.yaml [--kubeconfig PATH] [--run-pods]"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal

from aiohttp import web

from .cluster import Cluster
from .emulator import write_kubeconfig
from .server import Server


def load_nodes(path: str | None) -> list[dict]:
    if not path:
        return [{"name": "node-1", "cpu": "16", "memory": "64Gi"}]
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
    except ValueError:
        import yaml
        data = yaml.safe_load(text)
    return data.get("nodes", data) if isinstance(data, dict) else data


async def main(args: argparse.Namespace) -> None:
    kw = json.loads(args.options) if args.options else {}
    cluster = Cluster(nodes=load_nodes(args.nodes), namespaces=tuple(args.namespace or ["default"]),
                      run_pods=args.run_pods, **kw)
    await cluster.start()
    runner = web.AppRunner(Server(cluster).app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, reuse_address=True)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://{args.host}:{port}"
    if args.kubeconfig:
        tmp = args.kubeconfig + ".tmp"
        write_kubeconfig(tmp, url, (args.namespace or ["default"])[0])
        os.replace(tmp, args.kubeconfig)
    print(f"k8s emulator listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await cluster.shutdown()
    cluster.ctl_drop_watches()
    await runner.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m tests.k8s_emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--nodes", help="YAML/JSON list of node specs (see scheduler.node_object)")
    p.add_argument("--kubeconfig", help="write a kubeconfig pointing at the emulator here")
    p.add_argument("--namespace", action="append", help="namespaces that exist (default: default)")
    p.add_argument("--run-pods", action="store_true", help="run pods' commands as local processes")
    p.add_argument("--options", help="JSON dict of extra Cluster keyword arguments (delays, ...)")
    p.add_argument("--log-level", default="WARNING")
    a = p.parse_args()
    logging.basicConfig(level=a.log_level)
    asyncio.run(main(a))
