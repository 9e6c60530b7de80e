"""The S3 run store's settings (`gridspawner.runs.s3files`): what a valid setting becomes,
each bad one a CatalogError naming its key, object keys checked, and what of the hub's
environment the service gets (the credentials named, nothing else of the hub's)."""

from __future__ import annotations

import pytest

from gridspawner.runs.files import RunFiles
from gridspawner.runs.s3files import S3RunFiles, open_store, s3_store_config, service_environment
from gridspawner.vocabulary import CatalogError

ENV = {"K": "key-id", "S": "secret", "HOME": "/root", "AWS_REGION": "eu-west-1", "JUPYTERHUB_API_TOKEN": "t"}


def test_a_url_becomes_bucket_and_prefix_and_keys_are_prefix_run_name():
    cfg = s3_store_config({"runs_store_url": "s3://hub-runs/a/b/", "runs_store_access_key_env": "K",
                           "runs_store_secret_key_env": "S"}, ENV)
    assert (cfg.bucket, cfg.prefix, cfg.location) == ("hub-runs", "a/b", "s3://hub-runs/a/b")
    store = S3RunFiles(cfg)
    try:
        assert store.key("0123456789abcdef", "output.ipynb") == "a/b/0123456789abcdef/output.ipynb"
        assert store.key("0123456789abcdef") == "a/b/0123456789abcdef/"
        for bad in ("../0123456789abcdef", "0123456789ABCDEF", ""):
            with pytest.raises(ValueError):
                store.key(bad, "log")
        with pytest.raises(ValueError):
            store.key("0123456789abcdef", "../../other")
    finally:
        store.close()
    assert s3_store_config({"runs_store_url": "s3://hub-runs"}, {}).prefix == ""
    assert s3_store_config({"runs_store_url": ""}, {}) is None


@pytest.mark.parametrize("settings, key", [
    ({"runs_store_url": "s3:/x"}, "runs_store_url"),
    ({"runs_store_url": "s3://UPPER"}, "runs_store_url"),
    ({"runs_store_url": "s3://b?x=1"}, "runs_store_url"),
    ({"runs_store_url": "s3://bucket/a/../b"}, "runs_store_url"),
    ({"runs_store_endpoint_url": "ftp://x"}, "runs_store_endpoint_url"),
    ({"runs_store_access_key_env": "K"}, "runs_store_secret_key_env"),
    ({"runs_store_access_key_env": "NOT SET", "runs_store_secret_key_env": "S"}, "runs_store_access_key_env"),
    ({"runs_store_access_key_env": "MISSING", "runs_store_secret_key_env": "S"}, "runs_store_access_key_env"),
    ({"runs_store_timeout": -1}, "runs_store_timeout"),
    ({"runs_store_attempts": 0}, "runs_store_attempts"),
])
def test_each_bad_setting_names_its_key(settings, key):
    with pytest.raises(CatalogError) as e:
        s3_store_config({"runs_store_url": "s3://bucket/p", **settings}, ENV)
    assert e.value.key == f"c.GridSpawner.{key}"


def test_the_service_gets_the_named_credentials_and_the_default_chain_only():
    settings = {"runs_store_url": "s3://bucket/p", "runs_store_access_key_env": "K", "runs_store_secret_key_env": "S"}
    assert service_environment(settings, ENV) == {"K": "key-id", "S": "secret", "AWS_REGION": "eu-west-1"}
    assert service_environment({"runs_store_url": ""}, ENV) == {}


def test_the_directory_store_is_the_default(tmp_path):
    assert isinstance(open_store({"runs_dir": str(tmp_path)}, "sqlite://"), RunFiles)
