"""The run store in S3 (``runs_store_url``), below the REST API: real papermill runs on the
local backend whose files land in a real (moto) S3 bucket as private objects
``<prefix>/<run id>/<name>``, removed by a delete; credentials from named environment
variables; a store that becomes unreachable fails the run with a message naming the store
while the executor goes on. (Through the hub and service: test_hub_runs_s3.py.)"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from s3.fixtures import s3, s3_server  # noqa: F401
from s3.slowproxy import SlowProxy
from test_runs_local import SLEEPER, Lab, notebook

from gridspawner.runs.files import INPUT, LOG, OUTPUT, RunStoreError
from gridspawner.runs.s3files import S3RunFiles

BUCKET = "gs-run-store"
PREFIX = "hub/runs"


def store_settings(url: str, **more) -> dict:
    return {"runs_store_url": f"s3://{BUCKET}/{PREFIX}", "runs_store_endpoint_url": url, "runs_store_region": "us-east-1",
            "runs_store_access_key_env": "GS_TEST_RUNS_KEY", "runs_store_secret_key_env": "GS_TEST_RUNS_SECRET",
            "runs_store_timeout": 2.0, "runs_store_attempts": 2, **more}


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("GS_TEST_RUNS_KEY", "testing")
    monkeypatch.setenv("GS_TEST_RUNS_SECRET", "testing")  # moto's accepted key (auth relaxed)


@pytest.fixture
async def make_lab(creds):
    made = []

    async def make(url: str) -> Lab:
        root = Path(tempfile.mkdtemp(dir="/tmp", prefix="gsr3-"))
        lab = Lab(root, **store_settings(url))
        # every run as the service's own account (the root default, one account per user, is
        # what test_runs_local.py and the accounts tests cover)
        here = lab.catalog["backends"]["here"]
        here.pop("account", None), here.pop("create_accounts", None)
        here["run_as"] = "hub"
        lab.runs.files.close()
        lab.runs = lab.new_runtime()
        await lab.runs.start()
        made.append(lab)
        return lab

    yield make
    for lab in made:
        await asyncio.wait_for(lab.runs.close(), 30)
        lab.usage.store.close()
        shutil.rmtree(lab.root, ignore_errors=True)


def keys(s3, prefix: str = "") -> set[str]:
    return {o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents") or ()}


async def test_a_run_keeps_its_files_in_the_bucket_privately_and_delete_removes_them(s3, make_lab):  # noqa: F811
    s3.client().create_bucket(Bucket=BUCKET)
    lab = await make_lab(s3.url)
    assert isinstance(lab.runs.files, S3RunFiles)
    run_id = await lab.submit(notebook("print('value is', value * 2)"), {"value": 21}, gpus=0)
    row = await lab.wait(run_id, ("succeeded", "failed"))
    assert row["status"] == "succeeded", (row["error"], row["log_tail"])
    base = f"{PREFIX}/{run_id}/"
    assert keys(s3) == {base + INPUT, base + OUTPUT, base + LOG}
    assert not (lab.root / "runs").exists()  # nothing in the directory store
    client = s3.client()
    out = json.loads(client.get_object(Bucket=BUCKET, Key=base + OUTPUT)["Body"].read())
    assert "value is 42" in "".join("".join(o.get("text", "")) for c in out["cells"] for o in c.get("outputs", ()))
    assert b"value is 42" in client.get_object(Bucket=BUCKET, Key=base + LOG)["Body"].read()
    for name in (INPUT, OUTPUT, LOG):  # private: only the owner has a grant, nobody else (no public ACL)
        grants = client.get_object_acl(Bucket=BUCKET, Key=base + name)["Grants"]
        assert [g["Permission"] for g in grants] == ["FULL_CONTROL"], grants
        assert all(g["Grantee"].get("Type") == "CanonicalUser" for g in grants), grants
    assert await lab.runs.files.exists(run_id, OUTPUT)
    assert await lab.runs.files.read(run_id, OUTPUT) == client.get_object(Bucket=BUCKET, Key=base + OUTPUT)["Body"].read()
    # another run's objects are not touched by a delete
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{run_id}x/log", Body=b"other")
    await lab.runs.files.remove(run_id)
    assert keys(s3) == {f"{PREFIX}/{run_id}x/log"}
    assert await lab.runs.files.read(run_id, OUTPUT) is None and not await lab.runs.files.exists(run_id, OUTPUT)
    with pytest.raises(ValueError):  # run ids are checked before they become keys
        await lab.runs.files.read("../x", OUTPUT)


async def test_an_unreachable_store_fails_the_run_clearly_and_the_executor_goes_on(s3, make_lab):  # noqa: F811
    s3.client().create_bucket(Bucket=BUCKET)
    proxy = SlowProxy(s3.port, 0.0).__enter__()
    try:
        lab = await make_lab(proxy.url)
        run_id = await lab.submit(notebook(SLEEPER), {"seconds": 4.0}, gpus=0)
        await lab.wait(run_id, ("running",), 60)
        proxy.close()  # the endpoint goes away while the run runs
        row = await lab.wait(run_id, ("succeeded", "failed"), 90)
        assert row["status"] == "failed", row
        message = json.loads(row["error"])["message"]
        assert "outputs could not be saved" in message and f"s3://{BUCKET}/{PREFIX}" in message, message
        # a new run: a clear error at once, nothing queued; the runtime still answers
        with pytest.raises(RunStoreError, match=f"s3://{BUCKET}/{PREFIX}"):
            await lab.submit(notebook("1"), gpus=0)
        assert [r["id"] for r in await lab.runs.store.list("alice")] == [run_id]
    finally:
        proxy.close()
