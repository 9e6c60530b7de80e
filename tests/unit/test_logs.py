"""follow_hub_log: gridspawner's loggers write through the hub's handlers, and only there."""

from __future__ import annotations

import logging

import pytest

from gridspawner.logs import ROOT_LOGGER, follow_hub_log


@pytest.fixture
def clean_logger():
    ours = logging.getLogger(ROOT_LOGGER)
    saved = (list(ours.handlers), ours.level, ours.propagate)
    ours.handlers, ours.level, ours.propagate = [], logging.NOTSET, True
    yield ours
    ours.handlers, ours.level, ours.propagate = saved[0], saved[1], saved[2]


def test_outside_a_hub_nothing_changes(clean_logger):
    assert follow_hub_log() is False
    assert clean_logger.handlers == [] and clean_logger.propagate is True


def test_the_hubs_handlers_and_level_are_used(clean_logger):
    hub = logging.getLogger("test-hub-app")
    handler = logging.StreamHandler()
    hub.addHandler(handler)
    hub.setLevel(logging.INFO)
    try:
        assert follow_hub_log(hub) is True
        assert clean_logger.handlers == [handler]
        assert logging.getLogger("gridspawner.kubernetes.cluster").isEnabledFor(logging.INFO)
        assert clean_logger.propagate is False  # written once, by the hub's handler
        assert follow_hub_log(hub) is True and clean_logger.handlers == [handler]  # idempotent
    finally:
        hub.removeHandler(handler)


def test_an_admins_own_logging_setup_is_left_alone(clean_logger):
    own = logging.NullHandler()
    clean_logger.addHandler(own)
    hub = logging.getLogger("test-hub-app-2")
    hub.addHandler(logging.StreamHandler())
    assert follow_hub_log(hub) is False
    assert clean_logger.handlers == [own] and clean_logger.propagate is True
