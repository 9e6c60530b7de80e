"""A REST spawn with a bad data mount is a 400 naming the field — however long the mount
check takes within its ``check_timeout`` — with a REAL hub and proxy and a real S3 API
(moto) made slow by a delaying proxy in front of it.

JupyterHub answers a REST spawn request after ``slow_spawn_timeout`` (default 10 s) whether
the spawn has finished or not; the mount checks run inside the spawn. Without gridspawner
raising that wait to cover the checks, a check that takes longer than 10 s answers 202 and
the failure is only seen later, in the background.
"""

from __future__ import annotations

import time

import pytest

from hubtools import Hub
from hubtools.hub import default_grid_config
from s3.fixtures import s3, s3_server  # noqa: F401
from s3.slowproxy import SlowProxy

pytestmark = [pytest.mark.hub, pytest.mark.timeout(240)]

BUCKET = "lab-data"
DELAY = 6.0  # seconds per S3 request: the check's HeadBucket + ListObjectsV2 take ~12 s


@pytest.fixture
def slow_s3_hub(s3, tmp_path_factory):  # noqa: F811
    s3.client().create_bucket(Bucket=BUCKET)
    with SlowProxy(s3.port, DELAY) as proxy:
        workdir = tmp_path_factory.mktemp("hub")
        grid = default_grid_config(workdir)
        grid["storage"] = {
            "check_timeout": 20,  # a slow campus endpoint: the admin allows 20 s per check
            "s3": {"slow": {"url": proxy.url, "buckets": ["lab-*"], "user_prefix": "{username}/",
                            "credentials": ["keys"]}},
            "access": {"*": {"s3": ["slow"]}},
        }
        with Hub(grid, workdir=workdir) as hub:
            yield hub, s3
        assert not hub.leftover_pids()


def test_a_slow_mount_check_still_answers_400_naming_the_field(slow_s3_hub, username):
    hub, s3_ = slow_s3_hub
    s3_.client().put_object(Bucket=BUCKET, Key=f"{username}/present.txt", Body=b"x")
    hub.create_user(username)
    mount = {"type": "s3", "endpoint": "slow", "bucket": BUCKET, "prefix": f"{username}/missing/",
             "target": "d", "mode": "copy", "read_only": True, "credentials": "keys",
             "access_key": "testing", "secret_key": "testing"}
    started = time.monotonic()
    r = hub.spawn(username, {"gpus": 0, "mounts": [mount]}, timeout=90)
    took = time.monotonic() - started
    assert took > 10, f"the check was meant to outlast JupyterHub's default wait ({took:.1f} s)"
    assert r.status_code == 400, (r.status_code, r.text, took)
    assert "mounts[0].prefix" in r.text and "prefix not found" in r.text, r.text
    assert hub.server(username) is None
    assert "slow_spawn_timeout = 50 s" in hub.log()
