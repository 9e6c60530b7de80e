"""Pure builders of the command that starts a server under a host's runtime.

A host's ``runtime`` says how a server starts there: ``none`` (the command itself, after an
optional shell ``prefix`` such as ``module load cuda/12``), ``apptainer``, ``podman`` or
``docker`` (the image's container, with only the allocated GPUs and the session directory
bound in). Each builder returns the argv as words; the launch script quotes every word and
appends the server's own arguments (``--ServerApp.sock=…``), which therefore go to the
server inside the container.

Secrets never appear in these words: containers get their environment by *name*
(``-e NAME``, the value is read from the launch script's environment), and apptainer passes
the environment through. GPUs:

- apptainer: ``--nv`` (the driver's libraries) and CUDA_VISIBLE_DEVICES = the UUIDs;
- podman: one CDI device ``--device nvidia.com/gpu=<uuid>`` per GPU;
- docker: ``--gpus '"device=<uuid>,<uuid>"'`` (the double quotes are part of the value).

CPU and memory (the user's ``cpu`` / ``memory`` choices) are limited by podman and docker
(``--cpus``, ``--memory`` in GiB, as the Kubernetes backend's ``Gi``); ``none`` and apptainer
cannot limit them without cgroup delegation the host may not have, so they do not try.

podman and docker run with the host network (the server reaches the hub API on the host's
loopback, where the hub's reverse tunnel listens) and as the calling account
(``--user uid:gid``, or ``--userns=keep-id`` for rootless podman), so the server can create
its socket in the 0700 session directory. The notebook directory (the launch script's
working directory) is bound in at the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

RUNTIME_KINDS = ("none", "apptainer", "podman", "docker")
CONTAINER_KINDS = ("apptainer", "podman", "docker")
#: the runtimes that limit a server's CPU and memory
LIMITING_KINDS = ("podman", "docker")

#: sh wrappers for podman and docker: "$0" is the runtime binary, "$@" the rest of the run
#: arguments. They only expand the account's ids and the working directory.
DOCKER_WRAPPER = (
    'exec "$0" run --rm --init --user "$(id -u):$(id -g)" --network host '
    '-v "$PWD:$PWD" -w "$PWD" "$@"'
)
PODMAN_WRAPPER = (
    'if [ "$(id -u)" = 0 ]; then u=--user=0:0; else u=--userns=keep-id; fi; '
    'exec "$0" run --rm --init "$u" --network host -v "$PWD:$PWD" -w "$PWD" "$@"'
)


@dataclass(frozen=True)
class Runtime:
    """How servers start on a host. ``command``: the runtime's binary (default: its kind);
    ``args``: extra admin-chosen arguments placed before the image; ``prefix``: admin shell
    run first on the host (``module load …``, ``conda activate …``)."""

    kind: str = "none"
    prefix: str = ""
    command: str | None = None
    args: tuple[str, ...] = ()

    @property
    def is_container(self) -> bool:
        return self.kind in CONTAINER_KINDS

    @property
    def limits_resources(self) -> bool:
        return self.kind in LIMITING_KINDS

    @property
    def binary(self) -> str:
        return self.command or self.kind


def server_command(
    runtime: Runtime,
    cmd: Sequence[str],
    *,
    image: str | None,
    env_names: Sequence[str],
    session_dir: str,
    gpu_uuids: Sequence[str],
    label: str = "",
    cpu: float | None = None,
    memory_gb: int | None = None,
) -> tuple[str, ...]:
    """The argv that runs ``cmd`` under ``runtime`` (ValueError: a container without image).
    ``cpu`` / ``memory_gb`` (None or 0: no limit) count only where the runtime limits them."""
    cmd = tuple(cmd)
    if runtime.kind == "none":
        return cmd
    if not image:
        raise ValueError(f"the {runtime.kind} runtime needs an image")
    bind = f"{session_dir}:{session_dir}"
    if runtime.kind == "apptainer":
        gpu = ("--nv",) if gpu_uuids else ()
        return (runtime.binary, "exec", *gpu, "--bind", bind, *runtime.args, image, *cmd)
    env: list[str] = []
    for name in env_names:
        env += ["-e", name]
    labels = ("--label", f"gridspawner.session={label}") if label else ()
    limits = limit_options(cpu, memory_gb)
    if runtime.kind == "podman":
        devices: list[str] = []
        for u in gpu_uuids:
            devices += ["--device", f"nvidia.com/gpu={u}"]
        return ("/bin/sh", "-c", PODMAN_WRAPPER, runtime.binary, *labels, *limits, *devices, "-v", bind, *env,
                *runtime.args, image, *cmd)
    if runtime.kind == "docker":
        gpus = ("--gpus", '"device=' + ",".join(gpu_uuids) + '"') if gpu_uuids else ()
        return ("/bin/sh", "-c", DOCKER_WRAPPER, runtime.binary, *labels, *limits, *gpus, "-v", bind, *env,
                *runtime.args, image, *cmd)
    raise ValueError(f"unknown runtime {runtime.kind!r}")


def limit_options(cpu: float | None, memory_gb: int | None) -> tuple[str, ...]:
    """podman/docker run options for a CPU count and a memory size in GiB (falsy: none)."""
    out: tuple[str, ...] = ()
    if cpu:
        out += (f"--cpus={cpu:g}",)
    if memory_gb:
        out += (f"--memory={int(memory_gb)}g",)
    return out


def combined_prefix(*parts: str) -> str:
    """Admin shell snippets joined, each on its own lines (empty ones dropped)."""
    return "\n".join(p.strip("\n") for p in parts if p and p.strip())
