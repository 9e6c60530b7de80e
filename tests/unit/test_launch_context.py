"""Launch contexts and specs carry the API token and mount credentials: their reprs show neither."""

import logging

from gridspawner.backends.base import LaunchContext


def test_repr_hides_the_token_and_mounts():
    ctx = LaunchContext(
        user="alice",
        server_name="gpu",
        slug="alice-gpu-0123456789",
        env={"JUPYTERHUB_API_TOKEN": "tok-SECRET-123"},
        cmd=("jupyterhub-singleuser",),
        args=(),
        log=logging.getLogger("test"),
        mounts=("mount-with-SECRET-key",),
    )
    text = repr(ctx)
    assert "alice" in text and "alice-gpu-0123456789" in text
    assert "SECRET" not in text
    assert ctx.env["JUPYTERHUB_API_TOKEN"] == "tok-SECRET-123"  # still there for the backend


def test_launch_spec_repr_hides_the_token():
    from gridspawner.backends.host.launch_scripts import LaunchSpec

    spec = LaunchSpec(
        session_root="/tmp/gs", slug="alice-0123456789", notebook_dir="/tmp",
        env={"JUPYTERHUB_API_TOKEN": "tok-SECRET-123"}, cmd=("jupyterhub-singleuser",),
    )
    assert "SECRET" not in repr(spec) and "alice-0123456789" in repr(spec)
