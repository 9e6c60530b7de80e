"""PURE: what a host launch runs, built from explicit values: the server's environment (the
GPUs stay a list of `GPU` objects until here, where they become ``CUDA_VISIBLE_DEVICES``)
and the launch script's `LaunchSpec`."""

from __future__ import annotations

from typing import Iterable, Mapping

from ...server_env import PREFIX as FACTS_PREFIX, placement_env, stops_file_env
from ..base import LaunchContext
from .placement import Placement
from .launch_scripts import LaunchSpec
from .scripts import env_name_ok
from .settings import HostImage, HostSettings


def server_environment(
    hub_env: Mapping[str, object],
    backend_env: Iterable[tuple[str, str]],
    image_env: Iterable[tuple[str, str]],
    placement: Placement,
    session_dir: str,
) -> tuple[dict[str, str], list[str]]:
    """(the environment, the names of ``hub_env`` skipped because no shell can hold them).

    In order: the hub's environment for the server (``hub_env``: JupyterHub's, with the API
    token), the backend's and the image's ``env``, then what no admin setting replaces:
    JupyterHub's variables, gridspawner's facts (`gridspawner.server_env`: the spawner's,
    then where this launch placed the server) and the GPUs in ``CUDA_VISIBLE_DEVICES``."""
    env: dict[str, str] = {}
    skipped: list[str] = []
    for k, v in hub_env.items():
        if env_name_ok(k):
            env[k] = str(v)
        else:
            skipped.append(k)
    env.update(backend_env)
    env.update(image_env)
    env.update({k: str(v) for k, v in hub_env.items() if k.startswith(("JUPYTERHUB_", FACTS_PREFIX)) and env_name_ok(k)})
    env.update(placement_env(placement.host, placement.gpus))
    env.update(stops_file_env(session_dir))
    env["CUDA_VISIBLE_DEVICES"] = ",".join(placement.gpu_uuids)
    return env, skipped


def launch_spec(settings: HostSettings, ctx: LaunchContext, image: HostImage, placement: Placement, *,
                session_root: str, slug: str, entry: str, env: Mapping[str, str], hub: str,
                backend: str) -> LaunchSpec:
    """The launch script's spec for ``ctx``'s server at ``placement`` (its GPU claims, made
    for ledger ``entry``, handed to the server; data mounts made into ``$S/data``)."""
    claimed = bool(placement.claims)
    mounts = tuple(ctx.mounts or ())
    return LaunchSpec(
        session_root=session_root,
        slug=slug,
        notebook_dir=settings.notebook_dir_for(ctx.user),
        env=env,
        cmd=tuple(image.cmd or ctx.cmd) + tuple(ctx.args),
        prefix=image.prefix,
        ledger_dir=settings.ledger_dir if claimed else None,
        ledger_entry=entry if claimed else None,
        ledger_claims=placement.claims,
        mounts=mounts,
        mount_tool=getattr(ctx.storage, "tool", None) or "rclone",
        data_link=data_dir_name(ctx) if mounts else None,
        flush_wait=settings.flush_timeout,
        hub=hub,
        backend=backend,
    )


def data_dir_name(ctx: LaunchContext) -> str:
    """The name of the data directory (and its link in the notebook directory)."""
    return getattr(ctx.storage, "data_dir", None) or "data"
