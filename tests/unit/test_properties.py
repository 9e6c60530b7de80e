"""Property-based: any user_options yields a LaunchRequest that obeys every rule, or an
OptionsError naming fields — never any other exception.

Example counts come from the hypothesis profile loaded in conftest.py ("ci" when $CI is set,
"dev" otherwise).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from gridspawner.catalog import Catalog
from gridspawner.fields import CHOICE_NAMES as FIELDS
from gridspawner.request import LaunchRequest, OptionsError, build_request

KNOWN = set(FIELDS) | {"profile"}
GROUPS = ["students", "ml101", "staff", "other"]


TYPES = {"a100": "NVIDIA A100 80GB", "mig-1g": "MIG 1g.10gb"}
HOSTS = {"a": "a (GPUs 0, 1)", "b": "b"}


@pytest.fixture(scope="module")
def pcat(standard_config_factory, build_with_fake_kinds) -> Catalog:
    from gridspawner.backends.base import Backend

    raw = standard_config_factory()
    # gpu-hosts offers GPU types (the fake kinds read them from their settings)
    raw["backends"]["gpu-hosts"]["gpu_types"] = dict(TYPES)
    # ... and lets users pick a host (likewise read from the settings)
    raw["backends"]["gpu-hosts"]["host_choices"] = dict(HOSTS)
    raw["profiles"]["pinned"] = {
        "groups": ["ml101", "staff"],
        "values": {"backend": "gpu-hosts", "image": "pytorch", "host": "b"},
        "changeable": ["gpus"],
    }
    raw["profiles"]["mig"] = {
        "groups": ["ml101", "staff"],
        "values": {"backend": "gpu-hosts", "image": "pytorch", "gpus": 1, "gpu_type": "mig-1g"},
        "changeable": ["gpus"],
    }
    raw["profiles"]["typed"] = {
        "groups": ["students", "other"],
        "values": {"backend": "gpu-hosts", "image": "pytorch", "gpus": 1, "gpu_type": "a100"},
        "changeable": ["gpu_type", "backend", "gpus", "host"],
        "max_gpus": 2,
    }
    raw["profiles"]["typed"]["values"]["host"] = "a"
    # widen the rule set: a profile fixing only an image, one with every field changeable
    raw["profiles"]["img-only"] = {"groups": ["staff", "students"], "values": {"image": "ssh-only"}}
    raw["profiles"]["flex"] = {
        "groups": ["students", "other"],
        "values": {"backend": "here", "image": "base", "gpus": 0, "gpu_memory": 16, "memory": 8},
        "changeable": ["backend", "image", "gpus", "gpu_memory"],
        "max_gpus": 3,
        "max_runtime": 600,
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            Backend,
            "gpu_type_choices",
            classmethod(lambda cls, s: dict(s.get("gpu_types", {})) if isinstance(s, dict) else {}),
        )
        mp.setattr(
            Backend,
            "host_choices",
            classmethod(lambda cls, s: dict(s.get("host_choices", {})) if isinstance(s, dict) else {}),
        )
        return build_with_fake_kinds(**raw)


# ------------------------------------------------------------------ strategies
hostile_text = st.one_of(
    st.text(),  # any unicode, control characters included
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=5),
    st.sampled_from(["$(touch /tmp/x)", "a;b", "`id`", "a\nb", "\x00", "here\n", " here", "\u202e", "{{7*7}}"]),
    st.integers(min_value=5_000, max_value=20_000).map(lambda n: "x" * n),
    st.text(min_size=1, max_size=3).map(lambda s: s * 4_000),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**20, max_value=10**40),
    st.integers(0, 3).map(lambda k: 10 ** (5000 + k)),  # repr() of these raises on Python >= 3.11
    st.floats(),  # nan and inf included
    hostile_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def field_values(cat_choices: list) -> st.SearchStrategy:
    # valid values four times as likely as the rest, so that many requests succeed
    valid = st.sampled_from(cat_choices)
    return st.one_of(valid, valid, valid, valid, json_values)


def options_strategy(cat: Catalog) -> st.SearchStrategy:
    fields = {
        "profile": field_values([*cat.profiles, None, "", "nope", "course "]),
        "backend": field_values([*cat.backends, "nowhere"]),
        "image": field_values([*cat.images, "nothing"]),
        "gpus": field_values([0, 1, 2, 3, 4, 5, -1, 1.5, 2.0]),
        "gpu_memory": field_values([*cat.gpu_memory_classes, 20, 24.0]),
        "gpu_type": field_values([*TYPES, None, "", "h100"]),
        "host": field_values([*HOSTS, None, "", "z"]),
        "cpu": field_values([*cat.cpu_choices, None, 0, 2.0, 3]),
        "memory": field_values([*cat.memory_choices, None, 0, 8.0]),
        "mounts": field_values([[], None]),
    }
    extras = st.one_of(
        st.just({}),
        st.just({}),
        st.just({}),
        st.dictionaries(st.one_of(st.text(max_size=10), hostile_text), json_values, min_size=1, max_size=2),
    )
    dicts = st.builds(lambda extra, opts: {**extra, **opts}, extras, st.fixed_dictionaries({}, optional=fields))
    return st.one_of(*[dicts] * 9, json_values)


groups_strategy = st.lists(st.sampled_from(GROUPS), max_size=3, unique=True)
# values a form would send: valid on their own, often not for this user
valid_options = st.fixed_dictionaries(
    {},
    optional={
        "backend": st.sampled_from(["here", "gpu-hosts"]),
        "image": st.sampled_from(["base", "pytorch", "ssh-only"]),
        "gpus": st.integers(0, 4),
        "gpu_memory": st.sampled_from([0, 16, 24, 80]),
        "gpu_type": st.sampled_from(["a100", "mig-1g", ""]),
        "host": st.sampled_from(["a", "b", ""]),
        "cpu": st.sampled_from([1, 2, 4, None]),
        "memory": st.sampled_from([4, 8, 16, None]),
    },
)
# a chosen profile fixes most fields: pick one, and mostly leave the fixed fields alone
profile_options = st.builds(
    lambda profile, rest: {"profile": profile, **rest},
    st.sampled_from(["course", "open", "img-only", "flex", "mig", "typed", "pinned"]),
    st.fixed_dictionaries(
        {},
        optional={
            "gpus": st.integers(0, 4),
            "gpu_memory": st.sampled_from([0, 16, 24, 80]),
            "cpu": st.sampled_from([1, 2, 4, None]),
            "backend": st.sampled_from(["here", "gpu-hosts"]),
            "gpu_type": st.sampled_from(["a100", "mig-1g", ""]),
            "host": st.sampled_from(["a", "b", ""]),
        },
    ),
)


# ------------------------------------------------------------------ the rules, re-checked
def check_request(req: LaunchRequest, options: Any, cat: Catalog, groups: list[str]) -> None:
    assert isinstance(options, dict) or options is None
    options = options or {}
    assert set(options) <= KNOWN, "unknown keys must be an error"
    policy = cat.policy_for(groups)

    # backend / image
    assert isinstance(req.backend, str) and req.backend in cat.backends
    assert req.backend_kind == cat.backends[req.backend].kind
    assert isinstance(req.image, str) and req.image in cat.images
    assert cat.images[req.image].runs_on(req.backend_kind)
    assert req.image_settings == cat.images[req.image].per_kind[req.backend_kind]

    # numbers
    assert type(req.gpus) is int and 0 <= req.gpus <= cat.max_gpus
    assert type(req.gpu_memory) is int and req.gpu_memory in cat.gpu_memory_classes
    if req.gpus == 0:
        assert req.gpu_memory == 0
        assert req.gpu_type is None
    assert req.gpu_type is None or req.gpu_type in cat.backends[req.backend].gpu_types
    assert req.host is None or req.host in cat.backends[req.backend].host_choices
    assert req.cpu is None or (not isinstance(req.cpu, bool) and req.cpu in cat.cpu_choices)
    assert req.memory is None or (type(req.memory) is int and req.memory in cat.memory_choices)
    assert req.mounts == ()

    profile = cat.profiles[req.profile] if req.profile is not None else None
    if profile is None:
        assert options.get("profile") in (None, "")
        assert policy.free_choice, "without free choice a profile is required"
        assert policy.allows_backend(req.backend)
        assert policy.allows_image(req.image)
        assert req.gpus <= policy.max_gpus
        assert req.max_runtime == cat.max_runtime
    else:
        assert options.get("profile") == req.profile
        assert profile.visible_to(groups)
        values = profile.values
        assert policy.allows_backend(req.backend) or values.get("backend") == req.backend
        assert policy.allows_image(req.image) or values.get("image") == req.image
        limit = profile.max_gpus if profile.max_gpus is not None else max(policy.max_gpus, values.get("gpus", 0))
        assert req.gpus <= limit
        for f, v in values.items():
            if f in profile.changeable:
                continue
            got = getattr(req, f)
            if f in ("gpu_memory", "gpu_type") and req.gpus == 0:
                continue  # reset: no GPU, no VRAM minimum or GPU type
            if f in ("cpu", "memory") and v == 0:
                continue
            assert got == v, f"profile {profile.key} fixes {f}={v!r}, request has {got!r}"
        assert req.max_runtime == (profile.max_runtime or cat.max_runtime)

    # what the user set (and was allowed to set) is what they get, never silently replaced
    for f in ("backend", "image", "gpus", "gpu_memory", "gpu_type", "host", "cpu", "memory"):
        if f not in options:
            continue
        v = options[f]
        if f in ("gpu_memory", "gpu_type") and req.gpus == 0:
            continue
        if f == "gpu_type" and v in (None, ""):
            assert req.gpu_type is None  # "any GPU"
            continue
        if f == "host" and v in (None, ""):
            assert req.host is None  # "any host": best fit
            continue
        if f in ("cpu", "memory") and (v is None or v == 0):
            assert getattr(req, f) is None or (profile is not None and f in profile.values)
            continue
        assert getattr(req, f) == v


def check_error(err: OptionsError, options: Any) -> None:
    assert err.errors, "an OptionsError names at least one field"
    unknown = set(options) - KNOWN if isinstance(options, dict) else set()
    for key, message in err.errors.items():
        assert isinstance(key, str) and isinstance(message, str) and message
        assert len(key) <= 60
        assert len(message) <= 300, message
        assert "\n" not in message and "\x00" not in message
        if key in KNOWN or key == "user_options":
            continue
        # any other key names an unknown option the user sent (possibly quoted/truncated)
        assert unknown, f"error key {key!r} names no field"
    if not isinstance(options, dict) and options is not None:
        assert list(err.errors) == ["user_options"]
    if unknown:
        # each unknown key is named (two long ones may truncate to the same name)
        assert 1 <= len([k for k in err.errors if k not in KNOWN]) <= len(unknown)


# ------------------------------------------------------------------ the properties
@given(data=st.data(), groups=groups_strategy)
def test_any_options_request_or_field_error(pcat, data, groups):
    options = data.draw(st.one_of(options_strategy(pcat), profile_options, valid_options), label="options")
    before = copy.deepcopy(options)
    try:
        req = build_request(options, pcat, groups)
    except OptionsError as e:
        note(f"errors: {e.errors}")
        event("error: " + ",".join(sorted(k if k in KNOWN or k == "user_options" else "<unknown>" for k in e.errors)))
        check_error(e, options)
    else:
        note(f"request: {req}")
        event(
            f"request, profile={req.profile}, gpus>0={req.gpus > 0}, gpu_type={req.gpu_type is not None}, "
            f"host={req.host is not None}"
        )
        check_request(req, options, pcat, groups)
        # the request, sent back as options, gives the same request (REST clients echo it)
        echo: dict[str, Any] = {"backend": req.backend, "image": req.image, "gpus": req.gpus, "host": req.host or ""}
        if req.gpus:
            echo["gpu_memory"] = req.gpu_memory
            echo["gpu_type"] = req.gpu_type or ""
        for f in ("cpu", "memory"):
            if getattr(req, f) is not None:
                echo[f] = getattr(req, f)
        if req.profile:
            echo["profile"] = req.profile
        assert build_request(echo, pcat, groups) == req
    assert _same(options, before), "build_request must not change user_options"


def _same(a: Any, b: Any) -> bool:
    """Deep equality where nan equals nan (and a huge int is never printed)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@given(groups=groups_strategy)
def test_defaults_are_valid_for_free_choice_users(pcat, groups):
    """A user who may choose freely and sends nothing gets a request, never an error."""
    policy = pcat.policy_for(groups)
    if not policy.free_choice:
        with pytest.raises(OptionsError) as info:
            build_request({}, pcat, groups)
        assert list(info.value.errors) == ["profile"]
        return
    req = build_request({}, pcat, groups)
    check_request(req, {}, pcat, groups)


@given(groups=groups_strategy, data=st.data())
def test_every_visible_profile_starts_with_no_changes(pcat, groups, data):
    """Picking a visible profile and changing nothing gives that profile's request."""
    visible = pcat.profiles_for(groups)
    if not visible:
        return
    profile = data.draw(st.sampled_from(visible))
    try:
        req = build_request({"profile": profile.key}, pcat, groups)
    except OptionsError as e:
        # only a profile whose fixed image no backend of the user's may run can fail
        assert "image" in profile.values and "backend" not in profile.values, e.errors
        assert set(e.errors) == {"image"}
    else:
        check_request(req, {"profile": profile.key}, pcat, groups)
