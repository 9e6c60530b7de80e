"""c.GridSpawner.storage parsing: frozen values, errors naming the exact key."""

from __future__ import annotations

import dataclasses

import pytest

from gridspawner.catalog import CatalogError
from gridspawner.mounts.config import parse_storage

GOOD = {
    "tool": "rclone",
    "max_mounts": 3,
    "key_dir": "/srv/keys",
    "s3": {
        "campus": {
            "url": "https://s3.example.edu",
            "buckets": ["lab-*", "re:proj-[0-9]{4}"],
            "user_prefix": "{username}/",
            "credentials": ["sts", "keys"],
            "sts": {"role_arn": "arn:aws:iam::123456789012:role/jupyter", "access_key_env": "K", "secret_key_env": "S"},
        }
    },
    "ssh": {"nas": {"address": "nas.example.edu", "known_hosts": "/etc/kh", "paths": ["/export/{username}", "/export/{username}/*"], "auth": ["key", "password"]}},
    "access": {"*": {"s3": ["campus"]}, "physics": {"ssh": ["nas"], "max_mounts": 6}},
    "notebook_storage": {"endpoint": "campus", "bucket": "notebooks"},
    "kubernetes": {"copy_image": "docker.io/rclone/rclone:1.68", "csi": {"s3": {"driver": "csi-rclone", "volumeAttributes": {"remotePath": "{bucket}/{prefix}"}, "secret_keys": {"s3-access-key-id": "access_key"}}}},
}


def test_good_config():
    c = parse_storage(GOOD)
    assert c.enabled and c.tool == "rclone" and c.max_mounts == 3
    ep = c.s3["campus"]
    assert ep.allows_bucket("lab-x", "alice") and ep.allows_bucket("proj-2024", "alice")
    assert not ep.allows_bucket("proj-20245", "alice") and not ep.allows_bucket("other", "alice")
    assert ep.prefix_for("alice") == "alice/"
    nas = c.ssh["nas"]
    assert nas.allows_path("/export/alice", "alice") and nas.allows_path("/export/alice/x/y", "alice")
    assert not nas.allows_path("/export/bob", "alice") and not nas.allows_path("/export/alicex", "alice")
    assert c.s3_for([]) == ["campus"] and c.ssh_for([]) == []
    assert c.ssh_for(["physics"]) == ["nas"] and c.max_mounts_for(["physics"]) == 6 and c.max_mounts_for([]) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tool = "s3fs"
    with pytest.raises(TypeError):
        c.s3["x"] = None


def test_glob_username_is_literal():
    c = parse_storage({"key_dir": "/k", "ssh": {"n": {"address": "h", "known_hosts": "/kh", "paths": ["/e/{username}/*"]}}})
    assert not c.ssh["n"].allows_path("/e/bob/x", "*")  # a user named '*' matches only '*'
    assert c.ssh["n"].allows_path("/e/*/x", "*")


def test_disabled():
    assert not parse_storage(None).enabled and not parse_storage({}).enabled


def test_no_access_rule_for_user_means_nothing():
    c = parse_storage({**GOOD, "access": {"physics": {"s3": "*"}}})
    assert c.s3_for(["chem"]) == [] and c.max_mounts_for(["chem"]) == 0
    assert c.s3_for(["physics"]) == ["campus"]


@pytest.mark.parametrize(
    "patch,key",
    [
        ({"tool": "fuse"}, "c.GridSpawner.storage['tool']"),
        ({"bogus": 1}, "c.GridSpawner.storage['bogus']"),
        ({"max_mounts": -1}, "c.GridSpawner.storage['max_mounts']"),
        ({"s3": {"campus": {"buckets": ["x"]}}}, "c.GridSpawner.storage['s3']['campus'].url"),
        ({"s3": {"campus": {"url": "ftp://x", "buckets": ["x"]}}}, "c.GridSpawner.storage['s3']['campus'].url"),
        ({"s3": {"campus": {"url": "https://x"}}}, "c.GridSpawner.storage['s3']['campus'].buckets"),
        ({"s3": {"campus": {"url": "https://x", "buckets": ["re:("]}}}, "c.GridSpawner.storage['s3']['campus'].buckets[0]"),
        ({"s3": {"campus": {"url": "https://x", "buckets": ["x"], "credentials": ["sts"]}}}, "c.GridSpawner.storage['s3']['campus'].sts"),
        ({"s3": {"campus": {"url": "https://x", "buckets": ["x"], "sts": {"access_key": "AKIA..."}}}}, "c.GridSpawner.storage['s3']['campus'].sts['access_key']"),
        ({"s3": {"campus": {"url": "https://x", "buckets": ["x"], "sts": {"role_arn": "arn:aws:iam::123456789012:role/r", "access_key_env": "AKIA/secret+x"}}}}, "c.GridSpawner.storage['s3']['campus'].sts.access_key_env"),
        ({"s3": {"campus": {"url": "https://x", "buckets": ["x"], "user_prefix": "{user}/"}}}, "c.GridSpawner.storage['s3']['campus'].user_prefix"),
        ({"s3": {"bad name": {"url": "https://x", "buckets": ["x"]}}}, "c.GridSpawner.storage['s3']['bad name']"),
        ({"ssh": {"nas": {"address": "nas", "paths": ["/x"]}}}, "c.GridSpawner.storage['ssh']['nas'].known_hosts"),
        ({"ssh": {"nas": {"address": "a b", "known_hosts": "/k", "paths": ["/x"]}}}, "c.GridSpawner.storage['ssh']['nas'].address"),
        ({"ssh": {"nas": {"address": "n", "known_hosts": "/k", "paths": ["/x"], "auth": ["otp"]}}}, "c.GridSpawner.storage['ssh']['nas'].auth"),
        ({"access": {"g": {"s3": ["nope"]}}}, "c.GridSpawner.storage['access']['g'].s3"),
        ({"notebook_storage": {"endpoint": "nope", "bucket": "b"}}, "c.GridSpawner.storage['notebook_storage'].endpoint"),
        ({"kubernetes": {"csi": {"s3": {"driver": "csi-rclone", "volumeAttributes": {"a": "{secret}"}}}}}, "c.GridSpawner.storage['kubernetes'].csi['s3']['volumeAttributes']['a']"),
        ({"kubernetes": {"copy_image": "bad image"}}, "c.GridSpawner.storage['kubernetes'].copy_image"),
    ],
)
def test_errors_name_the_key(patch, key):
    raw = {**GOOD, **patch}
    with pytest.raises(CatalogError) as e:
        parse_storage(raw)
    assert e.value.key == key, e.value


def test_sshfs_tool_with_s3_endpoints_is_accepted_s3_mounts_use_rclone():
    """docs/admin/data-mounts.md: with tool "sshfs", SSH mounts use sshfs and S3 mounts rclone."""
    c = parse_storage({**GOOD, "tool": "sshfs"})
    assert c.tool == "sshfs" and "campus" in c.s3


def test_sts_renew_before_is_bounded_by_the_duration():
    sts = {"role_arn": "arn:aws:iam::123456789012:role/r", "duration": 3600}
    ep = {"url": "https://x", "buckets": ["x"], "credentials": ["sts"]}
    c = parse_storage({"s3": {"e": {**ep, "sts": sts}}})
    assert c.s3["e"].sts.renew_before is None and c.s3["e"].sts.renew_margin(3600) == 1200
    c = parse_storage({"s3": {"e": {**ep, "sts": {**sts, "renew_before": 600}}}})
    assert c.s3["e"].sts.renew_margin(3600) == 600 and c.s3["e"].sts.renew_margin(300) == 300
    with pytest.raises(CatalogError) as e:
        parse_storage({"s3": {"e": {**ep, "sts": {**sts, "renew_before": 3600}}}})
    assert e.value.key == "c.GridSpawner.storage['s3']['e'].sts.renew_before"


def test_s3fs_with_sts_refused_and_key_dir_needed():
    with pytest.raises(CatalogError, match="s3fs"):
        parse_storage({**GOOD, "tool": "s3fs"})
    raw = dict(GOOD)
    del raw["key_dir"]
    with pytest.raises(CatalogError) as e:
        parse_storage(raw)
    assert e.value.key == "c.GridSpawner.storage['key_dir']"
