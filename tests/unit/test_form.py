"""The spawn form: rendering (parsed as HTML, not grepped) and parsing back."""

from __future__ import annotations

import json
import time

import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridspawner.backends.base import Capacity, HostCapacity
from gridspawner.catalog import BackendConfig, Catalog, ImageConfig, Policy, Profile
from gridspawner.form import parse_form, render_form
from gridspawner.form import render as render_module
from gridspawner.gpu import GPU
from gridspawner.request import OptionsError, build_request

HOSTILE = [
    "<script>alert(1)</script>",
    "\"'><img src=x onerror=1>",
    "{{7*7}}",
    "$(touch /tmp/x)",
]


# --------------------------------------------------------------------------- fixtures


def policy(backends=None, images=None, max_gpus=4, free_choice=True) -> Policy:
    return Policy(
        frozenset(backends) if backends is not None else None,
        frozenset(images) if images is not None else None,
        max_gpus,
        free_choice,
    )


def profile(key, values, changeable=(), groups=(), display_name=None, description="", max_gpus=None, max_runtime=None):
    return Profile(
        key=key,
        display_name=display_name or key.title(),
        description=description,
        groups=frozenset(groups),
        values=dict(values),
        changeable=frozenset(changeable),
        max_gpus=max_gpus,
        max_runtime=max_runtime,
    )


def make_catalog(*, profiles=(), group_policy=None, default_policy=None, cpu=(), memory=(), defaults=None, max_gpus=4,
                 gpu_types=None, host_choices=None):
    """``gpu_types`` / ``host_choices``: backend name → {key: display text} (default: none
    offers a choice)."""
    types = gpu_types or {}
    hosts = host_choices or {}
    backends = {
        "cluster": BackendConfig("cluster", "kubernetes", "GPU cluster", "A100 nodes", None, dict(types.get("cluster", {})),
                                 dict(hosts.get("cluster", {}))),
        "lab": BackendConfig("lab", "ssh", "Lab hosts", "Workstations", None, dict(types.get("lab", {})),
                             dict(hosts.get("lab", {})), resource_limits="some"),
        "hub": BackendConfig("hub", "local", "This machine", "", None, resource_limits="none"),
    }
    images = {
        "pytorch": ImageConfig("pytorch", "PyTorch", "torch + CUDA", {"kubernetes": None, "ssh": None}),
        "tf": ImageConfig("tf", "TensorFlow", "", {"kubernetes": None}),
        "scipy": ImageConfig("scipy", "SciPy", "numpy etc.", {"kubernetes": None, "ssh": None, "local": None}),
    }
    return Catalog(
        backends=backends,
        images=images,
        max_gpus=max_gpus,
        gpu_memory_classes=(0, 16, 40, 80),
        cpu_choices=tuple(cpu),
        memory_choices=tuple(memory),
        group_policy=group_policy or {},
        default_policy=default_policy or policy(),
        profiles={p.key: p for p in profiles},
        defaults=defaults or {},
        gpu_memory_tolerance=0.07,
    )


def gpus(prefix, n, mib=81920):
    return tuple(GPU(i, f"{prefix}{i}", "A100", mib) for i in range(n))


def host(name, cards, free):
    return HostCapacity(name, cards, frozenset(g.uuid for g in cards[:free]))


def capacity(**hosts_by_backend):
    now = time.time()
    return {name: Capacity(name, tuple(hosts), updated=now) for name, hosts in hosts_by_backend.items()}


def render(catalog=None, groups=(), cap=None, values=None, errors=None) -> BeautifulSoup:
    html = render_form(
        catalog=catalog or make_catalog(),
        groups=list(groups),
        capacity=cap if cap is not None else {},
        values=values,
        errors=errors or {},
    )
    return BeautifulSoup(html, "html.parser")


def select(soup, name):
    return soup.find("select", attrs={"name": name})


def option_values(soup, name):
    return [o["value"] for o in select(soup, name).find_all("option")]


def selected_value(soup, name):
    opts = select(soup, name).find_all("option")
    chosen = [o for o in opts if o.has_attr("selected")]
    assert len(chosen) <= 1
    return (chosen or opts)[0]["value"]


def option(soup, name, value):
    return select(soup, name).find("option", attrs={"value": value})


def submitted(soup) -> dict[str, list[str]]:
    """What a browser without JavaScript submits for this form (tornado's formdata)."""
    data: dict[str, list[str]] = {}
    for s in soup.find_all("select"):
        if s.has_attr("disabled"):
            continue
        chosen = [o for o in s.find_all("option") if o.has_attr("selected")] or s.find_all("option")[:1]
        if chosen and not chosen[0].has_attr("disabled"):
            data.setdefault(s["name"], []).append(chosen[0]["value"])
    for i in soup.find_all("input"):
        if i.get("type") == "radio" and not i.has_attr("checked"):
            continue
        data.setdefault(i["name"], []).append(i.get("value", ""))
    data["_xsrf"] = ["token"]
    return data


# --------------------------------------------------------------------------- structure


def test_template_compiled_once_with_autoescape_and_strict_undefined():
    from jinja2 import StrictUndefined, Template

    assert isinstance(render_module._TEMPLATE, Template)
    env = render_module._ENV
    assert env.autoescape is True
    assert env.undefined is StrictUndefined
    first = render_module._TEMPLATE
    render()
    assert render_module._TEMPLATE is first


def test_no_profiles_renders_fields_only_no_form_or_submit():
    soup = render()
    assert soup.find("form") is None
    assert soup.find("button") is None and soup.find("input", attrs={"type": "submit"}) is None
    assert soup.find("input", attrs={"name": "profile"}) is None
    for name in ("backend", "image", "gpus", "gpu_memory"):
        assert select(soup, name) is not None, name
    assert select(soup, "cpu") is None and select(soup, "memory") is None  # no choices configured
    assert option_values(soup, "backend") == ["cluster", "lab", "hub"]
    assert option_values(soup, "gpus") == ["0", "1", "2", "3", "4"]
    assert option_values(soup, "gpu_memory") == ["0", "16", "40", "80"]
    assert option(soup, "gpu_memory", "0").get_text() == "Any"
    # defaults: first backend, first image that runs there, no GPU
    assert selected_value(soup, "backend") == "cluster"
    assert selected_value(soup, "image") == "pytorch"
    assert selected_value(soup, "gpus") == "0"
    # every control has a label
    for s in soup.find_all("select"):
        assert soup.find("label", attrs={"for": s["id"]}) is not None


def test_cpu_and_memory_selects_start_with_default():
    soup = render(make_catalog(cpu=(0.5, 1, 2), memory=(8, 16)))  # build_catalog sorts the choices
    cpu = select(soup, "cpu").find_all("option")
    assert [(o["value"], o.get_text()) for o in cpu] == [("", "Default"), ("0.5", "0.5 CPUs"), ("1", "1 CPU"), ("2", "2 CPUs")]
    assert option_values(soup, "memory") == ["", "8", "16"]
    assert selected_value(soup, "cpu") == "" and selected_value(soup, "memory") == ""


@pytest.mark.parametrize(
    "backend, note",
    [
        ("cluster", ""),
        ("lab", "Enforced only on some of this backend's hosts (those running containers)."),
        ("hub", "Not enforced on this backend: your server may use more."),
    ],
)
def test_cpu_and_memory_say_where_they_are_not_enforced(backend, note):
    soup = render(make_catalog(cpu=(2, 4), memory=(8, 16)), values={"backend": backend, "image": "scipy"})
    for field in ("cpu", "memory"):
        help_ = soup.find(id=f"gs-{field}-help").find(attrs={"data-gs-help": True})
        assert help_.get_text(strip=True) == note
    # every backend option carries its note, for the script to switch when the backend changes
    notes = {o["value"]: o["data-limits-note"] for o in select(soup, "backend").find_all("option")}
    assert notes == {"cluster": "", "lab": "Enforced only on some of this backend's hosts (those running containers).",
                     "hub": "Not enforced on this backend: your server may use more."}


def test_images_carry_the_kinds_they_run_on():
    soup = render()
    assert option(soup, "image", "tf")["data-kinds"] == "kubernetes"
    assert set(option(soup, "image", "scipy")["data-kinds"].split()) == {"kubernetes", "ssh", "local"}
    assert option(soup, "backend", "lab")["data-kind"] == "ssh"


def test_profiles_shown_as_cards_with_custom_choice():
    p1 = profile(
        "course", {"backend": "cluster", "image": "pytorch", "gpus": 1, "gpu_memory": 16},
        display_name="ML course", description="One GPU for the exercises", max_runtime=4 * 3600,
    )
    p2 = profile("cpu", {"backend": "hub", "image": "scipy", "gpus": 0}, changeable=["image"])
    soup = render(make_catalog(profiles=[p1, p2]))
    radios = soup.find_all("input", attrs={"name": "profile"})
    assert [r["value"] for r in radios] == ["course", "cpu", ""]
    assert radios[0].has_attr("checked")  # first profile preselected
    card = radios[0].find_parent("label")
    assert "card" in card["class"]
    text = card.get_text(" ", strip=True)
    assert "ML course" in text and "One GPU for the exercises" in text and "4 h" in text
    assert "Custom" in radios[2].find_parent("label").get_text()
    # fields show the chosen profile's values
    assert selected_value(soup, "backend") == "cluster"
    assert selected_value(soup, "gpus") == "1"
    assert selected_value(soup, "gpu_memory") == "16"


def test_profiles_for_groups_and_no_custom_without_free_choice():
    p1 = profile("open", {"gpus": 0})
    p2 = profile("secret", {"gpus": 1}, groups=["staff"])
    cat = make_catalog(profiles=[p1, p2], default_policy=policy(free_choice=False))
    soup = render(cat, groups=["students"])
    values = [r["value"] for r in soup.find_all("input", attrs={"name": "profile"})]
    assert values == ["open"]
    assert "secret" not in str(soup)
    soup = render(cat, groups=["staff"])
    assert [r["value"] for r in soup.find_all("input", attrs={"name": "profile"})] == ["open", "secret"]


def test_without_free_choice_only_changeable_fields_are_shown():
    p = profile("course", {"backend": "cluster", "image": "pytorch", "gpus": 1}, changeable=["gpus"])
    cat = make_catalog(profiles=[p], default_policy=policy(free_choice=False), cpu=(1, 2))
    soup = render(cat)
    assert select(soup, "backend") is None
    assert select(soup, "image") is None
    # gpus is changeable; gpu_memory and cpu are not set by the profile, so the user picks them
    assert select(soup, "gpus") is not None
    assert select(soup, "gpu_memory") is not None
    assert select(soup, "cpu") is not None


def test_without_free_choice_and_no_profiles_nothing_to_choose():
    cat = make_catalog(default_policy=policy(free_choice=False))
    soup = render(cat)
    assert soup.find("select") is None
    alert = soup.find(class_="alert")
    assert "No server options are available to you" in alert.get_text()


def test_group_policy_hides_backends_and_images():
    cat = make_catalog(
        group_policy={"students": policy(backends=["lab"], images=["scipy"], max_gpus=1)},
    )
    soup = render(cat, groups=["students"])
    assert option_values(soup, "backend") == ["lab"]
    assert option_values(soup, "image") == ["scipy"]
    assert option_values(soup, "gpus") == ["0", "1"]
    html = str(soup)
    for hidden in ("GPU cluster", "This machine", "TensorFlow", "PyTorch", '"cluster"', '"tf"'):
        assert hidden not in html, hidden
    # other users still see everything
    soup = render(cat, groups=["staff"])
    assert option_values(soup, "backend") == ["cluster", "lab", "hub"]


def test_profile_backend_outside_policy_is_offered_for_that_profile_only():
    p = profile("course", {"backend": "cluster", "image": "tf"}, changeable=["backend", "image"])
    cat = make_catalog(profiles=[p], group_policy={"students": policy(backends=["lab"], images=["scipy"])})
    soup = render(cat, groups=["students"])
    assert option(soup, "backend", "cluster")["data-policy"] == "0"
    assert option(soup, "backend", "lab")["data-policy"] == "1"
    assert option(soup, "image", "tf")["data-policy"] == "0"
    assert option(soup, "backend", "hub") is None


# --------------------------------------------------------------------------- capacity


def test_capacity_summaries_shown_per_backend():
    cap = capacity(cluster=[host("n1", gpus("a", 4), free=3)], lab=[host("w1", gpus("b", 2, 49140), free=0)])
    soup = render(cap=cap)
    assert option(soup, "backend", "cluster")["data-summary"] == "3 of 4 GPUs free, up to 80 GB"
    assert option(soup, "backend", "lab")["data-summary"] == "0 of 2 GPUs free"
    assert option(soup, "backend", "hub")["data-summary"] == "checking capacity…"  # not probed yet
    line = soup.find(attrs={"data-gs-capacity": True})
    assert line.get_text() == "3 of 4 GPUs free, up to 80 GB"  # the selected backend's, next to it
    data = json.loads(soup.find("script", id="gs-form-data").string)
    assert data["backends"]["cluster"] == {"known": True, "total": 4, "best": [3, 3, 3, 3]}
    assert data["backends"]["lab"]["best"] == [0, 0, 0, 0]
    assert data["backends"]["hub"]["known"] is False


def test_choice_that_cannot_fit_is_disabled_with_reason():
    cat = make_catalog(group_policy={"u": policy(backends=["cluster"])})
    cap = capacity(cluster=[host("n1", gpus("a", 2) + gpus("s", 2, 16384), free=4)])  # 2×80 + 2×16 free
    soup = render(cat, groups=["u"], cap=cap, values={"gpus": 1, "gpu_memory": 40})
    two = option(soup, "gpus", "2")
    assert not two.has_attr("disabled")  # 2 × ≥40 GB fit
    three = option(soup, "gpus", "3")
    assert three.has_attr("disabled")
    reason = cap["cluster"].fits(3, 40, 0.07)[1]
    assert three.get_text() == f"3 GPUs — {reason}"
    assert "no host has 3 free GPUs with ≥ 40 GB" in three.get_text()
    # VRAM classes are checked against the chosen count
    soup = render(cat, groups=["u"], cap=cap, values={"gpus": 3, "gpu_memory": 0})
    assert not option(soup, "gpu_memory", "0").has_attr("disabled")
    assert not option(soup, "gpu_memory", "16").has_attr("disabled")  # 4 cards ≥ 16 GB free
    for gb in ("40", "80"):
        o = option(soup, "gpu_memory", gb)
        assert o.has_attr("disabled") and "no host has 3 free GPUs" in o.get_text(), gb


def test_selected_choice_that_cannot_fit_stays_selectable_and_says_why():
    cat = make_catalog(group_policy={"u": policy(backends=["cluster"])})
    cap = capacity(cluster=[host("n1", gpus("a", 4), free=1)])
    soup = render(cat, groups=["u"], cap=cap, values={"gpus": 2})
    two = option(soup, "gpus", "2")
    assert two.has_attr("selected") and not two.has_attr("disabled")
    note = soup.find(attrs={"data-gs-note": True})
    assert not note.has_attr("hidden")
    assert "no host has 2 free GPUs (at most 1 free now)" in note.get_text()


def test_not_disabled_when_another_offered_backend_fits():
    cap = capacity(cluster=[host("n1", gpus("a", 4), free=0)], lab=[host("w", gpus("b", 4), free=4)])
    soup = render(cap=cap)
    o = option(soup, "gpus", "2")
    assert "no host has 2 free GPUs" in o.get_text()  # reason for the selected backend…
    assert not o.has_attr("disabled")  # …but without JavaScript the user may switch to "lab"


def test_backend_without_gpus_says_so():
    cat = make_catalog(group_policy={"u": policy(backends=["hub"], images=["scipy"])})
    cap = capacity(hub=[HostCapacity("hub", ())])
    soup = render(cat, groups=["u"], cap=cap)
    assert soup.find(attrs={"data-gs-capacity": True}).get_text() == "CPU only"
    o = option(soup, "gpus", "1")
    assert o.has_attr("disabled") and o.get_text() == "1 GPU — this backend has no GPUs"


def test_backend_with_every_host_down():
    cat = make_catalog(group_policy={"u": policy(backends=["lab"], images=["scipy"])})
    cap = capacity(lab=[HostCapacity("w1", gpus("a", 2), error="ssh: timeout")])
    soup = render(cat, groups=["u"], cap=cap)
    reason = cap["lab"].fits(1, 0, 0.07)[1]
    assert option(soup, "gpus", "1").get_text() == f"1 GPU — {reason}"
    assert soup.find(attrs={"data-gs-capacity": True}).get_text() == cap["lab"].summary()
    data = json.loads(soup.find("script", id="gs-form-data").string)
    assert data["backends"]["lab"]["none"] == reason


def test_unknown_capacity_never_blocks():
    cap = {"cluster": Capacity("cluster", updated=time.time(), error="timed out")}
    soup = render(cap=cap)
    assert not any(o.has_attr("disabled") for o in select(soup, "gpus").find_all("option"))
    assert option(soup, "backend", "cluster")["data-summary"] == "capacity unknown: timed out"


# --------------------------------------------------------------------------- errors


def test_field_errors_next_to_their_field_others_at_top():
    errors = {"gpus": "at most 4 GPUs allowed for you", "bogus": "unknown option", "user_options": "must be an object"}
    soup = render(values={"gpus": 9}, errors=errors)
    gpus = select(soup, "gpus")
    assert "is-invalid" in gpus["class"]
    feedback = gpus.find_next_sibling(class_="invalid-feedback")
    assert feedback.get_text() == "at most 4 GPUs allowed for you"
    assert "is-invalid" not in select(soup, "backend")["class"]
    alert = soup.find(class_="alert-danger")
    items = [li.get_text(" ", strip=True) for li in alert.find_all("li")]
    assert items == ["bogus : unknown option", "user_options : must be an object"]
    # the rejected value is shown again, selected
    nine = option(soup, "gpus", "9")
    assert nine.has_attr("selected") and "not available" in nine.get_text()


def test_error_for_a_field_not_on_this_form_goes_to_the_top():
    soup = render(errors={"cpu": "this hub does not offer a choice here", "mounts": "not enabled"})
    alert = soup.find(class_="alert-danger")
    assert "this hub does not offer a choice here" in alert.get_text()
    assert "not enabled" in alert.get_text()


def test_profile_error_shown_under_cards():
    p = profile("course", {"gpus": 1})
    soup = render(make_catalog(profiles=[p]), values={"profile": "nope"}, errors={"profile": "unknown profile 'nope'"})
    fb = soup.find(id="gs-profile-error")
    assert "invalid-feedback" in fb["class"] and fb.get_text() == "unknown profile 'nope'"
    assert "is-invalid" in soup.find(class_="gs-cards")["class"]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_values_and_errors_are_escaped(payload):
    p = profile("course", {"gpus": 1}, changeable=["gpus"])
    cat = make_catalog(profiles=[p], cpu=(1, 2), memory=(8,))
    values = {f: payload for f in ("profile", "backend", "image", "gpus", "gpu_memory", "cpu", "memory")}
    errors = {"gpus": payload, "image": f"image {payload!r} is not available", payload: payload}
    html = render_form(catalog=cat, groups=[], capacity={}, values=values, errors=errors)
    soup = BeautifulSoup(html, "html.parser")
    # no element or attribute came from the payload
    assert soup.find("img") is None
    scripts = soup.find_all("script")
    assert len(scripts) == 2 and all("alert(1)" not in (s.string or "") for s in scripts)
    for tag in soup.find_all(True):
        assert "onerror" not in tag.attrs
    assert "<script>alert" not in html and "<img" not in html
    # the payload comes back as text, unevaluated
    assert option(soup, "gpus", payload).get_text() == f"{payload} (not available)"
    assert option(soup, "backend", payload).has_attr("selected")
    assert select(soup, "gpus").find_next_sibling(class_="invalid-feedback").get_text() == payload
    assert payload in soup.find(class_="alert-danger").get_text()
    if payload == "{{7*7}}":
        assert "49" not in html


def test_script_data_is_json_and_cannot_close_the_script():
    p = profile("x", {"backend": "cluster"}, display_name="</script><script>alert(1)</script>")
    soup = render(make_catalog(profiles=[p]))
    raw = soup.find("script", id="gs-form-data").string
    assert "</" not in raw
    data = json.loads(raw)
    assert data["choices"]["x"]["fixed"] == ["backend"]
    assert data["classes"] == [0, 16, 40, 80]


# --------------------------------------------------------------------------- round trip


def test_no_javascript_submission_of_the_default_form_is_valid():
    cat = make_catalog(cpu=(1, 2), memory=(8, 16))
    options = parse_form(submitted(render(cat)))
    request = build_request(options, cat, [])
    assert request.backend == "cluster" and request.gpus == 0 and request.cpu is None


def test_no_javascript_submission_with_a_profile_uses_its_fixed_values():
    # The profile fixes a backend other than the default; without JavaScript the visible
    # backend select still submits the default, which the hidden _fixed input discards.
    p = profile("cpu", {"backend": "hub", "image": "scipy", "gpus": 0}, changeable=["image"])
    cat = make_catalog(profiles=[p])
    soup = render(cat, values={"profile": "cpu"})
    data = submitted(soup)
    data["backend"] = ["cluster"]
    data["gpus"] = ["3"]
    options = parse_form(data)
    assert options == {"profile": "cpu", "image": "scipy", "gpu_memory": 0}
    request = build_request(options, cat, [])
    assert (request.backend, request.image, request.gpus, request.profile) == ("hub", "scipy", 0, "cpu")


def test_custom_choice_round_trip():
    p = profile("cpu", {"backend": "hub"})
    cat = make_catalog(profiles=[p])
    values = {"backend": "lab", "image": "pytorch", "gpus": 2, "gpu_memory": 40}
    soup = render(cat, values=values)
    assert soup.find("input", attrs={"name": "profile", "value": ""}).has_attr("checked")
    options = parse_form(submitted(soup))
    assert options == values
    assert build_request(options, cat, []).backend == "lab"


# --------------------------------------------------------------------------- parse_form


@pytest.mark.parametrize(
    "formdata, expected",
    [
        ({}, {}),
        ({"_xsrf": ["t"]}, {}),
        ({"gpus": ["2"], "gpu_memory": ["40"]}, {"gpus": 2, "gpu_memory": 40}),
        ({"cpu": ["0.5"], "memory": ["16"]}, {"cpu": 0.5, "memory": 16}),
        ({"gpus": ["abc"]}, {"gpus": "abc"}),
        ({"gpus": [" 3 "]}, {"gpus": 3}),
        ({"gpus": ["-1"]}, {"gpus": -1}),
        ({"gpus": ["nan"], "cpu": ["inf"]}, {"gpus": "nan", "cpu": "inf"}),
        ({"gpus": ["٣"]}, {"gpus": "٣"}),
        ({"gpus": [""], "cpu": [""], "backend": [""], "profile": [""]}, {}),
        ({"backend": ["lab"], "image": ["tf"], "profile": ["p"]}, {"backend": "lab", "image": "tf", "profile": "p"}),
        ({"backend": [b"lab"]}, {"backend": "lab"}),
        ({"gpus": ["1", "2"]}, {"gpus": 1}),
        ({"gpus": []}, {}),
        ({"surprise": ["x"]}, {"surprise": "x"}),
        ({"mounts": ["x"]}, {}),
        # fields a chosen profile sets are dropped; other profiles' lists do not matter
        (
            {"profile": ["p"], "_fixed.p": ["backend gpus"], "_fixed.q": ["image"], "backend": ["b"], "image": ["i"], "gpus": ["2"]},
            {"profile": "p", "image": "i"},
        ),
        ({"_fixed.p": ["backend"], "backend": ["b"]}, {"backend": "b"}),
        ({"profile": ["p"], "_fixed.p": ["profile surprise"], "surprise": ["x"]}, {"profile": "p", "surprise": "x"}),
    ],
)
def test_parse_form(formdata, expected):
    assert parse_form(formdata) == expected


def test_parse_form_never_raises_on_odd_input():
    huge = "9" * 5000  # int() refuses > 4300 digits
    assert parse_form({"gpus": [huge]}) == {"gpus": huge}
    assert parse_form({"gpus": "2"}) == {"gpus": 2}  # a bare string, not a list
    assert parse_form({"gpus": [None], 3: ["x"]}) == {}
    assert parse_form(None) == {}


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["profile", "backend", "image", "gpus", "gpu_memory", "cpu", "memory", "mounts", "x"]),
        st.one_of(st.none(), st.text(max_size=30), st.integers(-5, 10**12), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)),
    ),
    st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=3),
)
def test_render_never_raises_and_escapes(values, errors):
    p = profile("course", {"backend": "cluster", "gpus": 1}, changeable=["gpus"])
    cat = make_catalog(profiles=[p], cpu=(1, 2), memory=(8,))
    html = render_form(catalog=cat, groups=[], capacity={}, values=values, errors=errors)
    soup = BeautifulSoup(html, "html.parser")
    assert len(soup.find_all("script")) == 2
    for s in soup.find_all("select"):
        assert sum(o.has_attr("selected") for o in s.find_all("option")) <= 1


def test_form_data_round_trips_parse_for_every_option():
    cat = make_catalog(cpu=(0.5, 1, 2), memory=(8, 16))
    soup = render(cat)
    for name in ("gpus", "gpu_memory", "cpu", "memory"):
        for value in option_values(soup, name):
            parsed = parse_form({name: [value]})
            if value == "":
                assert parsed == {}
            else:
                try:
                    build_request(parsed, cat, [])
                except OptionsError as e:  # only capacity-free validation here: all must pass
                    pytest.fail(f"{name}={value!r}: {e}")


# --------------------------------------------------------------------------- gpu_type

CLUSTER_TYPES = {"cluster": {"a100": "NVIDIA A100 80GB", "mig-1g": "MIG 1g.10gb"}}


def test_no_gpu_type_field_when_no_backend_offers_types():
    soup = render()
    assert select(soup, "gpu_type") is None
    # nor when the only backend offering types is not for this user
    cat = make_catalog(gpu_types=CLUSTER_TYPES, default_policy=policy(backends=["lab", "hub"]))
    assert select(render(cat), "gpu_type") is None


def test_gpu_type_select_lists_any_first_then_each_backends_types():
    cat = make_catalog(gpu_types={**CLUSTER_TYPES, "lab": {"a100": "A100 (lab)", "rtx": "RTX 4090"}})
    soup = render(cat)
    sel = select(soup, "gpu_type")
    opts = sel.find_all("option")
    assert [(o["value"], o.get("data-backend")) for o in opts] == [
        ("", None), ("a100", "cluster"), ("mig-1g", "cluster"), ("a100", "lab"), ("rtx", "lab"),
    ]
    assert opts[0].get_text() == "Any GPU" and opts[0].has_attr("selected")
    # without JavaScript the backend's name says which is which; the script shows data-label
    assert opts[1].get_text() == "NVIDIA A100 80GB (GPU cluster)" and opts[1]["data-label"] == "NVIDIA A100 80GB"
    assert opts[4].get_text() == "RTX 4090 (Lab hosts)"
    assert soup.find("label", attrs={"for": sel["id"]}).get_text() == "GPU type"


def test_gpu_type_of_the_selected_backend_only_needs_no_backend_name():
    soup = render(make_catalog(gpu_types=CLUSTER_TYPES), values={"backend": "cluster", "gpus": 1, "gpu_type": "mig-1g"})
    assert option(soup, "gpu_type", "a100").get_text() == "NVIDIA A100 80GB"
    assert selected_value(soup, "gpu_type") == "mig-1g"
    soup = render(make_catalog(gpu_types=CLUSTER_TYPES), values={"backend": "lab"})
    assert option(soup, "gpu_type", "a100").get_text() == "NVIDIA A100 80GB (GPU cluster)"


def test_chosen_gpu_type_is_selected_on_its_backend():
    cat = make_catalog(gpu_types={**CLUSTER_TYPES, "lab": {"a100": "A100 (lab)"}})
    soup = render(cat, values={"backend": "lab", "gpus": 1, "gpu_type": "a100"})
    chosen = [o for o in select(soup, "gpu_type").find_all("option") if o.has_attr("selected")]
    assert [(o["value"], o["data-backend"]) for o in chosen] == [("a100", "lab")]


def test_gpu_type_error_next_to_the_field_and_unknown_value_echoed():
    cat = make_catalog(gpu_types=CLUSTER_TYPES)
    soup = render(cat, values={"backend": "cluster", "gpus": 1, "gpu_type": "h100"},
                  errors={"gpu_type": "unknown GPU type 'h100'; choose one of: a100, mig-1g"})
    sel = select(soup, "gpu_type")
    assert "is-invalid" in sel["class"]
    assert sel.find_next_sibling(class_="invalid-feedback").get_text().startswith("unknown GPU type")
    echoed = option(soup, "gpu_type", "h100")
    assert echoed.has_attr("selected") and echoed.get_text() == "h100 (not available)"


@pytest.mark.parametrize("payload", HOSTILE)
def test_gpu_type_texts_and_values_are_escaped(payload):
    cat = make_catalog(gpu_types={"cluster": {"a100": payload}})
    html = render_form(catalog=cat, groups=[], capacity={}, values={"gpu_type": payload, "gpus": 1},
                       errors={"gpu_type": payload})
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("img") is None and "<img" not in html and "<script>alert" not in html
    assert option(soup, "gpu_type", "a100")["data-label"] == payload
    assert option(soup, "gpu_type", payload).get_text() == f"{payload} (not available)"


def test_profile_fixing_a_gpu_type_lists_it_and_drops_the_field_without_javascript():
    p = profile("mig", {"backend": "cluster", "image": "pytorch", "gpus": 1, "gpu_type": "mig-1g"})
    cat = make_catalog(profiles=[p], gpu_types=CLUSTER_TYPES)
    soup = render(cat, values={"profile": "mig"})
    card = soup.find("input", attrs={"name": "profile", "value": "mig"}).find_parent("label")
    assert "MIG 1g.10gb" in card.get_text()
    assert "gpu_type" in soup.find("input", attrs={"name": "_fixed.mig"})["value"].split()
    data = submitted(soup)
    data["gpu_type"] = ["a100"]  # the visible select, still submitted without JavaScript
    options = parse_form(data)
    assert "gpu_type" not in options
    assert build_request(options, cat, []).gpu_type == "mig-1g"


def test_gpu_type_round_trip_without_javascript():
    cat = make_catalog(gpu_types=CLUSTER_TYPES)
    values = {"backend": "cluster", "image": "pytorch", "gpus": 1, "gpu_memory": 0, "gpu_type": "a100"}
    options = parse_form(submitted(render(cat, values=values)))
    assert options == values
    assert build_request(options, cat, []).gpu_type == "a100"
    # "Any GPU" is a choice of its own: kept as "", so a default type does not apply
    cat = make_catalog(gpu_types=CLUSTER_TYPES, defaults={"backend": "cluster", "gpus": 1, "gpu_type": "a100"})
    soup = render(cat)
    assert selected_value(soup, "gpu_type") == "a100"
    data = submitted(soup)
    data["gpu_type"] = [""]
    options = parse_form(data)
    assert options["gpu_type"] == ""
    assert build_request(options, cat, []).gpu_type is None


@pytest.mark.parametrize(
    "formdata, expected",
    [
        ({"gpu_type": ["a100"]}, {"gpu_type": "a100"}),
        ({"gpu_type": [""]}, {"gpu_type": ""}),
        ({"gpu_type": []}, {}),
        ({"profile": ["p"], "_fixed.p": ["gpu_type"], "gpu_type": ["a100"]}, {"profile": "p"}),
    ],
)
def test_parse_form_gpu_type(formdata, expected):
    assert parse_form(formdata) == expected


def test_script_shows_gpu_types_per_backend():
    js = (render_module._HERE / "static" / "form.js").read_text()
    assert '"gpu_type"' in js and "data-backend" in js


# --------------------------------------------------------------------------- host

LAB_HOSTS = {"lab": {"a": "a (GPUs 0, 1)", "b": "b"}}


def test_no_host_field_when_no_backend_offers_hosts():
    assert select(render(), "host") is None
    # nor when the only backend offering hosts is not for this user
    cat = make_catalog(host_choices=LAB_HOSTS, default_policy=policy(backends=["cluster", "hub"]))
    assert select(render(cat), "host") is None


def test_host_select_lists_best_fit_first_then_each_backends_hosts():
    cat = make_catalog(host_choices={**LAB_HOSTS, "cluster": {"n1": "node n1"}})
    soup = render(cat, values={"backend": "lab"})
    sel = select(soup, "host")
    opts = sel.find_all("option")
    assert [(o["value"], o.get("data-backend")) for o in opts] == [
        ("", None), ("n1", "cluster"), ("a", "lab"), ("b", "lab"),
    ]
    assert opts[0].get_text() == "Any host (best fit)" and opts[0].has_attr("selected")
    # without JavaScript the backend's name says which is which; the script shows data-label
    assert opts[2].get_text() == "a (GPUs 0, 1) (Lab hosts)" and opts[2]["data-label"] == "a (GPUs 0, 1)"
    assert soup.find("label", attrs={"for": sel["id"]}).get_text() == "Host"
    # right after "Where to run"
    fields = [d["data-gs-field"] for d in soup.select(".gs-fields > [data-gs-field]")]
    assert fields[:2] == ["backend", "host"]


def test_host_of_the_only_backend_with_hosts_selected_needs_no_backend_name():
    soup = render(make_catalog(host_choices=LAB_HOSTS), values={"backend": "lab", "host": "b"})
    assert option(soup, "host", "a").get_text() == "a (GPUs 0, 1)"
    assert selected_value(soup, "host") == "b"
    soup = render(make_catalog(host_choices=LAB_HOSTS), values={"backend": "cluster"})
    assert option(soup, "host", "a").get_text() == "a (GPUs 0, 1) (Lab hosts)"


def test_host_error_next_to_the_field_and_unknown_value_echoed():
    cat = make_catalog(host_choices=LAB_HOSTS)
    soup = render(cat, values={"backend": "lab", "host": "z"}, errors={"host": "unknown host 'z'; choose one of: a, b"})
    sel = select(soup, "host")
    assert "is-invalid" in sel["class"]
    assert sel.find_next_sibling(class_="invalid-feedback").get_text().startswith("unknown host")
    echoed = option(soup, "host", "z")
    assert echoed.has_attr("selected") and echoed.get_text() == "z (not available)"


@pytest.mark.parametrize("payload", HOSTILE)
def test_host_texts_and_values_are_escaped(payload):
    cat = make_catalog(host_choices={"lab": {"a": payload}})
    html = render_form(catalog=cat, groups=[], capacity={}, values={"host": payload}, errors={"host": payload})
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("img") is None and "<img" not in html and "<script>alert" not in html
    assert option(soup, "host", "a")["data-label"] == payload
    assert option(soup, "host", payload).get_text() == f"{payload} (not available)"


def test_profile_fixing_a_host_lists_it_and_drops_the_field_without_javascript():
    p = profile("on-a", {"backend": "lab", "image": "pytorch", "host": "a"})
    cat = make_catalog(profiles=[p], host_choices=LAB_HOSTS)
    soup = render(cat, values={"profile": "on-a"})
    card = soup.find("input", attrs={"name": "profile", "value": "on-a"}).find_parent("label")
    assert "on a (GPUs 0, 1)" in card.get_text()
    assert "host" in soup.find("input", attrs={"name": "_fixed.on-a"})["value"].split()
    data = submitted(soup)
    data["host"] = ["b"]  # the visible select, still submitted without JavaScript
    options = parse_form(data)
    assert "host" not in options
    assert build_request(options, cat, []).host == "a"


def test_host_round_trip_without_javascript():
    cat = make_catalog(host_choices=LAB_HOSTS)
    values = {"backend": "lab", "host": "b", "image": "pytorch", "gpus": 1, "gpu_memory": 0}
    options = parse_form(submitted(render(cat, values=values)))
    assert options == values
    assert build_request(options, cat, []).host == "b"
    # "Any host" is a choice of its own: kept as "", so a default host does not apply
    cat = make_catalog(host_choices=LAB_HOSTS, defaults={"backend": "lab", "host": "a"})
    soup = render(cat)
    assert selected_value(soup, "host") == "a"
    data = submitted(soup)
    data["host"] = [""]
    options = parse_form(data)
    assert options["host"] == ""
    assert build_request(options, cat, []).host is None
    # on a backend without host choice the untouched select ("Any host") is no error
    cat = make_catalog(host_choices=LAB_HOSTS)
    options = parse_form(submitted(render(cat, values={"backend": "hub", "image": "scipy"})))
    assert options["host"] == "" and build_request(options, cat, []).host is None


@pytest.mark.parametrize(
    "formdata, expected",
    [
        ({"host": ["a"]}, {"host": "a"}),
        ({"host": [""]}, {"host": ""}),
        ({"host": []}, {}),
        ({"profile": ["p"], "_fixed.p": ["host"], "host": ["a"]}, {"profile": "p"}),
        ({"mounts-0-host": ["files"], "mounts-0-path": ["/x"], "mounts-0-type": ["ssh"]},
         {"mounts": [{"host": "files", "path": "/x", "type": "ssh", "read_only": False}]}),
    ],
)
def test_parse_form_host(formdata, expected):
    assert parse_form(formdata) == expected


def test_script_shows_hosts_per_backend():
    js = (render_module._HERE / "static" / "form.js").read_text()
    assert '"host"' in js and "function hosts(" in js
