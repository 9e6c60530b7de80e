"""startup.cover_mount_checks: the hub's REST wait covers the data-mount checks, unless
the admin chose a wait (a real JupyterHub app object, not started)."""

from __future__ import annotations

import logging

import pytest
from jupyterhub.app import JupyterHub

from gridspawner.catalog import build_catalog
from gridspawner.startup import cover_mount_checks

BACKENDS = {"here": {"kind": "local"}}
IMAGES = {"lab": {"local": {}}}
STORAGE = {"check_timeout": 20, "s3": {"campus": {"url": "https://s3.example.edu", "buckets": ["lab-*"]}}}


def catalog(storage=None):
    return build_catalog(backends=BACKENDS, images=IMAGES, storage=storage)


def test_the_rest_wait_covers_the_checks_when_storage_is_offered():
    app = JupyterHub()
    cover_mount_checks(app, catalog(STORAGE))
    assert app.tornado_settings["slow_spawn_timeout"] == 2 * 20 + 5 + 5


def test_no_storage_no_change():
    app = JupyterHub()
    cover_mount_checks(app, catalog())
    assert "slow_spawn_timeout" not in app.tornado_settings


@pytest.mark.parametrize("chosen", [5, 120])
def test_the_admins_own_wait_is_kept_with_a_warning_when_short(chosen, caplog):
    app = JupyterHub(tornado_settings={"slow_spawn_timeout": chosen})
    app.log = logging.getLogger("test.hub")
    with caplog.at_level(logging.WARNING, logger="test.hub"):
        cover_mount_checks(app, catalog(STORAGE))
    assert app.tornado_settings["slow_spawn_timeout"] == chosen
    warned = any("may answer 202" in r.getMessage() for r in caplog.records)
    assert warned == (chosen < 50)
