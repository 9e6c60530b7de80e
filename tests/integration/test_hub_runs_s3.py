"""Notebook runs with the run store in S3, through a real hub, proxy and gridspawner service
and a real (moto) S3 server: the run's submitted notebook, executed notebook and log land in
the bucket under the prefix and the executed one downloads through the REST API; a delete
removes the objects; the credentials reach the service from named environment variables of
the hub and never its log; a bucket that cannot be used is a clear 503 while the service
stays up; a bad setting stops the hub at start-up naming the key."""

from __future__ import annotations

import json

import pytest
from s3.fixtures import s3_server  # noqa: F401
from test_hub_runs import api, client, notebook, wait_service_routed, wait_status

from gridspawner.runs.files import INPUT, LOG, OUTPUT
from hubtools import Hub, default_grid_config, free_port

pytestmark = pytest.mark.hub

BUCKET = "gs-hub-run-store"
PREFIX = "runs/store"
#: not a secret (moto accepts any key while auth is relaxed): a marker to look for in the log
SECRET = "runs-store-secret-3f9a1c"


def s3_grid(workdir, endpoint: str, **more) -> dict:
    grid = default_grid_config(workdir)
    grid.update({"notebook_runs": True, "runs_poll_interval": 0.5, "runs_store_url": f"s3://{BUCKET}/{PREFIX}",
                 "runs_store_endpoint_url": endpoint, "runs_store_region": "us-east-1",
                 "runs_store_access_key_env": "GS_RUNS_KEY_ID", "runs_store_secret_key_env": "GS_RUNS_SECRET",
                 "runs_store_timeout": 3.0, "runs_store_attempts": 2, **more})
    return grid


def keys(s3_server, prefix: str = PREFIX) -> set[str]:  # noqa: F811
    return {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents") or ()}


@pytest.fixture(scope="module")
def s3_hub(tmp_path_factory, s3_server):  # noqa: F811
    s3_server.reset()
    s3_server.client().create_bucket(Bucket=BUCKET)
    workdir = tmp_path_factory.mktemp("hub")
    extra = ("from gridspawner.service.settings import enable_service\n"
             f"enable_service(c, port={free_port()})\n")
    with Hub(s3_grid(workdir, s3_server.url), workdir=workdir, extra_config=extra,
             env={"GS_RUNS_KEY_ID": "testing", "GS_RUNS_SECRET": SECRET}) as hub:
        wait_service_routed(hub)
        yield hub
    assert not hub.leftover_pids()


def test_a_run_stores_its_files_in_the_bucket_downloads_and_deletes(s3_hub, s3_server, username):  # noqa: F811
    hub = s3_hub
    alice = client(hub, username)
    r = alice.post(api(hub), files={"notebook": ("n.ipynb", notebook("print('twice', value * 2)"))},
                   data={"parameters": json.dumps({"value": 21}), "name": "s3demo"}, timeout=60)
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    done = wait_status(alice, api(hub, f"/{run_id}"), ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    base = f"{PREFIX}/{run_id}/"
    assert keys(s3_server) == {base + INPUT, base + OUTPUT, base + LOG}
    stored = s3_server.client().get_object(Bucket=BUCKET, Key=base + OUTPUT)["Body"].read()
    r = alice.get(api(hub, f"/{run_id}/notebook"), timeout=30)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    assert "twice 42" in r.text and r.content == stored
    # the results page links the executed notebook (the store said it exists)
    page = alice.get(f"{hub.url}/services/gridspawner/runs", timeout=30)
    assert page.status_code == 200 and f"runs/{run_id}/html" in page.text, page.text[-2000:]
    assert SECRET not in hub.log()
    # delete: the objects go with the run
    assert alice.delete(api(hub, f"/{run_id}"), timeout=30).status_code == 204
    assert keys(s3_server) == set()
    assert alice.get(api(hub, f"/{run_id}"), timeout=30).status_code == 404


def test_a_bucket_that_cannot_be_used_is_a_clear_error_and_the_service_stays_up(s3_hub, s3_server, username):  # noqa: F811
    hub = s3_hub
    alice = client(hub, username)
    s3_server.client().delete_bucket(Bucket=BUCKET)
    try:
        r = alice.post(api(hub), files={"notebook": ("n.ipynb", notebook("1"))}, timeout=60)
        assert r.status_code == 503, r.text
        assert f"s3://{BUCKET}/{PREFIX}" in r.text and "NoSuchBucket" in r.text, r.text
        assert alice.get(api(hub), timeout=30).json()["runs"] == []  # nothing queued; the service answers
    finally:
        s3_server.client().create_bucket(Bucket=BUCKET)
    r = alice.post(api(hub), files={"notebook": ("n.ipynb", notebook("print('back')"))}, timeout=60)
    assert r.status_code == 201, r.text
    assert wait_status(alice, api(hub, f"/{r.json()['id']}"), ("succeeded", "failed"))["status"] == "succeeded"


@pytest.mark.parametrize("more, env, key", [
    ({"runs_store_url": "s3://Not_A_Bucket/x"}, {"GS_RUNS_KEY_ID": "k", "GS_RUNS_SECRET": "s"},
     "c.GridSpawner.runs_store_url"),
    ({"runs_store_url": "https://bucket/x"}, {"GS_RUNS_KEY_ID": "k", "GS_RUNS_SECRET": "s"},
     "c.GridSpawner.runs_store_url"),
    ({}, {"GS_RUNS_KEY_ID": "k"}, "c.GridSpawner.runs_store_secret_key_env"),
    ({"runs_store_timeout": 0.0}, {"GS_RUNS_KEY_ID": "k", "GS_RUNS_SECRET": "s"}, "c.GridSpawner.runs_store_timeout"),
], ids=["bucket", "scheme", "unset-variable", "timeout"])
def test_a_bad_run_store_setting_stops_the_hub_naming_the_key(make_hub, tmp_path, more, env, key):
    hub = make_hub(s3_grid(tmp_path, "http://127.0.0.1:9", **more), start=False, env=env)
    hub.start(wait=False)
    assert hub.wait_exit(60) == 1
    log = hub.log()
    message = log[log.index("gridspawner: invalid configuration: "):]
    assert f"{key}: " in message, log[-3000:]
