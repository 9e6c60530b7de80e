"""user_options["mounts"] → MountSpec: strict syntax, per-group policy, secrets split off."""

from __future__ import annotations

import json

import pytest

from gridspawner.mounts.config import parse_storage
from gridspawner.mounts.specs import MountSpec, parse_mounts, pin_typed_choices, strip_secrets, typed_secret_fields
from gridspawner.request import OptionsError

STORAGE = parse_storage({
    "max_mounts": 3,
    "key_dir": "/srv/keys",
    "s3": {
        "campus": {"url": "https://s3.example.edu", "buckets": ["lab-*"], "user_prefix": "{username}/", "credentials": ["keys", "sts"],
                   "sts": {"role_arn": "arn:aws:iam::123456789012:role/j"}},
        "public": {"url": "https://s3.other.org", "buckets": ["open-*"]},
    },
    "ssh": {"nas": {"address": "nas", "known_hosts": "/kh", "paths": ["/export/{username}", "/export/{username}/*"], "auth": ["key", "password"]}},
    "access": {"*": {"s3": ["campus"]}, "physics": {"s3": "*", "ssh": ["nas"], "max_mounts": 5}},
})


def parse(rows, groups=("physics",), user="alice"):
    return parse_mounts(rows, STORAGE, groups, user)


def errors(rows, **kw):
    with pytest.raises(OptionsError) as e:
        parse(rows, **kw)
    return e.value.errors


S3 = {"type": "s3", "endpoint": "campus", "bucket": "lab-data", "prefix": "alice/run1", "target": "run1",
      "mode": "mount", "read_only": True, "credentials": "keys", "access_key": "AKIAEXAMPLE", "secret_key": "abc/DEF+ghi="}
SSH = {"type": "ssh", "host": "nas", "path": "/export/alice/proj", "target": "proj", "mode": "copy", "auth": "password", "password": "hunter2 two words"}


def test_valid_rows_and_secret_split():
    specs, secrets = parse([S3, SSH])
    assert specs[0] == MountSpec(type="s3", target="run1", mode="mount", read_only=True, endpoint="campus", bucket="lab-data",
                                 prefix="alice/run1/", credentials="keys")
    assert specs[1].host == "nas" and specs[1].path == "/export/alice/proj" and specs[1].user == "alice" and specs[1].auth == "password"
    assert secrets == {0: {"access_key": "AKIAEXAMPLE", "secret_key": "abc/DEF+ghi="}, 1: {"password": "hunter2 two words"}}
    dumped = json.dumps([s.to_dict() for s in specs])
    for secret in ("AKIAEXAMPLE", "abc/DEF+ghi=", "hunter2"):
        assert secret not in dumped
    assert tuple(MountSpec.from_dict(json.loads(json.dumps(s.to_dict()))) for s in specs) == specs


def test_strip_secrets():
    opts = {"backend": "x", "mounts": [S3, SSH, "junk"]}
    clean, secrets = strip_secrets(opts)
    assert "hunter2" not in json.dumps(clean) and "abc/DEF" not in json.dumps(clean)
    assert secrets[1] == {"password": "hunter2 two words"} and clean["mounts"][2] == "junk"
    assert opts["mounts"][0]["secret_key"], "the input is not modified"
    # parse works on the stripped rows plus the secrets given back
    rows = [dict(r, **secrets.get(i, {})) for i, r in enumerate(clean["mounts"][:2])]
    assert parse(rows)[1] == secrets


def test_defaults_single_choice():
    specs, _ = parse([{"type": "s3", "bucket": "lab-x", "prefix": "alice/", "target": "t", "credentials": "sts"}], groups=())
    assert specs[0].endpoint == "campus" and specs[0].mode == "mount" and specs[0].read_only is False


def test_policy():
    e = errors([{"type": "ssh", "path": "/export/alice", "target": "t", "auth": "key"}], groups=())
    assert e == {"mounts[0].host": "no SSH storage host is available to you"}
    e = errors([dict(S3, endpoint="public")], groups=("chem",))
    assert "mounts[0].endpoint" in e
    e = errors([dict(S3, bucket="other-data")])
    assert e["mounts[0].bucket"].startswith("bucket 'other-data' is not allowed")
    e = errors([dict(S3, prefix="bob/")])
    assert e["mounts[0].prefix"] == "must start with 'alice/' on campus"
    e = errors([dict(SSH, path="/export/bob")])
    assert e["mounts[0].path"].startswith("path '/export/bob' is not allowed")
    e = errors([dict(SSH, user="root")])
    assert e["mounts[0].user"] == "is fixed to 'alice' on nas"
    assert errors([dict(S3, target=f"t{i}") for i in range(4)], groups=())["mounts"] == "at most 3 mounts allowed for you (got 4)"
    assert len(parse([dict(S3, target=f"t{i}") for i in range(5)])[0]) == 5


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"bucket": "Lab-Data"}, "bucket"),
        ({"bucket": "lab..x"}, "bucket"),
        ({"bucket": "lab-x\n"}, "bucket"),
        ({"bucket": "lab-$(id)"}, "bucket"),
        ({"bucket": 5}, "bucket"),
        ({"prefix": "alice/../bob/"}, "prefix"),
        ({"prefix": "alice/.."}, "prefix"),
        ({"prefix": "/alice/"}, "prefix"),
        ({"prefix": "alice//x"}, "prefix"),
        ({"prefix": "alice/a b"}, "prefix"),
        ({"prefix": "alice/\x00"}, "prefix"),
        ({"prefix": "alice/`id`"}, "prefix"),
        ({"prefix": "alice/" + "x" * 600}, "prefix"),
        ({"target": "../x"}, "target"),
        ({"target": ".."}, "target"),
        ({"target": "a/b"}, "target"),
        ({"target": ".hidden"}, "target"),
        ({"target": "x" * 65}, "target"),
        ({"target": "t;id"}, "target"),
        ({"mode": "sync"}, "mode"),
        ({"read_only": "yes"}, "read_only"),
        ({"type": "nfs"}, "type"),
        ({"credentials": "magic"}, "credentials"),
        ({"access_key": "AK:X"}, "access_key"),
        ({"secret_key": "has space"}, "secret_key"),
        ({"secret_key": None}, "secret_key"),
        ({"extra": 1}, "extra"),
        ({"host": "nas"}, "type"),
    ],
)
def test_s3_field_errors(patch, field):
    e = errors([dict(S3, **patch)])
    assert f"mounts[0].{field}" in e, e


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"path": "relative"}, "path"),
        ({"path": "/export/alice/../bob"}, "path"),
        ({"path": "/export/alice/x\ny"}, "path"),
        ({"path": "/export/alice/$(id)"}, "path"),
        ({"path": "/export/alice/" + "x/" * 600}, "path"),
        ({"password": ""}, "password"),
        ({"password": "a\nb"}, "password"),
        ({"password": "x" * 2000}, "password"),
        ({"auth": "otp"}, "auth"),
        ({"auth": "key"}, "password"),  # a password with key auth
    ],
)
def test_ssh_field_errors(patch, field):
    e = errors([dict(SSH, **patch)])
    assert f"mounts[1].{field}" in errors([S3, dict(SSH, **patch)]) and f"mounts[0].{field}" in e


def test_duplicate_targets_and_shape():
    e = errors([S3, dict(SSH, target="RUN1")])
    assert e == {"mounts[1].target": "target 'RUN1' is already used by mount 1"}
    assert errors("x") == {"mounts": "must be a list of mount objects"}
    assert "mounts[0]" in errors([5])
    assert parse(None) == ((), {}) and parse([]) == ((), {})
    with pytest.raises(OptionsError, match="not enabled"):
        parse_mounts([S3], parse_storage({}), [], "alice")


def test_error_messages_never_echo_secrets():
    bad = [dict(S3, secret_key="s3cr3t with space", target="x/y"), dict(SSH, password="pa\nss", path="rel")]
    e = errors(bad)
    text = json.dumps(e)
    assert "s3cr3t" not in text and "pa\\nss" not in text and "pa\nss" not in text


def test_stored_rows_keep_the_typed_choice_and_name_the_secrets_they_need():
    """A password with ``auth`` left out chose ``password``: the stored row (no secret) says so,
    so a start after a restart knows a typed secret is missing instead of using the hub's key."""
    implicit = {k: v for k, v in SSH.items() if k != "auth"}
    sts = {**{k: v for k, v in S3.items() if k not in ("access_key", "secret_key")}, "credentials": "sts", "target": "t3"}
    rows = [S3, implicit, sts]
    specs, _ = parse(rows)
    clean = pin_typed_choices(strip_secrets({"mounts": rows})[0], specs)
    assert clean["mounts"][1]["auth"] == "password" and "password" not in clean["mounts"][1]
    assert typed_secret_fields(clean) == ["mounts[0].secret_key", "mounts[1].password"]
    assert typed_secret_fields(strip_secrets({"mounts": rows})[0]) == ["mounts[0].secret_key"]  # (without the pin)
    assert typed_secret_fields({"gpus": 1}) == [] and pin_typed_choices("junk", specs) == "junk"
