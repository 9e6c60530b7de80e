"""What the hub's pages show about a running server: the pure builder from saved state."""

from __future__ import annotations

import pytest

from gridspawner.catalog import build_catalog
from gridspawner.gpu import GPU
from gridspawner.server_facts import countdown_text, server_facts

NOW = 1_767_225_600.0
A100 = GPU(0, "GPU-a", "NVIDIA A100-SXM4-80GB", 81920)
A10 = GPU(2, "GPU-c", "NVIDIA A10", 23028)


@pytest.fixture
def catalog():
    return build_catalog(
        backends={"lab": {"kind": "local", "display_name": "Lab machine"}},
        images={"torch": {"display_name": "PyTorch 2", "local": {}}},
        profiles={"short": {"display_name": "Short session", "values": {"backend": "lab", "image": "torch", "gpus": 2},
                            "max_runtime": "1h"}},
        storage={"s3": {"campus": {"display_name": "Campus S3", "url": "http://127.0.0.1:9000", "buckets": ["lab-*"],
                                   "credentials": ["keys"]}}},
    )


def state(gpus=(A100, A100, A10), **extra):
    return {"backend": "lab", "launch": {"host": "gpu-07", "gpus": [g.to_dict() for g in gpus], "pid": 4242},
            "started_at": NOW - 600, "deadline": NOW + 1500, **extra}


def test_a_profile_server_shows_where_what_and_until_when(catalog):
    mounts = [{"type": "s3", "endpoint": "campus", "bucket": "lab-imaging", "prefix": "ada/", "target": "scans",
               "mode": "copy", "read_only": True}]
    f = server_facts("ada", "", state(mounts=mounts), {"profile": "short"}, catalog, NOW, (1800, 300))
    assert (f.backend_display_name, f.place, f.environment, f.profile_display_name) == (
        "Lab machine", "gpu-07", "PyTorch 2", "Short session")
    assert f.gpus_text == "2 × NVIDIA A100-SXM4-80GB, 80 GB each; 1 × NVIDIA A10, 24 GB"
    assert f.mounts == ("Campus S3: lab-imaging/ada/ → scans (read-only, copied)",)
    assert f.started_at_iso == "2025-12-31T23:50:00Z" and f.stops_at_iso == "2026-01-01T00:25:00Z"
    assert f.time_left_text == "25 min"
    assert f.stopping_soon  # within the first warning (30 min)
    assert f.server_label == "default server"


def test_no_deadline_no_warning_and_the_users_own_image_reference(catalog):
    s = state(gpus=())
    s["deadline"] = None
    f = server_facts("ada", "big", s, {"backend": "lab", "image": "ghcr.io/ada/env:1", "gpus": 0}, catalog, NOW, (1800,))
    assert (f.gpus_text, f.time_left_text, f.stopping_soon, f.environment) == (
        "none", "no time limit", False, "ghcr.io/ada/env:1")
    assert f.profile_display_name == "" and f.server_label == "big"


def test_far_from_the_deadline_is_no_warning(catalog):
    s = state()
    s["deadline"] = NOW + 7300
    f = server_facts("ada", "", s, {"profile": "short"}, catalog, NOW, (1800, 300))
    assert not f.stopping_soon and f.time_left_text == "2 h 1 min"


def test_gpus_the_backend_did_not_name_are_counted_from_the_request(catalog):
    s = {"backend": "lab", "launch": {"node": "a100-1", "gpus": []}, "started_at": NOW}
    f = server_facts("ada", "", s, {"profile": "short"}, catalog, NOW)
    assert (f.place, f.gpus_text, f.stops_at) == ("a100-1", "2 GPUs", None)


def test_no_launch_no_facts(catalog):
    assert server_facts("ada", "", {}, {}, catalog, NOW) is None
    assert server_facts("ada", "", {"backend": "lab"}, {}, catalog, NOW) is None


def test_a_backend_removed_since_keeps_its_name(catalog):
    s = state()
    s["backend"] = "gone"
    assert server_facts("ada", "", s, {}, catalog, NOW).backend_display_name == "gone"


@pytest.mark.parametrize("seconds,text", [(0, "0 s"), (59.9, "59 s"), (60, "1 min"), (3600, "1 h"),
                                          (3660, "1 h 1 min"), (-5, "0 s")])
def test_durations(seconds, text):
    assert countdown_text(seconds) == text
