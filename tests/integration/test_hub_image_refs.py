"""Custom image references through a REAL hub: the spawn form offers the "your own image"
input where the policy allows references, and a refused one — in the form or through the
REST API — comes back as a field error naming ``image`` (400), with nothing started."""

from __future__ import annotations


import pytest

pytestmark = [pytest.mark.hub, pytest.mark.timeout(240)]


def test_refused_references_are_field_errors_naming_image(make_hub, username, tmp_path):
    from hubtools.hub import default_grid_config

    grid = default_grid_config(tmp_path)
    grid["default_policy"] = {"image_refs": ["registry.example.edu/*"]}
    hub = make_hub(grid)
    hub.create_user(username)

    # REST: not matching the patterns, and matching but on a backend without containers
    r = hub.spawn(username, {"backend": "local", "image": "docker.io/evil/miner:1"})
    assert r.status_code == 400, r.text
    assert "image" in r.text and "not allowed for you" in r.text, r.text
    r = hub.spawn(username, {"backend": "local", "image": "registry.example.edu/lab/x:1"})
    assert r.status_code == 400 and "runs no container images" in r.text, r.text
    assert hub.server(username) is None

    form = hub.form_session(username)
    try:
        page = form.get_form()
        assert page.status_code == 200
        assert 'name="image_ref"' in page.text and "registry.example.edu/*" in page.text
        r = form.post_form({"backend": "local", "image": "lab", "gpus": "0", "gpu_memory": "0",
                            "image_ref": "docker.io/evil/miner:1"})
        assert r.status_code == 400
        assert 'id="gs-image-error"' in r.text and "not allowed for you" in r.text, r.text[:3000]
        assert 'value="docker.io/evil/miner:1"' in r.text  # what the user typed, shown again
    finally:
        form.close()
    assert hub.server(username) is None  # nothing was started
