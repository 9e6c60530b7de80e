"""The notebook-run pages' view code: run JSON → results-page rows (status words, queue
position, where, GPUs, failure), the rows' template (autoescaped, the actions each status
offers), the executed notebook's HTML view and its sandbox headers, and the CSP hash that
lets the submit page run the spawn form's inline script."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from zoneinfo import ZoneInfo

import nbformat
from bs4 import BeautifulSoup

from gridspawner.form import render_form
from gridspawner.service.context import templates
from gridspawner.service.runs_pages import FORM_JS_CSP, size_text
from gridspawner.service.runs_view import (
    HTML_VIEW_HEADERS,
    cell_source,
    failure,
    notebook_html,
    run_gpu_text,
    run_row,
    status_text,
)
from test_form import make_catalog

UTC = ZoneInfo("UTC")
PREFIX = "/services/gridspawner/"
T0 = 1_760_000_000.0


def run(**kw) -> dict:
    base = {"id": "r1", "name": "train", "user": "ada", "status": "queued", "queue_position": None,
            "submitted": T0, "started": None, "finished": None, "duration": None, "backend": "local", "host": "",
            "gpus": {"count": 1, "model": "", "vram": 16}, "gpu_hours": 0.0, "image": "scipy", "profile": "",
            "parameters": {}, "warnings": [], "error": None, "log_tail": "", "updated": T0}
    base.update(kw)
    return base


def test_status_words_and_queue_position():
    assert status_text(run(status="queued", queue_position=3)) == "queued (position 3)"
    assert status_text(run(status="queued", queue_position=None)) == "queued"
    assert status_text(run(status="timed_out")) == "timed out"
    assert status_text(run(status="succeeded")) == "succeeded"


def test_gpu_text_before_and_after_placement():
    assert run_gpu_text({"count": 2, "model": "NVIDIA A100-SXM4-80GB", "vram": 80}) == "2 × NVIDIA A100-SXM4-80GB (80 GB)"
    assert run_gpu_text({"count": 1, "model": "", "vram": 16}) == "1 GPU (≥ 16 GB)"
    assert run_gpu_text({"count": 0}) == "none"
    assert run_gpu_text({"count": 2, "model": "Tesla T4 + NVIDIA A10", "vram": 16}) == "2 GPUs (Tesla T4 + NVIDIA A10)"
    assert run_gpu_text(None) == "none"


def test_failed_run_shows_cell_error_and_log_tail():
    log = "\n".join(f"line {i}" for i in range(100))
    f = failure(run(status="failed", error={"cell_index": 2, "ename": "ValueError", "evalue": "bad lr"}, log_tail=log))
    assert f["cell"] == "cell 3" and f["ename"] == "ValueError" and f["evalue"] == "bad lr"
    assert f["log_tail"].splitlines()[-1] == "line 99" and len(f["log_tail"].splitlines()) == 40
    assert failure(run(status="succeeded")) is None
    # an error without a cell (papermill could not start): no cell, still the log
    assert failure(run(status="failed", error=None, log_tail="boom"))["cell"] == ""


def test_failures_without_a_cell_say_why_and_the_failing_cells_source():
    timed = rows_html(run(status="timed_out", started=T0, error={"cell_index": None, "ename": "", "evalue": "",
                                                                  "message": "the run took longer than its maximum run time"}))
    assert timed.find(attrs={"data-gs-failure-message": True}).text == "the run took longer than its maximum run time"
    assert not timed.find(attrs={"data-gs-failed-cell": True})
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("1 / 0  # <b>")]
    data = nbformat.writes(nb).encode()
    assert cell_source(data, 1) == "1 / 0  # <b>"
    assert cell_source(data, 5) == "" and cell_source(data, None) == "" and cell_source(b"junk", 0) == ""
    assert cell_source(nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x" * 5000)])).encode(),
                       0).endswith("…")
    shown = rows_html(run(status="failed", started=T0, error={"cell_index": 1, "ename": "ZeroDivisionError",
                                                               "evalue": "division by zero", "source": "1 / 0  # <b>"}))
    assert shown.find(attrs={"data-gs-failed-source": True}).text == "1 / 0  # <b>"


def test_run_row_times_where_duration_and_urls():
    r = run_row(run(status="running", started=T0 + 60, host="gpu1", gpus={"count": 1, "model": "Tesla T4", "vram": 16},
                    parameters={"lr": 0.1, "name": "x"}), UTC, PREFIX, now=T0 + 60 + 125)
    assert r["status_text"] == "running" and r["active"] and not r["has_output"]
    assert r["where"] == "local · gpu1" and r["gpu_text"] == "1 × Tesla T4 (16 GB)"
    assert r["duration"] == "2 min"  # running: so far
    assert r["submitted"] == "2025-10-09 08:53"
    assert r["parameters"] == 'lr = 0.1, name = "x"'
    assert r["urls"]["html"] == f"{PREFIX}runs/r1/html"
    assert r["urls"]["notebook"] == f"{PREFIX}api/runs/r1/notebook"
    done = run_row(run(status="succeeded", started=T0, finished=T0 + 3600, duration=3600.0, gpu_hours=1.0), UTC,
                   PREFIX, now=T0 + 9999)
    assert done["duration"] == "1 h 00 min" and done["gpu_hours"] == "1.00" and done["has_output"] and not done["active"]
    assert run_row(run(name=""), UTC, PREFIX, T0)["name"] == "run r1"
    # a run cancelled before papermill wrote anything: nothing to view or download
    assert not run_row(run(status="cancelled", started=T0), UTC, PREFIX, T0, output=False)["has_output"]


def rows_html(r: dict, show_user=False) -> BeautifulSoup:
    macro = templates().get_template("runs_macros.html.j2").module.run_rows
    return BeautifulSoup(str(macro(run_row(r, UTC, PREFIX, T0 + 10), show_user)), "html.parser")


def test_rows_template_escapes_and_offers_each_status_its_actions():
    queued = rows_html(run(name="<script>alert(1)</script>", status="queued", queue_position=2,
                           warnings=["unknown parameter <b>"]))
    assert not queued.find("script") and not queued.find("b")
    assert queued.find(attrs={"data-gs-status-text": True}).text == "queued (position 2)"
    assert queued.find(attrs={"data-gs-action": "cancel"}) and not queued.find(attrs={"data-gs-action": "delete"})
    assert not queued.find(attrs={"data-gs-view": True})
    failed = rows_html(run(status="failed", started=T0, finished=T0 + 5, log_tail="Traceback…\nZeroDivisionError",
                           error={"cell_index": 1, "ename": "ZeroDivisionError", "evalue": "division by zero"}),
                       show_user=True)
    body = failed.find("tbody")
    assert body["data-gs-status"] == "failed" and body["data-gs-active"] == "0"
    assert failed.find(attrs={"data-gs-failed-cell": True}).text == "cell 2"
    assert failed.find(attrs={"data-gs-evalue": True}).text == "division by zero"
    assert "ZeroDivisionError" in failed.find(attrs={"data-gs-log-tail": True}).text
    assert failed.find(attrs={"data-gs-action": "delete"}) and failed.find(attrs={"data-gs-view": True})
    assert failed.find("a", attrs={"data-gs-download": True})["href"] == f"{PREFIX}api/runs/r1/notebook"
    assert failed.find("td").text == "ada"  # the user column


def test_an_active_run_shows_what_it_waits_for_and_a_finished_one_does_not():
    waiting = rows_html(run(status="queued", queue_position=1, message="waiting: 2 of 2 GPUs at once in use <b>"))
    assert waiting.find(attrs={"data-gs-run-message": True}).text == "waiting: 2 of 2 GPUs at once in use <b>"
    assert not waiting.find("b")  # escaped
    done = rows_html(run(status="succeeded", started=T0, finished=T0 + 5, message="stale"))
    assert not done.find(attrs={"data-gs-run-message": True})


def test_notebook_html_keeps_outputs_and_the_headers_sandbox_them():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Results"),
                nbformat.v4.new_code_cell("print(42)", outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text="42\n"),
                    nbformat.v4.new_output("display_data", data={"text/html": "<script>steal()</script><b>x</b>"})])]
    html = notebook_html(nbformat.writes(nb).encode(), "train")
    assert "Results" in html and "42" in html
    # nbconvert passes the output's script through as it is: the headers are what keep it inert
    assert "steal()" in html
    csp = HTML_VIEW_HEADERS["Content-Security-Policy"]
    directives = [d.strip() for d in csp.split(";")]
    assert directives[0] == "sandbox"  # no allow-scripts, no allow-same-origin: an opaque origin
    assert "allow-" not in csp and "script-src" not in csp  # default-src 'none' covers scripts
    assert "default-src 'none'" in directives
    assert HTML_VIEW_HEADERS["X-Content-Type-Options"] == "nosniff"


def test_form_script_hash_matches_the_inline_script_the_form_renders():
    html = render_form(catalog=make_catalog(), groups=[], capacity=None, values=None, errors=None)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert FORM_JS_CSP == f"'sha256-{digest}'"


def test_size_text():
    assert size_text(16 * 1024 * 1024) == "16 MB" and size_text(512 * 1024) == "512 kB"


def test_the_submit_form_offers_gpus_that_are_busy_now_but_not_more_than_exist():
    """A run waits for busy GPUs (queued), so the form must not disable them as the spawn
    form does; GPUs the backend does not have stay refused; the capacity line tells both."""
    from gridspawner.backends.base import Capacity, HostCapacity
    from gridspawner.form.fit import capacity_state
    from gridspawner.gpu import GPU
    from gridspawner.service.runs_view import queueing_capacity

    gpus = tuple(GPU(i, f"GPU-{i}", "Tesla T4", 16384) for i in range(4))
    busy = Capacity("hub", (HostCapacity("h1", gpus, frozenset()),), updated=T0)
    assert not busy.fits(4, 16, 0.05)[0]
    cap = queueing_capacity({"hub": busy})["hub"]
    assert cap.fits(4, 16, 0.05)[0] and not cap.fits(5, 16, 0.05)[0]
    assert cap.summary() == "0 of 4 GPUs free; a run waits in the queue until its GPUs are free"
    assert capacity_state(cap) == "busy"
    catalog = make_catalog()
    now = {name: replace(busy, backend=name) for name in catalog.backends}
    html = render_form(catalog=catalog, groups=[], capacity=now, values={"backend": "hub"}, errors=None)
    qhtml = render_form(catalog=catalog, groups=[], capacity=queueing_capacity(now), values={"backend": "hub"},
                        errors=None)
    disabled = lambda h: [o["value"] for o in BeautifulSoup(h, "html.parser").select("select[name=gpus] option[disabled]")]
    assert "4" in disabled(html) and "4" not in disabled(qhtml)
