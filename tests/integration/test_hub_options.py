"""user_options through JupyterHub's own hook, and the form's feedback per server — with a
REAL hub and proxy.

- JupyterHub 5.3+ runs ``Spawner.apply_user_options`` in every spawn and warns "Received
  unhandled user_options" when a spawner leaves it unset: GridSpawner handles them there,
  once per spawn (the form path reuses what the submission validated).
- A refused form submission is shown again on *that* server's form only.
"""

from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.hub, pytest.mark.timeout(240)]

# a spy in the hub process: one log line each time a request is built (build_request picks
# the profile exactly once per call), the real function still does the work
COUNT_VALIDATIONS = '''
import logging as _logging
import gridspawner.request as _gs_request

_real_pick_profile = _gs_request._pick_profile

def _counted_pick_profile(*args, **kwargs):
    _logging.getLogger("JupyterHub").info("gridtest: user options validated")
    return _real_pick_profile(*args, **kwargs)

_gs_request._pick_profile = _counted_pick_profile
'''
VALIDATED = "gridtest: user options validated"
FORM = {"backend": "local", "image": "lab", "gpus": "1", "gpu_memory": "0"}


@pytest.fixture(scope="module")
def counting_hub(tmp_path_factory):
    from hubtools import Hub

    h = Hub(workdir=tmp_path_factory.mktemp("hub"), extra_config=COUNT_VALIDATIONS)
    try:
        h.start()
        yield h
    finally:
        h.close()
        assert not h.leftover_pids()


@pytest.mark.jh5
def test_options_are_validated_once_per_spawn_and_never_unhandled(counting_hub, username):
    hub = counting_hub
    hub.create_user(username)
    # the form: validated when submitted, and that result is what starts the server
    mark = hub.log_mark()
    form = hub.form_session(username)
    try:
        r = form.post_form(FORM)
        assert r.status_code == 302, r.text[:2000]
        hub.wait_ready(username)
    finally:
        form.close()
    log = hub.log_since(mark)
    assert log.count(VALIDATED) == 1, log[-3000:]
    assert "unhandled user_options" not in log, log[-3000:]
    hub.stop_server(username)

    # REST: validated once, inside the spawn
    mark = hub.log_mark()
    hub.spawn_ready(username, {"backend": "local", "image": "lab", "gpus": 1}, server_name="rest")
    log = hub.log_since(mark)
    assert log.count(VALIDATED) == 1, log[-3000:]
    assert "unhandled user_options" not in log, log[-3000:]
    hub.stop_server(username, "rest")

    # a refused REST request: a 400 naming the field, validated once, no traceback logged
    mark = hub.log_mark()
    r = hub.spawn(username, {"backend": "local", "image": "lab", "gpus": 9}, server_name="bad")
    assert r.status_code == 400 and "gpus" in r.text, r.text
    log = hub.log_since(mark)
    assert log.count(VALIDATED) == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def _error_shown(page: str, field: str) -> bool:
    return f'id="gs-{field}-error"' in page


@pytest.mark.jh5
def test_form_feedback_belongs_to_the_server_it_was_submitted_for(hub, username):
    """A refused submission for named server "a" comes back on a's form, and only there:
    the form of server "b" and the default server's form stay clean."""
    hub.create_user(username)
    form = hub.form_session(username)
    try:
        r = form.post_form({**FORM, "gpus": "99"}, server_name="a")
        assert r.status_code == 400
        assert _error_shown(r.text, "gpus"), r.text[:3000]
        for other in ("b", ""):
            page = form.get_form(server_name=other)
            assert page.status_code == 200
            assert not _error_shown(page.text, "gpus"), f"server {other!r} shows a's error"
        # shown once: a's form rendered again later is clean too
        page = form.get_form(server_name="a")
        assert not _error_shown(page.text, "gpus")
        # the default server's own refused submission comes back on the default form
        time.sleep(0.1)
        r = form.post_form({**FORM, "image": "no-such-image"})
        assert r.status_code == 400 and _error_shown(r.text, "image"), r.text[:3000]
    finally:
        form.close()
