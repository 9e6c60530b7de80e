"""Notebook runs and what the executor must check again when a queued run starts: the GPU
quota (through the usage side's own checks, as at submit) and the typed mount credentials
(memory only: lost by a restart of the service). Real papermill, real processes, the real
usage database and runs table (SQLite); the servers that count against a quota are usage
records as the hub writes them."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from sshhosts.accounts import let_accounts_run  # tests/ is on sys.path
from test_runs_local import SLEEPER, Lab, lab_root, notebook

from gridspawner.runs.executor import LOST_SECRETS
from gridspawner.runs.submit import build_draft
from gridspawner.usage.config import build_usage_config
from gridspawner.usage.runtime import UsageRuntime


async def quota_lab(**usage) -> Lab:
    """A `Lab` whose usage side has ``usage`` (quota traits) and whose executor runs."""
    let_accounts_run(sys.executable)
    lab = Lab(lab_root())
    await lab.runs.close()
    lab.usage.store.close()
    lab.usage = UsageRuntime(build_usage_config(quota_check_interval=1, **usage), lab.db)
    lab.usage.upgrade_now()
    lab.runs = lab.new_runtime()
    await lab.runs.start()
    return lab


async def server_record(lab: Lab, user: str, gpus: int, started: float, stopped: float | None = None) -> int:
    """A GPU server's usage record, as the hub writes it (open while ``stopped`` is None)."""
    values = {"kind": "server", "username": user, "server_name": "", "backend": "here", "backend_kind": "local",
              "host": "h", "gpus": gpus, "gpu_model": "NVIDIA A100-SXM4-80GB", "gpu_memory_gb": 80, "cpu": None,
              "memory_gb": None, "image": "base", "profile": "", "price_per_hour": 0.0, "currency": "",
              "started_at": started, "last_seen_at": stopped or started}
    record = await lab.usage.store.open(values, [])
    if stopped is not None:
        await lab.usage.store.close_record(record, stopped, "user", user)
    return record


async def test_a_queued_run_checks_the_gpu_quota_again_when_it_starts():
    lab = await quota_lab(default_quota={"gpus_at_once": 1}, user_quotas={"carol": {"gpu_hours_per_month": 0.001}})
    try:
        # alice started a 1-GPU server after her run was queued: the run waits, saying why
        server = await server_record(lab, "alice", 1, time.time())
        waiting = await lab.submit(notebook("print('alice ran')"), gpus=1, user="alice")
        # bob's run, behind it on the same backend, is not held up by alice's quota
        other = await lab.submit(notebook("print('bob ran')"), gpus=0, user="bob")
        row = await lab.wait(other, ("succeeded", "failed"), 60)
        assert row["status"] == "succeeded", row
        row = await lab.runs.store.get(waiting)
        assert row["status"] == "queued" and row["started_at"] is None
        assert row["message"] == "waiting: 1 of 1 GPUs at once in use (this run needs 1)"
        from gridspawner.runs.view import run_json

        assert run_json(row, time.time(), 1)["message"] == row["message"]  # what the API and page show
        # her server stops (the hub nudges the service): the run starts and its message goes
        await lab.usage.store.close_record(server, time.time(), "user", "alice")
        lab.runs.executor.nudge("here")
        row = await lab.wait(waiting, ("succeeded", "failed"), 60)
        assert row["status"] == "succeeded" and "alice ran" in row["log_tail"] and row["message"] == ""
        # carol used her GPU-hours while her run was queued: it fails, naming the quota and numbers
        now = time.time()
        await server_record(lab, "carol", 1, now - 120, now - 60)
        row = await lab.wait(await lab.submit(notebook("1"), gpus=1, user="carol"), ("failed", "succeeded"), 60)
        error = json.loads(row["error"])
        assert row["status"] == "failed" and row["started_at"] is None, row
        assert error["message"].startswith("could not start: gpus: you have used 0.0167 of 0.001 GPU-hours this month")
        assert lab.ledger() == [] and lab.sessions() == []
    finally:
        await lab.close()


async def test_a_running_run_is_stopped_when_its_user_s_gpu_hours_run_out():
    # 0.001 GPU-hours: 3.6 s of one GPU, then 1 s of grace
    lab = await quota_lab(user_quotas={"dave": {"gpu_hours_per_month": 0.001}}, quota_grace=1)
    try:
        run_id = await lab.submit(notebook(SLEEPER), {"seconds": 120.0}, gpus=1, user="dave")
        await lab.wait(run_id, ("running",), 60)
        warned = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = await lab.runs.store.get(run_id)
            warned = warned or (row["message"] if row["message"].startswith("will be stopped at") else "")
            if row["status"] not in ("queued", "preparing", "running"):
                break
            await asyncio.sleep(0.1)
        assert warned.endswith("your 0.001 GPU-hours for this month run out"), warned
        assert row["status"] == "failed", row
        assert json.loads(row["error"])["message"] == "stopped by the GPU quota: your 0.001 GPU-hours for this month run out"
        assert row["finished_at"] - row["started_at"] < 3.6 + 1 + 5
        record = await lab.usage.store.record(row["record_id"])
        assert record["stop_reason"] == "quota" and record["stopped_at"]
        assert lab.ledger() == [] and lab.sessions() == []
    finally:
        await lab.close()


async def test_typed_mount_credentials_lost_by_a_restart_fail_the_queued_run_clearly():
    """A run queued with typed S3 keys and a typed SSH password (its ``auth`` left out: the
    password chose it) when the service restarts: it fails naming both fields, and never
    starts (no session, no check against storage)."""
    let_accounts_run(sys.executable)
    lab = Lab(lab_root())  # its executor is not started: the runs stay queued
    known = lab.root / "known_hosts"
    known.write_text("")
    lab.catalog["storage"] = {
        "s3": {"campus": {"url": "http://127.0.0.1:9", "buckets": ["lab-*"], "credentials": ["keys"]}},
        "ssh": {"nas": {"address": "127.0.0.1", "port": 9, "auth": ["key", "password"], "paths": ["/data"],
                        "known_hosts": str(known)}},
        "access": {"*": {"s3": ["campus"], "ssh": ["nas"]}}, "key_dir": str(lab.root / "keys")}
    await lab.runs.close()
    lab.runs = lab.new_runtime()
    try:
        mounts = [{"type": "s3", "endpoint": "campus", "bucket": "lab-in", "target": "a", "mode": "copy",
                   "credentials": "keys", "access_key": "AKIAEXAMPLE", "secret_key": "typed-secret"},
                  {"type": "ssh", "host": "nas", "path": "/data", "user": "alice", "target": "b", "mode": "copy",
                   "password": "typed-password"}]
        draft = build_draft({"notebook": notebook("1"), "options": {"gpus": 0, "mounts": mounts}},
                            lab.runs.catalog, [], "alice")
        run_id = await lab.runs.submit(draft, "alice", [])
        stored = await lab.runs.store.get(run_id)
        assert "typed-secret" not in stored["options"] and "typed-password" not in stored["options"]
        await lab.runs.close()  # the service restarts: what was in its memory is gone
        lab.runs = lab.new_runtime()
        await lab.runs.start()
        row = await lab.wait(run_id, ("failed", "succeeded"), 60)
        message = json.loads(row["error"])["message"]
        assert row["status"] == "failed" and row["started_at"] is None
        assert message == (f"could not start: mounts[0].secret_key: {LOST_SECRETS}; mounts[1].password: {LOST_SECRETS}")
        assert "submit the run again" in message and lab.sessions() == []
    finally:
        await lab.close()
