"""`reconcile.known_launch_states` reads every spawner state from a real JupyterHub database
(SQLite, JupyterHub's own ORM) without SQLAlchemy warnings."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

from jupyterhub import orm
from sqlalchemy.exc import SAWarning

from gridspawner.reconcile import known_launch_states


def hub_db():
    db = orm.new_session_factory("sqlite://")()
    alice = orm.User(name="alice")
    db.add(alice)
    db.commit()
    launch = {"host": "h1", "pid": 7, "session_dir": "/s/alice-1"}
    db.add(orm.Spawner(user=alice, name="", state={"backend": "gpu", "launch": launch}))
    db.add(orm.Spawner(user=alice, name="other", state={"unrelated": 1}))
    db.add(orm.Spawner(user=alice, name="never", state=None))
    db.commit()
    return db, launch


def test_known_launch_states_reads_the_hub_database_without_a_cache_key_warning():
    db, launch = hub_db()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)  # JupyterHub's JSONDict sets no cache_ok
        found = known_launch_states(SimpleNamespace(db=db, users={}))
    assert dict(found) == {"gpu": [launch]}
