"""gridspawner-lab's server side: what ``GET …/gridspawner/stops`` answers, from the
environment gridspawner gives the server and the stops file (the hub's hook)."""

from __future__ import annotations

import json

import pytest

from gridspawner import server_env
from gridspawner_lab import stops
from gridspawner_lab.handlers import read_stops_file


def test_names_match_gridspawners_contract():
    # the lab package cannot import gridspawner (images install it alone): same spelling
    assert stops.DEADLINE == server_env.DEADLINE
    assert stops.STOP_WARNINGS == server_env.STOP_WARNINGS
    assert stops.STOPS_FILE == server_env.STOPS_FILE
    assert stops.DEFAULT_WARNINGS == server_env.DEFAULT_STOP_WARNINGS


def test_the_deadline_from_the_environment():
    body, problem = stops.payload({"GRIDSPAWNER_DEADLINE": "1767225600", "GRIDSPAWNER_STOP_WARNINGS": "600,60"}, 1767220000.5)
    assert problem is None
    assert body == {
        "now": 1767220000.5,
        "stops": [{"reason": "max_runtime", "at": 1767225600.0}],
        "warn_before": [600, 60],
        "poll_seconds": 60,
    }


@pytest.mark.parametrize("value", ["", "  ", "soon", "nan", "inf"])
def test_no_deadline(value):
    body, _ = stops.payload({"GRIDSPAWNER_DEADLINE": value}, 0)
    assert body["stops"] == []


def test_warning_times_and_poll_interval():
    assert stops.warnings_from_env({}) == (1800, 300)
    assert stops.warnings_from_env({"GRIDSPAWNER_STOP_WARNINGS": ""}) == ()
    assert stops.warnings_from_env({"GRIDSPAWNER_STOP_WARNINGS": "60, 600,60"}) == (600, 60)
    assert stops.warnings_from_env({"GRIDSPAWNER_STOP_WARNINGS": "x"}) == (1800, 300)
    assert stops.warnings_from_env({"GRIDSPAWNER_STOP_WARNINGS": "-5"}) == (1800, 300)
    assert stops.poll_seconds_from_env({}) == 60
    assert stops.poll_seconds_from_env({"GRIDSPAWNER_LAB_POLL_SECONDS": "2"}) == 2
    assert stops.poll_seconds_from_env({"GRIDSPAWNER_LAB_POLL_SECONDS": "0"}) == 1
    assert stops.poll_seconds_from_env({"GRIDSPAWNER_LAB_POLL_SECONDS": "often"}) == 60


def test_the_stops_file_moves_cancels_and_adds_stops():
    env = {"GRIDSPAWNER_DEADLINE": "1000"}
    moved = json.dumps({"stops": [{"reason": "max_runtime", "at": 2000}]})
    assert stops.payload(env, 0, moved)[0]["stops"] == [{"reason": "max_runtime", "at": 2000.0}]
    cancelled = json.dumps({"stops": [{"reason": "max_runtime", "at": None}]})
    assert stops.payload(env, 0, cancelled)[0]["stops"] == []
    more = json.dumps({"stops": [{"reason": "quota", "at": 1500, "message": "your GPU hours run out", "warn_before": [60]}]})
    assert stops.payload(env, 0, more)[0]["stops"] == [
        {"reason": "max_runtime", "at": 1000.0},
        {"reason": "quota", "at": 1500.0, "message": "your GPU hours run out", "warn_before": [60]},
    ]
    # an empty file (not written yet) changes nothing
    assert stops.payload(env, 0, "")[0]["stops"] == [{"reason": "max_runtime", "at": 1000.0}]


@pytest.mark.parametrize(
    "text, where",
    [
        ("{", "not JSON"),
        ("[]", '"stops" list'),
        ('{"stops": [1]}', "stops[0] must be an object"),
        ('{"stops": [{"at": 1}]}', "stops[0].reason"),
        ('{"stops": [{"reason": "idle", "at": "soon"}]}', "stops[0].at"),
        ('{"stops": [{"reason": "idle", "at": true}]}', "stops[0].at"),
        ('{"stops": [{"reason": "idle", "at": 1, "message": 5}]}', "stops[0].message"),
        ('{"stops": [{"reason": "idle", "at": 1, "warn_before": [0]}]}', "stops[0].warn_before"),
        ('{"stops": [{"reason": "idle", "at": 1, "warn_before": "60"}]}', "stops[0].warn_before"),
    ],
)
def test_a_bad_stops_file_is_ignored_and_said_where(text, where):
    body, problem = stops.payload({"GRIDSPAWNER_DEADLINE": "1000", "GRIDSPAWNER_STOPS_FILE": "/s/stops.json"}, 0, text)
    assert body["stops"] == [{"reason": "max_runtime", "at": 1000.0}]
    assert problem.startswith("ignoring the stops file /s/stops.json: ") and where in problem


def test_reading_the_stops_file(tmp_path):
    path = tmp_path / "stops.json"
    assert read_stops_file(None) is None
    assert read_stops_file(str(path)) is None  # not written (yet)
    path.write_text('{"stops": []}')
    assert read_stops_file(str(path)) == '{"stops": []}'
    path.write_bytes(b" " * (stops.MAX_FILE_BYTES + 1))
    with pytest.raises(stops.StopsFileError, match="larger than"):
        read_stops_file(str(path))
    with pytest.raises(stops.StopsFileError, match="cannot read it"):
        read_stops_file(str(tmp_path))  # a directory
