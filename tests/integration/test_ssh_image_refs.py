"""A user's own image reference on an SSH backend whose hosts start servers in a container
(the fake apptainer runtime, tests/fixtures): the reference is the image the runtime is
given, as one argument; a host without a container runtime makes it a field error."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sshhosts import available  # noqa: E402
from sshhosts.backend_env import (  # noqa: E402
    FAKE_APPTAINER, SERVER, context, env_fixture, lab_fixture, launch, stop,
)

from gridspawner.backends.base import BackendError  # noqa: E402
from gridspawner.catalog import build_catalog  # noqa: E402
from gridspawner.request import OptionsError, build_request  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

lab = lab_fixture("a")
env = env_fixture("gsref-")
REF = "registry.example.edu/lab/torch:2.4"


async def test_an_allowed_reference_is_the_image_the_runtime_runs(env):
    rt = {"kind": "apptainer", "command": FAKE_APPTAINER}
    raw = env.raw([env.host("a", runtime=rt)])
    cat = build_catalog(backends={"gpu": {"kind": "ssh", **raw}},
                        images={"base": {"ssh": {"image": "docker://quay.io/jupyter/base-notebook:1"}}},
                        group_policy={"research": {"image_refs": ["registry.example.edu/*"]}})
    req = build_request({"backend": "gpu", "image": REF}, cat, ["research"], username="refs")
    assert req.image_ref and req.image_settings.image == REF
    # the lab hosts have no jupyterhub-singleuser: the test server stands in for the image's
    req = dataclasses.replace(req, image_settings=dataclasses.replace(req.image_settings, cmd=(sys.executable, SERVER)))
    backend = env.backend([env.host("a", runtime=rt)])
    r = await launch(env, backend, context(user="refs"), req)
    args = (Path(r.state["session_dir"]) / "apptainer.args").read_text().split()
    assert f"image={REF}" in args
    await stop(env, backend, r)


async def test_a_host_without_a_container_runtime_makes_a_reference_a_field_error(env):
    raw = env.raw([env.host("a")])
    cat = build_catalog(backends={"gpu": {"kind": "ssh", **raw}}, images={"base": {"ssh": {}}},
                        group_policy={"research": {"image_refs": ["registry.example.edu/*"]}})
    with pytest.raises(OptionsError) as e:
        build_request({"backend": "gpu", "image": REF}, cat, ["research"])
    assert list(e.value.errors) == ["image"]
    assert "no container runtime" in e.value.errors["image"]


async def test_a_reference_the_registry_refuses_fails_the_start_with_the_runtime_s_error(env):
    rt = {"kind": "apptainer", "command": FAKE_APPTAINER}
    raw = env.raw([env.host("a", runtime=rt)])
    cat = build_catalog(backends={"gpu": {"kind": "ssh", **raw}}, images={"base": {"ssh": {}}},
                        group_policy={"research": {"image_refs": ["registry.example.edu/*"]}})
    req = build_request({"backend": "gpu", "image": "registry.example.edu/unpullable:1"}, cat, ["research"])
    req = dataclasses.replace(req, image_settings=dataclasses.replace(req.image_settings, cmd=(sys.executable, SERVER)))
    backend = env.backend([env.host("a", runtime=rt)])
    with pytest.raises(BackendError) as e:
        await backend.launch(context(user="refpull"), req)
    assert "401 Unauthorized" in str(e.value) and "registry.example.edu/unpullable:1" in str(e.value)
