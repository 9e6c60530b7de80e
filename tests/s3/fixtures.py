"""pytest fixtures around `S3Server`: import them into a test module with
``from s3.fixtures import s3_server, s3  # noqa: F401``."""

from __future__ import annotations

import pytest

from . import S3Server


@pytest.fixture(scope="session")
def s3_server():
    pytest.importorskip("moto", reason="moto[s3,sts] is needed: pip install 'moto[s3,sts,iam]' flask flask-cors")
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server):
    """The shared server, emptied (and auth relaxed) before each test."""
    s3_server.reset()
    yield s3_server
    s3_server.relax_auth()
