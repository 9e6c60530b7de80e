"""Exact-output tests of the pure server-command builders for each runtime of ssh hosts."""

from __future__ import annotations

import pytest

from gridspawner.backends.ssh.server_setup import _rebase
from gridspawner.backends.ssh.runtimes import DOCKER_WRAPPER, PODMAN_WRAPPER, Runtime, combined_prefix, server_command
from gridspawner.backends.ssh.settings import SSHImage, image_for

CMD = ("jupyterhub-singleuser", "--SingleUserNotebookApp.default_url=/lab")
SD = "/tmp/gridspawner-alice/alice-0123456789"
U1 = "GPU-11111111-2222-3333-4444-555555555555"
U2 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
ENV = ("JUPYTERHUB_API_TOKEN", "CUDA_VISIBLE_DEVICES")


def build(runtime, image="docker://quay.io/jupyter/pytorch-notebook:cuda12-2024-06-24", gpus=(U1, U2), label="", **limits):
    return server_command(runtime, CMD, image=image, env_names=ENV, session_dir=SD, gpu_uuids=gpus, label=label,
                          **limits)


def test_none_runs_the_command_itself():
    assert build(Runtime("none"), image=None) == CMD
    assert build(Runtime("none", prefix="module load cuda/12"), image=None) == CMD


def test_apptainer():
    img = "docker://quay.io/jupyter/pytorch-notebook:cuda12-2024-06-24"
    assert build(Runtime("apptainer")) == (
        "apptainer", "exec", "--nv", "--bind", f"{SD}:{SD}", img, *CMD,
    )
    # no GPU: no --nv; the admin's binary and arguments
    assert build(Runtime("apptainer", command="/opt/apptainer/bin/apptainer", args=("--contain",)), gpus=()) == (
        "/opt/apptainer/bin/apptainer", "exec", "--bind", f"{SD}:{SD}", "--contain", img, *CMD,
    )


def test_podman_uses_cdi_devices_and_env_by_name():
    img = "quay.io/jupyter/pytorch-notebook:cuda12-2024-06-24"
    assert build(Runtime("podman"), image=img, label=SD) == (
        "/bin/sh", "-c", PODMAN_WRAPPER, "podman",
        "--label", f"gridspawner.session={SD}",
        "--device", f"nvidia.com/gpu={U1}", "--device", f"nvidia.com/gpu={U2}",
        "-v", f"{SD}:{SD}",
        "-e", "JUPYTERHUB_API_TOKEN", "-e", "CUDA_VISIBLE_DEVICES",
        img, *CMD,
    )
    assert PODMAN_WRAPPER == (
        'if [ "$(id -u)" = 0 ]; then u=--user=0:0; else u=--userns=keep-id; fi; '
        'exec "$0" run --rm --init "$u" --network host -v "$PWD:$PWD" -w "$PWD" "$@"'
    )


def test_docker_gpus_value_is_quoted_device_list():
    img = "quay.io/jupyter/pytorch-notebook:cuda12-2024-06-24"
    assert build(Runtime("docker", args=("--shm-size=8g",)), image=img) == (
        "/bin/sh", "-c", DOCKER_WRAPPER, "docker",
        "--gpus", f'"device={U1},{U2}"',
        "-v", f"{SD}:{SD}",
        "-e", "JUPYTERHUB_API_TOKEN", "-e", "CUDA_VISIBLE_DEVICES",
        "--shm-size=8g", img, *CMD,
    )
    assert build(Runtime("docker"), image=img, gpus=())[4:6] == ("-v", f"{SD}:{SD}")
    assert DOCKER_WRAPPER == (
        'exec "$0" run --rm --init --user "$(id -u):$(id -g)" --network host '
        '-v "$PWD:$PWD" -w "$PWD" "$@"'
    )


def test_podman_and_docker_limit_cpu_and_memory():
    img = "quay.io/jupyter/pytorch-notebook:cuda12-2024-06-24"
    assert build(Runtime("docker"), image=img, gpus=(U1,), cpu=2.5, memory_gb=16) == (
        "/bin/sh", "-c", DOCKER_WRAPPER, "docker",
        "--cpus=2.5", "--memory=16g",
        "--gpus", f'"device={U1}"',
        "-v", f"{SD}:{SD}",
        "-e", "JUPYTERHUB_API_TOKEN", "-e", "CUDA_VISIBLE_DEVICES",
        img, *CMD,
    )
    assert build(Runtime("podman"), image=img, gpus=(), cpu=4, memory_gb=None) == (
        "/bin/sh", "-c", PODMAN_WRAPPER, "podman", "--cpus=4",
        "-v", f"{SD}:{SD}", "-e", "JUPYTERHUB_API_TOKEN", "-e", "CUDA_VISIBLE_DEVICES", img, *CMD,
    )
    assert Runtime("podman").limits_resources and Runtime("docker").limits_resources


def test_none_and_apptainer_do_not_limit():
    assert build(Runtime("none"), image=None, cpu=2, memory_gb=8) == CMD
    assert build(Runtime("apptainer"), cpu=2, memory_gb=8) == build(Runtime("apptainer"))
    assert not Runtime("none").limits_resources and not Runtime("apptainer").limits_resources


def test_no_secret_values_in_any_argv():
    for kind in ("none", "apptainer", "podman", "docker"):
        argv = server_command(Runtime(kind), CMD, image="img", env_names=["JUPYTERHUB_API_TOKEN"], session_dir=SD,
                              gpu_uuids=(U1,))
        assert not any("=" in a and a.startswith("JUPYTERHUB_API_TOKEN") for a in argv)


@pytest.mark.parametrize("kind", ["apptainer", "podman", "docker"])
def test_container_runtimes_need_an_image(kind):
    with pytest.raises(ValueError, match="needs an image"):
        build(Runtime(kind), image=None)


def test_image_for_strips_docker_scheme_for_podman_and_docker():
    img = SSHImage(image="docker://quay.io/jupyter/base-notebook:latest")
    assert image_for(img, Runtime("apptainer")) == "docker://quay.io/jupyter/base-notebook:latest"
    assert image_for(img, Runtime("podman")) == "quay.io/jupyter/base-notebook:latest"
    assert image_for(img, Runtime("docker")) == "quay.io/jupyter/base-notebook:latest"
    assert image_for(img, Runtime("none")) is None
    assert image_for(SSHImage(), Runtime("docker")) is None


def test_combined_prefix():
    assert combined_prefix("module load cuda\n", "", ". /opt/env/bin/activate") == "module load cuda\n. /opt/env/bin/activate"
    assert combined_prefix("", "  ") == ""


def test_rebase_hub_urls():
    from urllib.parse import urlsplit

    old = urlsplit("http://10.0.0.5:8081/hub/api")
    assert _rebase("http://10.0.0.5:8081/hub/api", old, None, 40123) == "http://127.0.0.1:40123/hub/api"
    assert _rebase("http://10.0.0.5:8081/hub/api/users/a/activity", old, None, 40123) == (
        "http://127.0.0.1:40123/hub/api/users/a/activity"
    )
    assert _rebase("http://other:1/x", old, None, 40123) == "http://other:1/x"
    assert _rebase("http://10.0.0.5:8081/hub/api/users/a/activity", old, "https://hub.example.org/hub/api", None) == (
        "https://hub.example.org/hub/api/users/a/activity"
    )
