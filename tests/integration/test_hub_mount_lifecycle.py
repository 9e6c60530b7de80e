"""Data mounts over a server's whole life, with a REAL hub, proxy and jupyterhub-singleuser on
the local backend, real rclone FUSE mounts and a moto S3 + STS + IAM (tests/s3):

- a file saved through the Jupyter contents API and the server stopped at once is in the
  bucket after the stop; the same when the server ended by itself (the poll path); when
  the endpoint is gone, the writes are kept on the host and the hub log says where;
- ``storage.tool: "sshfs"`` with S3 endpoints (documented: SSH mounts use sshfs, S3 mounts
  rclone) starts the hub, and S3 mounts are rclone mounts;
- STS credentials of a running server are renewed before they expire, and the mount keeps
  working with the new ones after the old ones are revoked;
- refused keys are reported at the key fields (REST 400 and the form).

moto records each STS credential's expiry (DurationSeconds) but does not enforce it, so the
renewal test revokes the first credentials itself (`s3.revoke_temporary_credentials`) and
shows that writes still reach the bucket — with auth enforced, a request signed with
revoked credentials is refused (InvalidAccessKeyId).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostmounts import missing, mounts_below, wait_for  # noqa: E402
from hubtools import Hub  # noqa: E402
from hubtools.hub import default_grid_config, local_backend_config  # noqa: E402
from s3 import ACCOUNT, ANY_KEY, S3Server, revoke_temporary_credentials  # noqa: E402
from s3.fixtures import s3_server  # noqa: E402,F401

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

if missing():
    pytest.skip(missing(), allow_module_level=True)

BUCKET = "lab-data"
ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:*"], "Resource": "*"}]}
#: renew 890 s before credentials that live 900 s expire: every 10 s in this test
RENEW_BEFORE = 890


@pytest.fixture(scope="module")
def world(s3_server, tmp_path_factory):  # noqa: F811
    """One hub for the module: backend "local" (default flush_timeout) and "quick"
    (flush_timeout 3 s); S3 endpoints "moto" (keys or STS) and "edge" (a second moto
    server on its own port, which a test takes away); storage tool "sshfs"."""
    s3_server.reset()
    admin_key, admin_secret = s3_server.iam_user("gs-admin", ALL)
    role = s3_server.role("gs-users", ALL)
    s3_server.client().create_bucket(Bucket=BUCKET)
    edge = S3Server()  # moto keeps one store per process: the same buckets, another address
    workdir = tmp_path_factory.mktemp("hub")
    grid = default_grid_config(workdir)
    grid["backends"]["quick"] = local_backend_config(workdir, flush_timeout=3)
    grid["storage"] = {
        "tool": "sshfs",
        "check_timeout": 10,
        "s3": {
            "moto": {"url": s3_server.url, "buckets": ["lab-*"], "user_prefix": "{username}/",
                     "credentials": ["keys", "sts"],
                     "sts": {"role_arn": role, "access_key_env": "GS_TEST_S3_ADMIN_KEY",
                             "secret_key_env": "GS_TEST_S3_ADMIN_SECRET", "duration": 900,
                             "renew_before": RENEW_BEFORE}},
            "edge": {"url": edge.url, "buckets": ["lab-*"], "user_prefix": "{username}/", "credentials": ["keys"]},
        },
        "access": {"*": {"s3": ["moto", "edge"]}},
    }
    hub = Hub(grid, workdir=workdir, poll_interval=2,
              env={"GS_TEST_S3_ADMIN_KEY": admin_key, "GS_TEST_S3_ADMIN_SECRET": admin_secret})
    try:
        hub.start()
        yield hub, s3_server, edge, (admin_key, admin_secret)
    finally:
        hub.close()
        edge.stop()
        s3_server.relax_auth()
        assert not hub.leftover_pids()


def mount(username: str, endpoint: str = "moto", credentials: str = "keys", **keys) -> dict:
    m = {"type": "s3", "endpoint": endpoint, "bucket": BUCKET, "prefix": f"{username}/", "target": "d",
         "mode": "mount", "credentials": credentials}
    if credentials == "keys":
        m.update(access_key=keys.get("access_key", ANY_KEY), secret_key=keys.get("secret_key", ANY_KEY))
    return m


def save(hub: Hub, username: str, path: str, text: str) -> None:
    """Save a file through the Jupyter contents API (what JupyterLab's save does)."""
    r = hub.session.put(f"{hub.url}/user/{username}/api/contents/{path}",
                        json={"type": "file", "format": "text", "content": text}, timeout=60)
    assert r.status_code in (200, 201), (r.status_code, r.text[:500])


def object_text(s3, key: str, creds=(ANY_KEY, ANY_KEY)) -> str | None:
    c = s3.client(key=creds[0], secret=creds[1])
    try:
        return c.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    except c.exceptions.NoSuchKey:
        return None


def launch_state(hub: Hub, username: str) -> dict:
    return hub.user(username)["servers"][""]["state"]["launch"]


def test_sshfs_tool_with_s3_endpoints_mounts_s3_with_rclone(world, username):
    hub, s3, _, _ = world
    hub.spawn_ready(username, {"gpus": 0, "mounts": [mount(username)]})
    try:
        sdir = launch_state(hub, username)["session_dir"]
        assert mounts_below(sdir) == [f"{sdir}/data/d"]
        (line,) = [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if ln.split()[4] == f"{sdir}/data/d"]
        assert "fuse.rclone" in line, line
    finally:
        hub.stop_server(username)


def test_a_file_saved_and_stopped_at_once_is_in_the_bucket(world, username):
    hub, s3, _, _ = world
    hub.spawn_ready(username, {"gpus": 0, "mounts": [mount(username)]})
    save(hub, username, "data/d/notes.txt", "saved just before stop")
    t0 = time.monotonic()
    r = hub.stop_server(username)
    assert r.status_code in (202, 204), r.text
    took = time.monotonic() - t0
    assert object_text(s3, f"{username}/notes.txt") == "saved just before stop"
    assert took < 60, took


def test_a_server_that_ended_by_itself_is_flushed_before_its_cleanup(world, username):
    hub, s3, _, _ = world
    hub.spawn_ready(username, {"gpus": 0, "mounts": [mount(username)]})
    save(hub, username, "data/d/last.txt", "saved, then File > Shut Down")
    r = hub.session.post(f"{hub.url}/user/{username}/api/shutdown", timeout=30)
    assert r.status_code in (200, 204), (r.status_code, r.text[:300])
    hub.wait_stopped(username, timeout=90)  # the hub's poll found it gone and cleaned up
    assert object_text(s3, f"{username}/last.txt") == "saved, then File > Shut Down"


def test_writes_that_cannot_be_uploaded_are_kept_and_logged(world, username):
    hub, s3, edge, _ = world
    hub.spawn_ready(username, {"backend": "quick", "gpus": 0, "mounts": [mount(username, endpoint="edge")]})
    sdir = launch_state(hub, username)["session_dir"]
    save(hub, username, "data/d/unsaved.txt", "only on the host")
    mark = hub.log_mark()
    edge.stop()  # the endpoint is gone before rclone uploads
    hub.stop_server(username)
    log = hub.log_since(mark)
    m = re.search(r"not uploaded within flush_timeout \(3 s\); the writes were KEPT in (\S+) on localhost", log)
    assert m, log[-3000:]
    kept = Path(m.group(1))
    assert kept.parent == Path(sdir).parent / "unsaved"
    assert f"m0/{BUCKET}/{username}/unsaved.txt" in log
    files = list(kept.glob(f"*.cache/vfs/m0/{BUCKET}/{username}/unsaved.txt"))
    assert len(files) == 1 and files[0].read_text() == "only on the host"
    assert not Path(sdir).exists() and mounts_below(sdir) == []


def test_sts_credentials_are_renewed_while_the_server_runs(world, username):
    hub, s3, _, admin = world
    with s3.enforced():
        hub.spawn_ready(username, {"gpus": 0, "mounts": [mount(username, credentials="sts")]})
        try:
            creds = Path(launch_state(hub, username)["session_dir"]) / ".mounts" / "0.json"
            first = json.loads(creds.read_text())["AccessKeyId"]
            assert first.startswith("ASIA")  # STS session credentials, read by rclone from this file
            assert wait_for(lambda: json.loads(creds.read_text())["AccessKeyId"] != first, 30), "not renewed"
            assert "renewed the temporary S3 credentials of data mount 1" in hub.log()
            # revoke the first credentials: from now on a request signed with them is refused
            revoke_temporary_credentials(first)
            with pytest.raises(Exception, match="InvalidAccessKeyId|InvalidClientTokenId|403"):
                s3.client(key=first, secret="x").list_objects_v2(Bucket=BUCKET)
            save(hub, username, "data/d/after-renewal.txt", "written with renewed credentials")
            key = f"{username}/after-renewal.txt"
            assert wait_for(lambda: object_text(s3, key, admin) == "written with renewed credentials", 45)

            # a restarted hub renews at once (it cannot know how old the credentials are)
            mark = hub.log_mark()
            hub.restart_hub()
            assert wait_for(lambda: "renewed the temporary S3 credentials" in hub.log_since(mark), 30)
        finally:
            hub.stop_server(username)


def test_refused_keys_are_reported_at_the_key_fields(world, username):
    hub, s3, _, _ = world
    hub.create_user(username)
    with s3.enforced():
        r = hub.spawn(username, {"gpus": 0, "mounts": [mount(username, access_key="AKIDNOBODY", secret_key="wrong")]})
        if r.status_code in (201, 202):  # a slow spawn: the failure shows up as a stopped server
            hub.wait_stopped(username)
            text = hub.log()
        else:
            assert r.status_code == 400, r.text
            text = r.text
        assert "mounts[0].access_key: access denied" in text and "mounts[0].secret_key: access denied" in text, text
        assert "mounts[0].bucket" not in text

        form = hub.form_session(username)
        fields = {"backend": "local", "image": "lab", "gpus": "0",
                  "mounts-0-type": "s3", "mounts-0-endpoint": "moto", "mounts-0-bucket": BUCKET,
                  "mounts-0-prefix": f"{username}/", "mounts-0-target": "d", "mounts-0-mode": "mount",
                  "mounts-0-credentials": "keys", "mounts-0-access_key": "AKIDNOBODY", "mounts-0-secret_key": "wrong"}
        page = form.post_form(fields)
    assert page.status_code in (200, 400), page.status_code
    for key in ("access_key", "secret_key"):
        assert re.search(rf'id="gs-mounts-0-{key}-error">access denied<', page.text), key
    assert 'id="gs-mounts-0-bucket-error"' not in page.text
    assert hub.server(username) is None


def test_on_kubernetes_a_server_with_sts_mounts_stops_before_they_expire(world, make_hub, username):
    """A CSI driver reads its Secret once, when it mounts: credentials cannot be renewed in a
    running pod, so the server's run time is bounded by them — said on the spawn page."""
    from k8s_emulator import EmulatorProcess

    _, s3, _, (admin_key, admin_secret) = world
    csi = {"driver": "csi-rclone",
           "volumeAttributes": {"remote": "s3", "remotePath": "{bucket}/{prefix}", "s3-endpoint": "{url}"},
           "secret_keys": {"s3-access-key-id": "access_key", "s3-secret-access-key": "secret_key",
                           "s3-session-token": "session_token"}}
    with EmulatorProcess([{"name": "cpu-1", "cpu": "16", "memory": "64Gi"}], run_pods=True) as emu:
        grid = {
            "backends": {"cluster": {"kind": "kubernetes", "namespace": "default", "kubeconfig": emu.kubeconfig_path}},
            "images": {"lab": {"kubernetes": {"image": "quay.io/jupyter/base-notebook:2025-01-01",
                                              "cmd": [sys.executable, "-m", "jupyterhub.singleuser", "--allow-root"]}}},
            "storage": {
                "s3": {"moto": {"url": s3.url, "buckets": ["lab-*"], "credentials": ["sts"],
                                "sts": {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/gs-users", "duration": 900,
                                        "access_key_env": "GS_TEST_S3_ADMIN_KEY",
                                        "secret_key_env": "GS_TEST_S3_ADMIN_SECRET"}}},
                "kubernetes": {"csi": {"s3": csi}},
            },
        }
        hub = make_hub(grid=grid, env={"GS_TEST_S3_ADMIN_KEY": admin_key, "GS_TEST_S3_ADMIN_SECRET": admin_secret})
        t0 = time.time()
        hub.spawn_ready(username, {"backend": "cluster", "image": "lab", "gpus": 0,
                                   "mounts": [mount(username, credentials="sts")]})
        try:
            deadline = hub.user(username)["servers"][""]["state"]["deadline"]
            assert t0 + 900 - 60 - 5 <= deadline <= time.time() + 900 - 60, (deadline - t0)
            stop_at = time.strftime("%H:%M", time.gmtime(deadline))
            assert (f"the server will be stopped at {stop_at} UTC, before the temporary S3 credentials of its "
                    "data mounts expire (this backend cannot renew them)") in hub.log()
        finally:
            hub.stop_server(username)
