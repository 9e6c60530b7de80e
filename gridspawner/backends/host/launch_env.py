"""PURE: a host server's environment, built from explicit values (the GPUs stay a list of
`GPU` objects until here, where they become ``CUDA_VISIBLE_DEVICES``)."""

from __future__ import annotations

from typing import Iterable, Mapping

from ...server_env import PREFIX as FACTS_PREFIX, placement_env, stops_file_env
from .placement import Placement
from .scripts import env_name_ok


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
