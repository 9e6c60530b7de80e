"""The notebook-run pages in Chromium, through a real hub: the gridspawner service (managed,
hub OAuth) with notebook runs on, real papermill runs on the local backend (fake GPUs).

A user logs in, uploads a parameterised notebook on "Run a notebook", sets its parameters
in the inputs the page made from the notebook's parameters cell, and executes it; the
results page follows it through queued/running to succeeded without a reload; the HTML view
is sandboxed (a script in an output does not run); the executed .ipynb downloads with the
parameters injected. A failing notebook shows its failing cell, error and log tail; a
running one is cancelled from the page; field errors come back next to their fields with
the chosen file kept; axe-core finds no serious violation on either page."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from browsing import log_in
from hubtools import Hub, default_grid_config, free_port

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".node" / "node_modules" / "axe-core" / "axe.min.js"
SERVICE = "/services/gridspawner/"
#: a run on the local backend: papermill start-up and a kernel, on a loaded 2-core machine
RUN_TIMEOUT_MS = 180_000


def notebook(path: Path, *cells: str, params: str = "") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if params:
        cell = nbformat.v4.new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("runs-hub")
    extra = ("from gridspawner.service.settings import enable_service\n"
             f"enable_service(c, port={free_port()})\n")
    grid = default_grid_config(workdir)
    # data mounts on offer (an S3 endpoint nothing listens on: the binding test stops before a check)
    grid["storage"] = {"s3": {"campus": {"display_name": "Campus S3", "url": "http://127.0.0.1:9",
                                         "buckets": ["lab-*"], "credentials": ["keys"]}}}
    h = Hub(grid, workdir=workdir, spawner={"notebook_runs": True}, extra_config=extra)
    try:
        h.start()
        wait_service(h)
        yield h
    finally:
        h.close()
    assert not h.leftover_pids()


def wait_service(hub: Hub, timeout: float = 90) -> None:
    """Until the hub's proxy routes to the service (the hub starts it after itself)."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{hub.url}{SERVICE}static/runs.js", timeout=5, allow_redirects=False).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the gridspawner service did not come up in {timeout} s:\n{hub.log()[-3000:]}")


def assert_accessible(page, what: str) -> None:
    # through the devtools protocol: the pages' CSP (rightly) refuses an injected <script>
    page.evaluate("() => {" + AXE.read_text("utf-8") + "\n}")
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
        .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))""")
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{what}: " + json.dumps(bad, indent=1)


def open_page(chromium, hub: Hub, user: str):
    hub.create_user(user)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    log_in(page, hub, user)
    return context, page


def choose_custom(page, gpus: str) -> None:
    """The Custom card (the default profile stops runs after 10 s), the local backend."""
    page.check("input[name=profile][value='']")
    page.select_option("select[name=backend]", "local")
    page.select_option("select[name=gpus]", gpus)


def submit(page, hub: Hub, path: Path, values: dict[str, str] | None = None, gpus: str = "0") -> None:
    """Fill in "Run a notebook" (custom: the local backend, no GPU unless ``gpus``) and execute."""
    page.goto(f"{hub.url}{SERVICE}runs/new")
    page.set_input_files("#gs-notebook", str(path))
    choose_custom(page, gpus)
    for name, value in (values or {}).items():
        row = page.locator(f"[data-gs-declared='{name}']")
        row.locator("[data-gs-param-value]").fill(value)
    page.click("#gs-execute")


def wait_submitted(page) -> None:
    """Until the results page shows the new run (the submit page's errors, if it stays)."""
    try:
        page.wait_for_url("**/runs?submitted=*", timeout=60_000)
    except Exception:
        errors = page.eval_on_selector_all(".invalid-feedback, #gs-run-errors, .gs-top-errors",
                                           "els => els.map(e => e.textContent.trim()).filter(Boolean)")
        raise AssertionError(f"not submitted: {errors}") from None


def run_row(page):
    return page.locator("#gs-runs tbody[data-gs-run]").first


def watch_statuses(page, until: str, timeout_ms: int = RUN_TIMEOUT_MS) -> list[str]:
    """The statuses the first row shows, in order, until ``until`` (read every 100 ms: the
    page updates itself; nothing here reloads it)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        status = run_row(page).get_attribute("data-gs-status")
        if status and (not seen or seen[-1] != status):
            seen.append(status)
        if status == until:
            return seen
        page.wait_for_timeout(100)
    raise AssertionError(f"the run did not become {until}; it went {seen}")


def test_submit_watch_view_and_download(hub, chromium, tmp_path, artifacts_dir):
    context, page = open_page(chromium, hub, "ada")
    nb = notebook(tmp_path / "greet.ipynb",
                  "import time; time.sleep(4)",
                  "print(label * n)",
                  "from IPython.display import HTML, display\n"
                  "display(HTML('<b id=\"out\">shown</b><script>document.title = \"pwned\"</script>'\n"
                  "             '<img src=x onerror=\"document.body.dataset.pwned = 1\">'))",
                  params="n = 2  # repeats\nlabel = 'ab'\nflag = True\n")
    # the hub's home page leads to the runs
    page.goto(f"{hub.url}/hub/home")
    page.click("#gs-runs-link >> text=My notebook runs")
    page.wait_for_url(f"**{SERVICE}runs")
    expect(page.locator("h1")).to_have_text("Notebook runs")
    expect(page.locator("#gs-runs-empty")).to_be_visible()
    # the hub's look: its stylesheet loads
    assert page.evaluate("getComputedStyle(document.querySelector('nav.navbar')).display") == "flex"

    # ---- submit: the notebook's parameters become typed inputs
    page.goto(f"{hub.url}{SERVICE}runs/new")
    page.set_input_files("#gs-notebook", str(nb))
    expect(page.locator("[data-gs-declared]")).to_have_count(3)
    expect(page.locator("#gs-run-name")).to_have_value("greet")
    n_row = page.locator("[data-gs-declared='n']")
    assert n_row.locator("[data-gs-param-type]").input_value() == "int"
    assert n_row.locator("[data-gs-param-value]").get_attribute("type") == "number"
    assert page.locator("[data-gs-declared='flag'] [data-gs-param-value]").get_attribute("type") == "checkbox"
    expect(page.locator("[data-gs-declared='label']")).to_contain_text("Notebook: 'ab'")
    n_row.locator("[data-gs-param-value]").fill("3")
    choose_custom(page, "1")
    # the spawn form's own fields, its script running (under the page's CSP, by its hash)
    expect(page.locator("#gs-form[data-gs-ready]")).to_be_attached()
    assert_accessible(page, "the submit page")
    page.set_viewport_size({"width": 390, "height": 844})
    assert_accessible(page, "the submit page on a phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(artifacts_dir / "runs-new-page.png"), full_page=True)
    page.click("#gs-execute")

    # ---- the results page follows the run without a reload
    wait_submitted(page)
    expect(page.locator("#gs-submitted")).to_contain_text("greet")
    page.evaluate("window.gsNoReload = 1")
    seen = watch_statuses(page, "succeeded")
    assert seen[-1] == "succeeded" and "running" in seen, seen
    assert page.evaluate("window.gsNoReload") == 1  # the same document all along
    row = run_row(page)
    expect(row).to_contain_text("n = 3")
    expect(row).to_contain_text("local")
    expect(row).to_contain_text("1 × Tesla T4")  # the fake GPU it ran on
    assert row.locator("td").nth(6).inner_text() != ""  # the duration
    assert_accessible(page, "the results page")
    page.screenshot(path=str(artifacts_dir / "runs-page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the table scrolls sideways
    assert_accessible(page, "the results page on a phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # ---- view as HTML: the outputs, sandboxed (the output's script and handler do not run)
    with context.expect_page() as info:
        row.locator("[data-gs-view]").click()
    view = info.value
    view.wait_for_load_state()
    expect(view.locator("#out")).to_have_text("shown")
    expect(view.locator("body")).to_contain_text("ababab")
    view.wait_for_timeout(500)
    assert view.title() != "pwned"
    assert view.locator("body").get_attribute("data-pwned") is None
    # an opaque origin (sandbox without allow-same-origin): no access to the service's cookies or API
    assert view.evaluate("() => window.origin") == "null"
    view.screenshot(path=str(artifacts_dir / "runs-html-view.png"), full_page=True)
    response = page.request.get(hub.url + row.locator("[data-gs-view]").get_attribute("href"))
    csp = response.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "allow-same-origin" not in csp and "allow-scripts" not in csp
    view.close()

    # ---- the executed notebook downloads, with the parameters papermill injected
    with page.expect_download() as dl:
        row.locator("[data-gs-download]").click()
    executed = nbformat.read(dl.value.path(), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "n = 3" in injected[0].source
    assert any("ababab" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    context.close()


def test_field_errors_failure_cancel_and_delete(hub, chromium, tmp_path, artifacts_dir):
    context, page = open_page(chromium, hub, "bob")
    nb = notebook(tmp_path / "fails.ipynb", "x = 1", "print('before'); 1 / 0", params="n = 1\n")

    # ---- a bad value: the errors come back next to their fields, the file stays chosen
    page.goto(f"{hub.url}{SERVICE}runs/new")
    page.set_input_files("#gs-notebook", str(nb))
    choose_custom(page, "1")
    # more GPUs than the admin allows (4), as a crafted form would send
    page.eval_on_selector("select[name=gpus]", "s => { s.add(new Option('9', '9')); s.value = '9'; }")
    page.locator("[data-gs-declared='n'] [data-gs-param-type]").select_option("str")
    page.locator("[data-gs-declared='n'] [data-gs-param-value]").fill("many")
    page.locator("[data-gs-declared='n'] [data-gs-param-type]").select_option("int")
    page.click("#gs-execute")
    expect(page.locator("[data-gs-declared='n'] [data-gs-param-error]")).not_to_be_empty()
    expect(page.locator("[data-gs-declared='n'] [data-gs-param-value]")).to_have_attribute("aria-invalid", "true")
    # the spawn form part, rendered again by the server with the error next to the field
    expect(page.locator("#gs-gpus-error")).to_be_visible()
    expect(page.locator("select[name=gpus]")).to_have_value("9")
    expect(page.locator("#gs-form[data-gs-ready]")).to_be_attached()  # its script ran again
    assert page.url.endswith("/runs/new")
    assert page.eval_on_selector("#gs-notebook", "e => e.files.length") == 1
    assert_accessible(page, "the submit page with errors")
    page.screenshot(path=str(artifacts_dir / "runs-new-errors.png"), full_page=True)

    # ---- a failing notebook: its cell, error and log tail under its row
    submit(page, hub, nb)
    wait_submitted(page)
    watch_statuses(page, "failed")
    failure = page.locator("#gs-runs tbody[data-gs-run]").first.locator("[data-gs-failure]")
    expect(failure).to_contain_text("ZeroDivisionError")
    expect(failure.locator("[data-gs-failed-cell]")).to_have_text("cell 3")
    expect(failure.locator("[data-gs-evalue]")).to_contain_text("division by zero")
    expect(failure.locator("[data-gs-failed-source]")).to_have_text("print('before'); 1 / 0")
    failure.locator("summary").click()
    expect(failure.locator("[data-gs-log-tail]")).not_to_be_empty()
    assert_accessible(page, "the results page with a failed run")

    # ---- all 4 GPUs held by one run: the next waits in the queue (its place shown); both
    # are cancelled from the page, the queued one and the running one
    slow = notebook(tmp_path / "slow.ipynb", "import time; time.sleep(300)")
    submit(page, hub, slow, gpus="4")
    wait_submitted(page)
    watch_statuses(page, "running")
    submit(page, hub, notebook(tmp_path / "waits.ipynb", "print('never')"), gpus="4")
    wait_submitted(page)
    page.evaluate("window.gsNoReload = 1")
    waiting = page.locator("#gs-runs tbody[data-gs-run]").nth(0)
    running = page.locator("#gs-runs tbody[data-gs-run]").nth(1)
    expect(waiting.locator("[data-gs-status-text]")).to_have_text("queued (position 1)")
    expect(running).to_have_attribute("data-gs-status", "running")
    waiting.locator("[data-gs-action=cancel]").click()
    expect(waiting).to_have_attribute("data-gs-status", "cancelled")
    running.locator("[data-gs-action=cancel]").click()
    expect(running).to_have_attribute("data-gs-status", "cancelled", timeout=60_000)
    assert page.evaluate("window.gsNoReload") == 1
    page.screenshot(path=str(artifacts_dir / "runs-page-failed-cancelled.png"), full_page=True)

    # ---- delete one
    page.on("dialog", lambda d: d.accept())
    rows = page.locator("#gs-runs tbody[data-gs-run]")
    expect(rows).to_have_count(3)
    run_row(page).locator("[data-gs-action=delete]").click()
    expect(rows).to_have_count(2)
    page.reload()
    expect(rows).to_have_count(2)
    context.close()


def test_submit_cancel_and_delete_without_javascript(hub, chromium, tmp_path, artifacts_dir):
    """The form works as a plain form post too: errors come back on the page (next to the
    file input), a good run is queued and the browser lands on the results page; a run is
    cancelled and another deleted by their rows' form posts, each with its message."""
    hub.create_user("cy")
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(30_000)
    log_in(page, hub, "cy")
    page.goto(f"{hub.url}{SERVICE}runs/new")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("this is not JSON")
    page.set_input_files("#gs-notebook", str(broken))
    page.check("input[name=profile][value='']")
    page.click("#gs-execute")
    expect(page.locator("#gs-notebook-error")).to_contain_text("is not a notebook")
    expect(page.locator("#gs-notebook")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#gs-notebook-help")).to_contain_text("Choose the notebook again")
    expect(page.locator("input[name=profile][value='']")).to_be_checked()  # the choices kept
    page.set_input_files("#gs-notebook", str(notebook(tmp_path / "plain.ipynb", "print(1)")))
    page.click("#gs-execute")
    page.wait_for_url("**/runs?submitted=*")
    expect(page.locator("#gs-submitted")).to_contain_text("plain")
    expect(page.locator("#gs-runs tbody[data-gs-run]")).to_have_count(1)

    # cancel and delete are form posts: back on the list with a message, no script needed
    page.goto(f"{hub.url}{SERVICE}runs/new")
    page.set_input_files("#gs-notebook", str(notebook(tmp_path / "sleeper.ipynb", "import time; time.sleep(300)")))
    page.check("input[name=profile][value='']")
    page.click("#gs-execute")
    page.wait_for_url("**/runs?submitted=*")
    sleeper = page.locator("#gs-runs tbody[data-gs-run]").first
    expect(sleeper.locator(".gs-run-name")).to_contain_text("sleeper")
    expect(sleeper.locator("[data-gs-action=cancel]")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "runs-page-nojs.png"), full_page=True)
    sleeper.locator("[data-gs-action=cancel]").click()
    page.wait_for_url(f"**{SERVICE}runs")
    expect(page.locator("#gs-flash")).to_contain_text("sleeper: cancel")
    page.screenshot(path=str(artifacts_dir / "runs-page-nojs-cancelled.png"), full_page=True)
    plain = page.locator("#gs-runs tbody[data-gs-run]").nth(1)
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while plain.get_attribute("data-gs-status") in ("queued", "preparing", "running"):  # no live updates: reload
        assert time.monotonic() < deadline, "the run did not end"
        page.wait_for_timeout(1000)
        page.reload()
    expect(plain.locator("[data-gs-action=delete]")).to_be_visible()
    plain.locator("[data-gs-action=delete]").click()
    expect(page.locator("h1")).to_have_text("Delete the run plain?")  # asked first
    page.screenshot(path=str(artifacts_dir / "runs-delete-confirm-nojs.png"), full_page=True)
    page.click("#gs-delete-confirm")
    page.wait_for_url(f"**{SERVICE}runs")
    expect(page.locator("#gs-flash")).to_contain_text("plain: deleted")
    expect(page.locator("#gs-runs tbody[data-gs-run]")).to_have_count(1)
    page.screenshot(path=str(artifacts_dir / "runs-page-nojs-deleted.png"), full_page=True)
    page.reload()
    expect(page.locator("#gs-flash")).to_have_count(0)  # shown once
    context.close()


def test_a_parameter_bound_to_a_data_mount(hub, chromium, tmp_path):
    """"Value from: data mount N" sends the binding with the index the run's mounts have (the
    filled rows, in order): a bad sub-path comes back next to that parameter, not as a
    wrong mount index."""
    context, page = open_page(chromium, hub, "dee")
    page.goto(f"{hub.url}{SERVICE}runs/new")
    page.set_input_files("#gs-notebook", str(notebook(tmp_path / "data.ipynb", "print(table)",
                                                      params="table = 'x.csv'\n")))
    choose_custom(page, "0")
    # the second mount row filled in, the first left empty: it is the run's mount 0
    page.fill("[name=mounts-1-bucket]", "lab-data")
    page.fill("[name=mounts-1-target]", "inputs")
    page.fill("[name=mounts-1-access_key]", "AKIAEXAMPLE")
    page.fill("[name=mounts-1-secret_key]", "secret")
    row = page.locator("[data-gs-declared='table']")
    source = row.locator("[data-gs-param-source]")
    source.focus()
    source.select_option(label="data mount 2")
    expect(row.locator("[data-gs-value-box]")).to_be_hidden()
    row.locator("[data-gs-param-path]").fill("../secrets")
    page.click("#gs-execute")
    expect(row.locator("[data-gs-param-error]")).to_contain_text("relative path inside the mount")
    expect(row.locator("[data-gs-param-path]")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page, "the submit page with a bound parameter")
    context.close()
