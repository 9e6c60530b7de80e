"""The hub's nudge to the service (`gridspawner.runs.nudge`): where it goes, that it does
nothing unless configured, and that a service that does not answer costs the caller nothing
(fire-and-forget, bounded by NUDGE_TIMEOUT)."""

from __future__ import annotations

import asyncio
import socket
import time

from gridspawner.runs import nudge as nudge_mod


def test_the_nudge_url_is_the_service_url_plus_its_prefix():
    assert nudge_mod.nudge_url("http://127.0.0.1:10101", "/", "gridspawner") == \
        "http://127.0.0.1:10101/services/gridspawner/api/runs/nudge"
    assert nudge_mod.nudge_url("http://svc:1/", "/hub-base/", "gs") == "http://svc:1/hub-base/services/gs/api/runs/nudge"


async def test_a_nudge_returns_at_once_and_gives_up_within_its_timeout():
    # a listener that accepts and never answers: the nudge's request timeout ends it
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        try:
            nudge_mod.configure(None)
            nudge_mod.nudge("local")
            assert not nudge_mod.pending()  # not configured: nothing sent
            nudge_mod.configure(f"http://127.0.0.1:{port}/services/gs/api/runs/nudge", "t")
            t0 = time.monotonic()
            nudge_mod.nudge("local")
            assert time.monotonic() - t0 < 0.1  # the caller (a stop) does not wait
            tasks = nudge_mod.pending()
            assert len(tasks) == 1
            await asyncio.wait_for(asyncio.gather(*tasks), nudge_mod.NUDGE_TIMEOUT + 5)
            assert time.monotonic() - t0 < nudge_mod.NUDGE_TIMEOUT + 5
        finally:
            nudge_mod.configure(None)
