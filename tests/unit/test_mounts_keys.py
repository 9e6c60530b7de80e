"""The hub-managed SSH keys for storage: private files, repaired when a volume opens them up."""

import os
import stat

import pytest

from gridspawner.mounts.keys import KeyStore


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_key_pair_is_private_and_stable(tmp_path):
    store = KeyStore(tmp_path / "keys")
    public = store.ensure("alice")
    assert public.startswith("ssh-ed25519 ")
    assert store.ensure("alice") == public  # made once, then reused
    priv, pub = store._paths("alice")
    assert _mode(priv) == 0o600
    assert _mode(priv.parent) == 0o700
    assert "PRIVATE KEY" in store.private_key_text("alice")


def test_group_readable_private_key_is_closed_again(tmp_path):
    # Kubernetes' fsGroup handling can make volume files group-readable on a pod restart.
    store = KeyStore(tmp_path / "keys")
    store.ensure("bob")
    priv, _ = store._paths("bob")
    os.chmod(priv, 0o640)
    assert "PRIVATE KEY" in store.private_key_text("bob")
    assert _mode(priv) == 0o600


def test_private_key_that_is_a_symlink_is_refused(tmp_path):
    store = KeyStore(tmp_path / "keys")
    store.ensure("carol")
    priv, _ = store._paths("carol")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(priv.read_text())
    priv.unlink()
    priv.symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="regular file"):
        store.private_key_text("carol")
