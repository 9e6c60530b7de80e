"""Which hub this is (`gridspawner.hub_identity`), and which pods of a namespace are a hub's
orphans (`gridspawner.backends.kubernetes.pod_reconcile.orphan_pods`)."""

from __future__ import annotations

import time

import pytest

from gridspawner.backends.kubernetes.names import HUB_LABEL, label_value
from gridspawner.backends.kubernetes.pod_reconcile import orphan_pods
from gridspawner.catalog import CatalogError
from gridspawner.hub_identity import HUB_ID_FILE, check_hub_id, hub_id_from_db_url, session_slug


def test_a_sqlite_hub_keeps_its_id_next_to_its_database(tmp_path):
    db = tmp_path / "data" / "jupyterhub.sqlite"
    db.parent.mkdir()
    first = hub_id_from_db_url(f"sqlite:///{db}")
    assert first.startswith("hub-") and (db.parent / HUB_ID_FILE).read_text().strip() == first
    assert hub_id_from_db_url(f"sqlite:///{db}") == first  # the next start: the same
    # a relative path is relative to JupyterHub's working directory
    assert hub_id_from_db_url("sqlite:///data/jupyterhub.sqlite", cwd=tmp_path) == first
    # another database in another directory is another hub
    other = tmp_path / "other"
    other.mkdir()
    assert hub_id_from_db_url(f"sqlite:///{other}/jupyterhub.sqlite") != first
    # an in-memory database: the file lives in the working directory
    assert hub_id_from_db_url("sqlite://", cwd=other) == (other / HUB_ID_FILE).read_text().strip()


def test_other_databases_are_named_by_their_url_without_the_password():
    a = hub_id_from_db_url("postgresql://hub:s3cret@db.example:5432/jupyterhub")
    assert a == hub_id_from_db_url("postgresql://hub:rotated@db.example:5432/jupyterhub")
    assert a != hub_id_from_db_url("postgresql://hub:s3cret@db.example:5432/otherhub")
    assert "s3cret" not in a and a.startswith("db-")


def test_a_configured_id_is_checked_and_slugs_differ_between_hubs():
    assert check_hub_id("jhub/gpu-hub") == "jhub/gpu-hub"
    for bad in ("", "has space", "-leading", "x" * 201, "new\nline", 7):
        with pytest.raises(CatalogError) as e:
            check_hub_id(bad)
        assert e.value.key == "c.GridSpawner.hub_id"
    a, b = session_slug("hub-a", "alice", ""), session_slug("hub-b", "alice", "")
    assert a != b and a.startswith("alice-") and len(a) <= 31
    # outside a hub: the slug of earlier versions
    assert session_slug("", "alice", "gpu").startswith("alice-gpu-")


def pod(name: str, uid: str, age: float, hub: str | None = "hub-a", deleting: bool = False) -> dict:
    meta = {"name": name, "uid": uid, "namespace": "ns",
            "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - age)),
            "labels": {} if hub is None else {HUB_LABEL: label_value(hub)},
            "annotations": {"hub.jupyter.org/username": name}}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": "Running"}, "spec": {"nodeName": "gpu-1"}}


def test_orphan_pods_are_those_of_this_hub_nobody_knows_and_old_enough():
    pods = [pod("known", "u1", 600), pod("orphan", "u2", 600), pod("young", "u3", 5), pod("other", "u4", 600, "hub-b"),
            pod("legacy", "u5", 600, None), pod("launching", "u6", 600), pod("stopping", "u7", 600, deleting=True)]
    found = orphan_pods(pods, hub="hub-a", known_uids={"u1"}, launching={"launching": 1}, grace=60, now=time.time())
    assert [p["metadata"]["name"] for p, _ in found] == ["orphan", "legacy", "stopping"]
    assert "belongs to no server this hub knows" in found[0][1] and "being deleted" in found[2][1]
    assert orphan_pods(pods, hub="", known_uids=set(), launching={}, grace=0, now=time.time()) == []


def test_a_bad_hub_id_stops_the_hub_at_start_up_naming_the_key():
    from traitlets.config import Config

    from gridspawner.spawner import GridSpawner

    c = Config()
    c.GridSpawner.backends = {"here": {"kind": "local"}}
    c.GridSpawner.images = {"lab": {"local": {}}}
    c.GridSpawner.hub_id = "two words"
    with pytest.raises(CatalogError) as e:
        GridSpawner(config=c).check_config()
    assert e.value.key == "c.GridSpawner.hub_id"
