"""Secrets typed for data mounts never reach the hub's database or log — with a REAL hub.

JupyterHub saves a spawn's user_options to its database (and commits) BEFORE
Spawner.start() runs; gridspawner keeps the secret fields out of what is saved (a
SQLAlchemy ``set`` listener for REST spawns, an in-memory stash for form spawns). These
tests spawn with an S3 key pair against a real S3 API (moto on loopback), then grep every
byte of the hub's sqlite files and log for the secret values.
"""

from __future__ import annotations

import secrets as _secrets
from pathlib import Path

import pytest

from hubtools import Hub
from hubtools.hub import default_grid_config
from s3.fixtures import s3, s3_server  # noqa: F401

pytestmark = [pytest.mark.hub, pytest.mark.timeout(240)]

BUCKET = "lab-data"


@pytest.fixture
def s3hub(s3, tmp_path_factory):  # noqa: F811
    """A hub whose users may mount buckets ``lab-*`` of the moto S3 (typed keys only)."""
    s3.client().create_bucket(Bucket=BUCKET)
    workdir = tmp_path_factory.mktemp("hub")
    grid = default_grid_config(workdir)
    grid["storage"] = {
        "check_timeout": 10,
        "s3": {"moto": {"url": s3.url, "buckets": ["lab-*"], "user_prefix": "{username}/", "credentials": ["keys"]}},
        "access": {"*": {"s3": ["moto"]}},
    }
    hub = Hub(grid, workdir=workdir)
    try:
        hub.start()
        yield hub, s3
    finally:
        hub.close()
        assert not hub.leftover_pids()


def _marks() -> tuple[str, str]:
    """An access key id and a secret key that occur nowhere else."""
    return f"AKIDMARK{_secrets.token_hex(8).upper()}", f"SECRETMARK/{_secrets.token_hex(12)}+x="


def _assert_nowhere(hub: Hub, *values: str) -> None:
    files = [p for p in Path(hub.workdir).iterdir() if p.name.startswith("jupyterhub.sqlite") or p.suffix == ".log"]
    assert any(p.name == "jupyterhub.sqlite" for p in files), files
    for path in files:
        data = path.read_bytes()
        for v in values:
            assert v.encode() not in data, f"a mount secret is in {path.name}"


def _mount(username: str, access_key: str = "", secret_key: str = "", bucket: str = BUCKET) -> dict:
    m = {"type": "s3", "endpoint": "moto", "bucket": bucket, "prefix": f"{username}/", "target": "data1",
         "mode": "copy", "read_only": True, "credentials": "keys"}
    if access_key:
        m.update(access_key=access_key, secret_key=secret_key)
    return m


def _seed(s3_, username: str) -> None:
    s3_.client().put_object(Bucket=BUCKET, Key=f"{username}/hello.txt", Body=b"hello")


@pytest.mark.jh5
def test_rest_spawn_keeps_secrets_out_of_db_and_log(s3hub, username):
    hub, s3_ = s3hub
    _seed(s3_, username)
    ak, sk = _marks()
    hub.spawn_ready(username, {"gpus": 0, "mounts": [_mount(username, ak, sk)]})
    try:
        model = hub.server(username)
        assert model is not None
        stored = model.get("user_options") or {}
        assert stored["mounts"][0]["bucket"] == BUCKET, stored
        assert "secret_key" not in stored["mounts"][0] and "access_key" not in stored["mounts"][0]
        state = hub.api("GET", f"/users/{username}", params={"include_stopped_servers": "1"}).text
        assert ak not in state and sk not in state
        _assert_nowhere(hub, ak, sk)
    finally:
        hub.stop_server(username)
    _assert_nowhere(hub, ak, sk)


def test_rest_spawn_with_a_bad_bucket_is_a_field_error(s3hub, username):
    hub, _ = s3hub
    ak, sk = _marks()
    hub.create_user(username)
    r = hub.spawn(username, {"gpus": 0, "mounts": [_mount(username, ak, sk, bucket="lab-missing")]})
    if r.status_code in (201, 202):  # a slow spawn: the failure shows up as a stopped server
        hub.wait_stopped(username)
        text = hub.log()
    else:
        assert r.status_code == 400, r.text
        text = r.text
    assert "mounts[0].bucket" in text and "bucket not found" in text
    _assert_nowhere(hub, ak, sk)


def test_form_spawn_keeps_secrets_out_of_db_and_log(s3hub, username):
    hub, s3_ = s3hub
    _seed(s3_, username)
    ak, sk = _marks()
    hub.create_user(username)
    form = hub.form_session(username)
    try:
        page = form.get_form()
        assert 'name="mounts-0-secret_key"' in page.text and 'type="password"' in page.text
        fields = {"backend": "local", "image": "lab", "gpus": "0",
                  "mounts-0-type": "s3", "mounts-0-endpoint": "moto", "mounts-0-bucket": BUCKET,
                  "mounts-0-prefix": f"{username}/", "mounts-0-target": "data1", "mounts-0-mode": "copy",
                  "mounts-0-read_only": "1", "mounts-0-credentials": "keys",
                  "mounts-0-access_key": ak, "mounts-0-secret_key": sk,
                  "mounts-1-type": "s3", "mounts-1-mode": "mount"}  # an unused row: skipped
        r = form.post_form(fields)
        assert r.status_code == 302, r.text[:2000]
        hub.wait_ready(username)
        stored = hub.server(username).get("user_options") or {}
        assert len(stored["mounts"]) == 1 and "secret_key" not in stored["mounts"][0]
        _assert_nowhere(hub, ak, sk)
        hub.stop_server(username)

        # a bucket that does not exist: the form comes back with the error at the bucket,
        # the secret inputs empty, and nothing starts
        ak2, sk2 = _marks()
        fields.update({"mounts-0-bucket": "lab-missing", "mounts-0-access_key": ak2, "mounts-0-secret_key": sk2})
        r = form.post_form(fields)
        assert r.status_code in (200, 400), r.status_code
        assert "bucket not found" in r.text
        assert 'id="gs-mounts-0-bucket-error"' in r.text
        assert ak2 not in r.text and sk2 not in r.text
        assert hub.server(username) is None
        _assert_nowhere(hub, ak, sk, ak2, sk2)
    finally:
        form.close()
        if hub.server(username) is not None:
            hub.stop_server(username)
