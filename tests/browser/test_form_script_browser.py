"""The spawn form's script in a real Chromium (the `chromium` fixture of conftest.py), on a
static page (formpage.py: the form rendered for a demo catalog, no hub): filtering,
capacity, locking by profile, the data mounts editor."""

from __future__ import annotations

import pytest

import formpage as preview
from gridspawner.form import parse_form
from gridspawner.request import build_request

pytestmark = pytest.mark.browser


@pytest.fixture
def page(chromium, tmp_path):
    def open_page(values=None, errors=None, mounts=False):
        path = tmp_path / "form.html"
        path.write_text(preview.build_page(values, errors, mounts=mounts), "utf-8")
        pg = chromium.new_page()
        errors_seen = []
        pg.on("pageerror", lambda e: errors_seen.append(str(e)))
        pg.goto(path.as_uri())
        pg.errors_seen = errors_seen
        return pg

    return open_page


def visible_options(pg, name):
    return pg.eval_on_selector_all(f"select[name={name}] option", "os => os.filter(o => !o.hidden).map(o => o.value)")


def option_state(pg, name, value):
    return pg.eval_on_selector(
        f"select[name={name}] option[value='{value}']", "o => ({text: o.textContent, disabled: o.disabled})"
    )


def form_data(pg) -> dict[str, list[str]]:
    pairs = pg.evaluate("() => Array.from(new FormData(document.getElementById('spawn_form')).entries())")
    data: dict[str, list[str]] = {}
    for k, v in pairs:
        data.setdefault(k, []).append(v)
    return data


def locked(pg, name: str) -> bool:
    """A field the chosen profile sets: aria-disabled (focusable, read out), never disabled."""
    sel = f"select[name={name}]"
    # (Playwright's is_disabled counts aria-disabled too: ask the element itself)
    assert not pg.eval_on_selector(sel, "e => e.disabled"), f"{name} is disabled: its value would not be heard"
    return pg.get_attribute(sel, "aria-disabled") == "true"


def test_profile_locks_and_custom_unlocks(page):
    pg = page()  # no values: the first profile is chosen
    assert pg.is_checked("input[name=profile][value=course]")
    assert locked(pg, "backend")
    assert pg.input_value("select[name=gpus]") == "1"
    assert pg.is_visible("[data-gs-field=backend] [data-gs-lock]")
    options = parse_form(form_data(pg))
    request = build_request(options, preview.demo_catalog(), ["students"])
    assert (request.profile, request.backend, request.gpus, request.gpu_memory) == ("course", "gpu-cluster", 1, 16)

    pg.check("input[name=profile][value='']")
    assert not locked(pg, "backend")
    assert not pg.is_visible("[data-gs-field=backend] [data-gs-lock]")

    pg.check("input[name=profile][value=explore]")  # fixes the backend, image stays changeable
    assert locked(pg, "backend") and pg.input_value("select[name=backend]") == "hub"
    assert not locked(pg, "image")
    # locked, not disabled: keyboard users reach it and hear its value; keys do not change it
    pg.focus("select[name=backend]")
    assert pg.evaluate("document.activeElement.name") == "backend"
    pg.keyboard.press("ArrowDown")
    pg.keyboard.press("End")
    assert pg.input_value("select[name=backend]") == "hub"
    assert "Set by the chosen profile" in pg.evaluate(
        "document.getElementById(document.querySelector('select[name=backend]').getAttribute('aria-describedby')"
        ".split(' ').pop()).textContent")
    assert visible_options(pg, "image") == ["scipy"]  # only what runs on the local kind
    assert pg.errors_seen == []


def test_backend_change_filters_images_and_updates_capacity(page):
    pg = page(values={"backend": "gpu-cluster", "image": "tensorflow", "gpus": 0})
    assert set(visible_options(pg, "image")) == {"pytorch", "tensorflow", "scipy"}
    pg.select_option("select[name=backend]", "hub")
    assert visible_options(pg, "image") == ["scipy"]
    assert pg.input_value("select[name=image]") == "scipy"
    assert pg.text_content("[data-gs-capacity]") == "CPU only"
    no_gpus = preview.demo_capacity()["hub"].fits(1, 0, 0.07)[1]
    assert option_state(pg, "gpus", "1") == {"text": f"1 GPU — {no_gpus}", "disabled": True}
    for field in ("cpu", "memory"):  # the local backend does not enforce them, and says so
        assert pg.text_content(f"#gs-{field}-help [data-gs-help]") == "Not enforced on this backend: your server may use more."
    pg.select_option("select[name=backend]", "gpu-cluster")
    assert option_state(pg, "gpus", "1") == {"text": "1 GPU", "disabled": False}
    assert pg.text_content("[data-gs-capacity]") == "3 of 8 GPUs free, up to 80 GB"
    assert pg.text_content("#gs-cpu-help [data-gs-help]") == ""
    assert pg.errors_seen == []


def test_script_reasons_match_capacity_fits(page):
    caps = preview.demo_capacity()
    pg = page(values={"backend": "lab-hosts", "image": "pytorch", "gpus": 0, "gpu_memory": 40})
    for n in (1, 2, 3, 4):
        ok, reason = caps["lab-hosts"].fits(n, 40, 0.07)
        state = option_state(pg, "gpus", str(n))
        label = f"{n} GPU" + ("s" if n != 1 else "")
        assert state == {"text": f"{label} — {reason}" if reason else label, "disabled": not ok}, n
    pg.select_option("select[name=gpus]", "1")
    for gb in (16, 24, 40, 80):
        ok, reason = caps["lab-hosts"].fits(1, gb, 0.07)
        assert option_state(pg, "gpu_memory", str(gb))["disabled"] == (not ok), gb
    assert pg.errors_seen == []


def test_selected_value_that_does_not_fit_is_kept_with_a_note(page):
    pg = page(values={"backend": "gpu-cluster", "image": "pytorch", "gpus": 3, "gpu_memory": 40})
    assert pg.input_value("select[name=gpus]") == "3"
    assert not option_state(pg, "gpus", "3")["disabled"]
    note = pg.text_content("[data-gs-note]")
    assert "no host has 3 free GPUs with ≥ 40 GB (at most 2 free now)" in note
    assert form_data(pg)["gpus"] == ["3"]


def _typed_demo_catalog(original=preview.demo_catalog):
    import dataclasses

    cat = original()
    backends = dict(cat.backends)
    backends["gpu-cluster"] = dataclasses.replace(
        backends["gpu-cluster"], gpu_types={"a100": "NVIDIA A100 80GB", "mig-1g": "MIG 1g.10gb"}
    )
    backends["lab-hosts"] = dataclasses.replace(backends["lab-hosts"], gpu_types={"a100": "A100 (lab)", "a6000": "RTX A6000"})
    return dataclasses.replace(cat, backends=backends)


def test_gpu_types_follow_the_backend(page, monkeypatch):
    monkeypatch.setattr(preview, "demo_catalog", _typed_demo_catalog)
    pg = page(values={"backend": "gpu-cluster", "image": "pytorch", "gpus": 1})
    assert pg.is_visible("[data-gs-field=gpu_type]")
    assert visible_options(pg, "gpu_type") == ["", "a100", "mig-1g"]
    assert option_state(pg, "gpu_type", "mig-1g")["text"] == "MIG 1g.10gb"  # no backend name needed
    pg.select_option("select[name=gpu_type]", "mig-1g")
    options = parse_form(form_data(pg))
    assert build_request(options, _typed_demo_catalog(), ["students"]).gpu_type == "mig-1g"

    pg.select_option("select[name=backend]", "lab-hosts")  # mig-1g is not offered there: back to Any
    assert visible_options(pg, "gpu_type") == ["", "a100", "a6000"]
    assert pg.input_value("select[name=gpu_type]") == ""
    pg.select_option("select[name=gpu_type]", index=3)  # the lab's a100 (index 1 is the cluster's)
    assert pg.eval_on_selector("select[name=gpu_type]", "s => s.options[s.selectedIndex].dataset.backend") == "lab-hosts"
    pg.select_option("select[name=backend]", "gpu-cluster")  # the same key exists here: kept
    assert pg.input_value("select[name=gpu_type]") == "a100"
    assert pg.eval_on_selector("select[name=gpu_type]", "s => s.options[s.selectedIndex].dataset.backend") == "gpu-cluster"

    pg.select_option("select[name=gpus]", "0")  # no GPU: the choice means nothing, hidden
    assert not pg.is_visible("[data-gs-field=gpu_type]")
    pg.select_option("select[name=gpus]", "1")
    assert pg.is_visible("[data-gs-field=gpu_type]")
    pg.select_option("select[name=backend]", "hub")  # offers no types
    assert not pg.is_visible("[data-gs-field=gpu_type]")
    assert pg.errors_seen == []


def _hosted_demo_catalog(original=preview.demo_catalog):
    import dataclasses

    cat = original()
    backends = dict(cat.backends)
    backends["lab-hosts"] = dataclasses.replace(
        backends["lab-hosts"], host_choices={"ws1": "ws1 (GPUs 0, 1)", "ws2": "ws2"}
    )
    return dataclasses.replace(cat, backends=backends)


def test_hosts_follow_the_backend(page, monkeypatch):
    monkeypatch.setattr(preview, "demo_catalog", _hosted_demo_catalog)
    pg = page(values={"backend": "gpu-cluster", "image": "pytorch", "gpus": 1})
    assert not pg.is_visible("[data-gs-field=host]")  # the cluster places servers itself
    assert pg.input_value("select[name=host]") == ""
    options = parse_form(form_data(pg))
    assert build_request(options, _hosted_demo_catalog(), ["students"]).host is None

    pg.select_option("select[name=backend]", "lab-hosts")
    assert pg.is_visible("[data-gs-field=host]")
    assert visible_options(pg, "host") == ["", "ws1", "ws2"]
    assert option_state(pg, "host", "ws1")["text"] == "ws1 (GPUs 0, 1)"
    assert option_state(pg, "host", "")["text"] == "Any host (best fit)"
    pg.select_option("select[name=host]", "ws2")
    options = parse_form(form_data(pg))
    assert build_request(options, _hosted_demo_catalog(), ["students"]).host == "ws2"

    pg.select_option("select[name=backend]", "hub")  # no host choice there: back to best fit, hidden
    assert not pg.is_visible("[data-gs-field=host]")
    assert pg.input_value("select[name=host]") == ""
    options = parse_form(form_data(pg))
    assert build_request(options, _hosted_demo_catalog(), ["students"]).host is None
    assert pg.errors_seen == []


def test_choices_keep_working_with_the_data_section(page):
    """With storage offered the form also runs the mounts editor; choosing a profile or a
    backend must still unlock, filter and update (a helper of the editor once replaced the
    fields' helper of the same name: every change then threw and left the fields locked)."""
    pg = page(mounts=True)
    assert pg.is_checked("input[name=profile][value=course]")
    assert pg.is_disabled("select[name=image]")
    pg.check("input[name=profile][value='']")
    assert not pg.is_disabled("select[name=image]")
    pg.select_option("select[name=backend]", "hub")
    assert visible_options(pg, "image") == ["scipy"]
    assert "CPU only" in pg.inner_text("[data-gs-capacity]")
    pg.select_option("[name='mounts-0-type']", "ssh")
    assert pg.is_visible("[name='mounts-0-path']") and not pg.is_visible("[name='mounts-0-bucket']")
    assert pg.errors_seen == []
