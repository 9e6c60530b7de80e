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
