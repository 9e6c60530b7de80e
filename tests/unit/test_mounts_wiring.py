"""How data mounts are wired through the spawner: build_request, resolving credentials and
checks into field errors, the in-memory secret stash, the ORM filter that keeps secrets out
of the hub database, and the Kubernetes names of mount Secrets."""

from __future__ import annotations

import asyncio
import json

import pytest

from gridspawner.backends.kubernetes import objects
from gridspawner.catalog import build_catalog
from gridspawner.mounts import resolve
from gridspawner.mounts.config import parse_storage
from gridspawner.mounts.resolved import S3Secret
from gridspawner.mounts.specs import MountSpec
from gridspawner.mounts.resolve import resolve_mounts
from gridspawner.request import OptionsError, build_request

pytestmark = pytest.mark.timeout(30)

STORAGE = {
    "s3": {"campus": {"url": "https://s3.example.edu", "buckets": ["lab-*"], "user_prefix": "{username}/",
                      "credentials": ["keys", "sts"], "sts": {"role_arn": "arn:aws:iam::123456789012:role/j"}}},
    "kubernetes": {"csi": {"s3": {"driver": "csi-rclone", "volumeAttributes": {"remotePath": "{bucket}/{prefix}"}}}},
}
S3ROW = {"type": "s3", "bucket": "lab-data", "prefix": "alice/", "target": "d", "credentials": "keys",
         "access_key": "AKID", "secret_key": "sk/secret"}


def catalog(storage=STORAGE):
    from gridspawner.backends.kubernetes.backend import KubernetesBackend  # noqa: F401 - registers the kind

    return build_catalog(
        backends={"here": {"kind": "local"}, "k8s": {"kind": "kubernetes", "namespace": "jhub"}},
        images={"lab": {"local": {}, "kubernetes": {"image": "quay.io/jupyter/base-notebook"}}},
        storage=storage,
    )


def test_storage_parsed_once_into_the_catalog():
    assert catalog().storage.enabled and not catalog(None).storage.enabled
    with pytest.raises(Exception, match=r"c\.GridSpawner\.storage\['s3'\]\['campus'\]\.url"):
        catalog({"s3": {"campus": {"url": "ftp://x", "buckets": ["b"]}}})


def test_build_request_mounts_without_secrets():
    req = build_request({"backend": "here", "mounts": [S3ROW]}, catalog(), [], username="alice")
    assert req.mounts == (MountSpec(type="s3", target="d", endpoint="campus", bucket="lab-data", prefix="alice/",
                                    credentials="keys"),)
    assert "sk/secret" not in repr(req) and "mounts=1" in req.summary()
    with pytest.raises(OptionsError) as e:
        build_request({"backend": "here", "mounts": [dict(S3ROW, prefix="bob/")]}, catalog(), [], username="alice")
    assert list(e.value.errors) == ["mounts[0].prefix"]
    with pytest.raises(OptionsError) as e:
        build_request({"backend": "here", "mounts": [S3ROW]}, catalog(None), [], username="alice")
    assert e.value.errors == {"mounts": "data mounts are not enabled on this hub"}


def test_kubernetes_mount_mode_needs_a_csi_template():
    ssh_storage = dict(STORAGE, ssh={"nas": {"address": "nas", "known_hosts": "/kh", "paths": ["/x/*"], "auth": ["password"]}})
    row = {"type": "ssh", "path": "/x/alice", "target": "n", "password": "pw"}
    with pytest.raises(OptionsError) as e:
        build_request({"backend": "k8s", "mounts": [S3ROW, row]}, catalog(ssh_storage), [], username="alice")
    assert e.value.errors == {
        "mounts[1].mode": "this backend cannot mount ssh storage (no CSI driver configured); use mode 'copy'"
    }
    req = build_request({"backend": "k8s", "mounts": [S3ROW, dict(row, mode="copy")]}, catalog(ssh_storage), [], username="alice")
    assert len(req.mounts) == 2


def _spec(**kw):
    return MountSpec(**{"type": "s3", "target": "d", "endpoint": "campus", "bucket": "lab-data", "prefix": "alice/",
                        "credentials": "keys", **kw})


async def test_resolve_turns_check_failures_into_field_errors(monkeypatch):
    storage = parse_storage(STORAGE)
    seen = []

    async def fake_check(spec, creds, endpoint, timeout=10, **kw):
        seen.append((spec.bucket, creds))
        return "bucket not found" if spec.bucket == "lab-missing" else None

    async def fake_sts(endpoint, username, bucket, prefix, read_only, **kw):
        if bucket == "lab-denied":
            raise resolve.STSError("the storage service refused per-user credentials (AccessDenied)")
        return S3Secret("ASIA", "temp", "token")

    monkeypatch.setattr(resolve.s3check, "check_s3", fake_check)
    monkeypatch.setattr(resolve, "scoped_credentials", fake_sts)
    specs = (_spec(), _spec(target="e", credentials="sts"))
    mounts = await resolve_mounts(specs, {0: {"access_key": "AKID", "secret_key": "sk"}}, storage, "alice")
    assert [m.secret for m in mounts] == [S3Secret("AKID", "sk"), S3Secret("ASIA", "temp", "token")]
    assert [m.index for m in mounts] == [0, 1] and mounts[0].source.url == "https://s3.example.edu"
    with pytest.raises(OptionsError) as e:
        await resolve_mounts(
            (_spec(bucket="lab-missing"), _spec(target="e", credentials="sts", bucket="lab-denied"), _spec(target="f")),
            {0: {"access_key": "a", "secret_key": "b"}}, storage, "alice",
        )
    assert e.value.errors == {
        "mounts[0].bucket": "bucket not found",
        "mounts[1].credentials": "the storage service refused per-user credentials (AccessDenied)",
        "mounts[2].access_key": "enter the access key id and secret key again",
    }


async def test_resolve_runs_checks_concurrently(monkeypatch):
    storage = parse_storage(STORAGE)

    async def slow_check(*a, **kw):
        await asyncio.sleep(0.3)

    monkeypatch.setattr(resolve.s3check, "check_s3", slow_check)
    specs = tuple(_spec(target=f"t{i}") for i in range(4))
    secrets = {i: {"access_key": "a", "secret_key": "b"} for i in range(4)}
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await resolve_mounts(specs, secrets, storage, "alice")
    assert loop.time() - t0 < 1.0


def test_a_form_submission_is_reused_for_exactly_its_options_until_it_expires(monkeypatch):
    from gridspawner import preparation

    prepared = preparation.Prepared(request=None, mounts=("resolved",))
    sub = preparation.Submission({"gpus": 1, "mounts": [{"bucket": "b"}]}, prepared)
    assert sub.matches({"gpus": 1, "mounts": [{"bucket": "b"}]})
    assert not sub.matches({"gpus": 1, "mounts": [{"bucket": "c"}]})
    assert not sub.matches({"gpus": 1})
    now = preparation.time.monotonic()
    monkeypatch.setattr(preparation.time, "monotonic", lambda: now + preparation.SUBMISSION_TTL + 1)
    assert not sub.matches({"gpus": 1, "mounts": [{"bucket": "b"}]})


def test_orm_filter_strips_secrets_and_is_installed_once():
    from jupyterhub import orm
    from sqlalchemy import event

    from gridspawner.mounts import dbfilter

    dbfilter.install_user_options_filter()
    dbfilter.install_user_options_filter()
    assert event.contains(orm.Spawner.user_options, "set", dbfilter._strip_stored_options)
    row = orm.Spawner(name="")
    row.user_options = {"gpus": 1, "mounts": [dict(S3ROW), {"type": "ssh", "password": "pw"}]}
    stored = json.dumps(row.user_options)
    assert "sk/secret" not in stored and "AKID" not in stored and "pw" not in stored
    assert row.user_options["mounts"][0]["bucket"] == "lab-data" and row.user_options["gpus"] == 1
    row.user_options = None
    assert row.user_options is None


def test_mount_secret_names_map_back_to_their_pod():
    assert objects.pod_of_secret("jupyter-alice-1234-secret") == "jupyter-alice-1234"
    assert objects.pod_of_secret("jupyter-alice-1234-secret-m0") == "jupyter-alice-1234"
    assert objects.pod_of_secret("jupyter-alice-1234-secret-m12") == "jupyter-alice-1234"
    assert objects.pod_of_secret("something-else") is None
    pod = {"metadata": {"annotations": {objects.MOUNT_SECRETS_ANNOTATION: "a-secret-m0=u1,a-secret-m1="}}}
    assert objects.mount_secrets_of(pod) == [("a-secret-m0", "u1"), ("a-secret-m1", None)]
    assert objects.mount_secrets_of({"metadata": {}}) == []
