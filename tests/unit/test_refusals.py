"""The 400 a refused spawn raises: JSON field errors in a header, no banner for the form."""

from __future__ import annotations

import json

from gridspawner.refusals import FIELD_ERRORS_HEADER, MAX_FIELDS, MAX_MESSAGE, refusal


def test_rest_refusal_names_every_field_in_order_as_ascii_json():
    err = refusal({"gpus": "at most 2 GPUs allowed for you", "mounts[0].bucket": "≥ not allowed"})
    assert err.status_code == 400
    header = err.headers[FIELD_ERRORS_HEADER]
    assert header.isascii() and "\n" not in header
    assert json.loads(header) == [{"field": "gpus", "message": "at most 2 GPUs allowed for you"},
                                  {"field": "mounts[0].bucket", "message": "≥ not allowed"}]
    assert err.log_message == "Invalid server options: gpus: at most 2 GPUs allowed for you; mounts[0].bucket: ≥ not allowed"
    assert not hasattr(err, "jupyterhub_message")  # JupyterHub's API answers with the log message


def test_form_refusal_asks_jupyterhub_for_no_banner():
    err = refusal({"gpus": "too many"}, prefix="Please correct", form=True)
    assert err.jupyterhub_message == "" and err.jupyterhub_html_message == ""
    assert err.log_message == "Please correct: gpus: too many"


def test_the_header_stays_bounded():
    errors = {f"mounts[{i}].prefix": "x" * 1000 for i in range(100)}
    rows = json.loads(refusal(errors).headers[FIELD_ERRORS_HEADER])
    assert len(rows) == MAX_FIELDS and all(len(r["message"]) == MAX_MESSAGE for r in rows)
    assert len(refusal(errors).headers[FIELD_ERRORS_HEADER]) < 16_000


def _cap(free_80gb: int):
    import time

    from gridspawner.backends.base import Capacity, HostCapacity
    from gridspawner.gpu import GPU

    cards = tuple(GPU(i, f"GPU-{i}", "NVIDIA A100-SXM4-80GB", 81920) for i in range(2))
    return Capacity("lab", (HostCapacity("gpu1", cards, frozenset(g.uuid for g in cards[:free_80gb])),), updated=time.time())


def test_no_capacity_is_said_in_the_forms_words_with_the_display_name():
    from gridspawner.refusals import no_capacity_message

    text = no_capacity_message("GPU lab", _cap(1), 2, 80, 0.07, "2 GPUs with ≥ 80 GB requested, 1 free on gpu1")
    assert text == ("No capacity on GPU lab right now: no host has 2 free GPUs with ≥ 80 GB (at most 1 free now). "
                    "Choose fewer GPUs, less memory per GPU or another place to run, or try again later.")
    assert "gpu1" not in text
    # room again since (or capacity unknown): the backend's own reason
    assert "1 free on gpu1" in no_capacity_message("GPU lab", _cap(2), 2, 80, 0.07, "2 GPUs … 1 free on gpu1")
    assert "the detail" in no_capacity_message("GPU lab", None, 2, 80, 0.07, "the detail")


class _Future:
    def __init__(self, exc):
        self.exc = exc

    def done(self):
        return True

    def cancelled(self):
        return False

    def exception(self):
        return self.exc


class _Spawner:
    def __init__(self, exc):
        self._spawn_future = _Future(exc)


SHOWN = '<div class="gs-fit-row" data-gs-note role="status">Does not fit right now: no host has 2 free GPUs</div>'
HIDDEN = '<div class="gs-fit-row" data-gs-note role="status" hidden>Does not fit right now: </div>'


def test_the_banner_goes_when_the_form_says_it_next_to_the_fields():
    from gridspawner.backends.base import NoCapacity
    from gridspawner.refusals import drop_repeated_banner, launch_failure

    exc = launch_failure(NoCapacity("x"))
    exc.jupyterhub_message = "No capacity on GPU lab right now: …"
    assert drop_repeated_banner(_Spawner(exc), HIDDEN) == HIDDEN  # room again: the banner stays
    assert exc.jupyterhub_message.startswith("No capacity on")
    out = drop_repeated_banner(_Spawner(exc), SHOWN)
    assert exc.jupyterhub_message == "" and out.startswith(SHOWN) and "spawn-error-msg" in out
    other = launch_failure(__import__("gridspawner.backends.base", fromlist=["Unreachable"]).Unreachable("down"))
    assert drop_repeated_banner(_Spawner(other), SHOWN) == SHOWN and not hasattr(other, "jupyterhub_message")
