"""build_request: bad input is a field error and nothing else; good input a LaunchRequest."""

from __future__ import annotations

import copy
import math

import pytest

from gridspawner.catalog import build_catalog
from gridspawner.fields import CHOICE_NAMES as FIELDS
from gridspawner.request import LaunchRequest, OptionsError, build_request, default_values, shown

pytestmark = pytest.mark.usefixtures("fake_kinds")

STAFF = ["staff"]
STUDENTS = ["students"]
ML101 = ["ml101"]
NOBODY: list[str] = []

STRING_FIELDS = ("profile", "backend", "image", "gpus", "gpu_memory", "cpu", "memory", "mounts")
MAX_MESSAGE = 200


def errors_of(options, catalog, groups=STAFF) -> dict[str, str]:
    with pytest.raises(OptionsError) as info:
        build_request(options, catalog, groups)
    errors = info.value.errors
    assert errors, "an OptionsError must name at least one field"
    for key, message in errors.items():
        assert isinstance(key, str) and isinstance(message, str) and message
    return errors


def only_error(options, catalog, field, groups=STAFF) -> str:
    errors = errors_of(options, catalog, groups)
    assert list(errors) == [field], errors
    return errors[field]


def assert_short_and_safe(message: str, bad: str | None = None) -> None:
    assert len(message) <= MAX_MESSAGE, message
    assert "\n" not in message and "\x00" not in message and "\r" not in message
    if bad is not None and len(bad) > 60:
        assert bad not in message  # quoted truncated, never whole


# ------------------------------------------------------------------ good requests
def test_empty_options_take_defaults(catalog):
    req = build_request({}, catalog, STAFF)
    assert req == LaunchRequest(
        backend="here",
        backend_kind="local",
        image="base",
        gpus=0,
        gpu_memory=0,
        max_runtime=2 * 86400,
        image_settings={"cmd": ["jupyterhub-singleuser"]},  # what "base" runs on kind local
    )
    assert build_request(None, catalog, STAFF) == req


def test_full_request(catalog):
    opts = {"backend": "gpu-hosts", "image": "ssh-only", "gpus": 2, "gpu_memory": 24, "cpu": 2, "memory": 8}
    req = build_request(opts, catalog, STAFF)
    assert (req.backend, req.backend_kind, req.image) == ("gpu-hosts", "ssh", "ssh-only")
    assert (req.gpus, req.gpu_memory, req.cpu, req.memory) == (2, 24, 2, 8)
    assert req.profile is None and req.mounts == ()
    assert req.image_settings == {"env": {"X": "1"}}
    assert req.summary() == "backend=gpu-hosts image=ssh-only gpus=2 gpu_memory>=24GB cpu=2 memory=8GB"


def test_request_is_frozen(catalog):
    req = build_request({}, catalog, STAFF)
    with pytest.raises(AttributeError):
        req.gpus = 4  # type: ignore[misc]


def test_groups_may_be_any_iterable(catalog):
    assert build_request({"gpus": 3}, catalog, iter(["staff"])).gpus == 3
    assert build_request({"gpus": 3}, catalog, ("students", "staff")).gpus == 3


def test_missing_keys_take_catalog_defaults(catalog):
    req = build_request({"gpus": 1}, catalog, STAFF)
    assert (req.backend, req.image, req.gpus, req.gpu_memory, req.cpu, req.memory) == ("here", "base", 1, 0, None, None)


def test_gpu_memory_reset_when_no_gpu(catalog):
    assert build_request({"gpus": 0, "gpu_memory": 24}, catalog, STAFF).gpu_memory == 0
    assert build_request({"gpus": 1, "gpu_memory": 24}, catalog, STAFF).gpu_memory == 24


@pytest.mark.parametrize("field", ["cpu", "memory"])
@pytest.mark.parametrize("value", [None, 0])
def test_optional_fields_unset(catalog, field, value):
    assert getattr(build_request({field: value}, catalog, STAFF), field) is None


def test_mounts_empty_is_fine(catalog):
    assert build_request({"mounts": []}, catalog, STAFF).mounts == ()
    assert build_request({"mounts": None}, catalog, STAFF).mounts == ()


def test_default_image_follows_backend(fake_kinds, config):
    # The catalog's default image does not run on the backend the user picked: the
    # default must follow the backend instead of producing an error.
    config["default_options"] = {"backend": "gpu-hosts", "image": "ssh-only"}
    cat = build_catalog(**config)
    assert build_request({}, cat, STAFF).image == "ssh-only"
    # the user picked a backend only: the default image is not theirs to be blamed for
    req = build_request({"backend": "here"}, cat, STAFF)
    assert (req.backend, req.image) == ("here", "base")
    # an image the user did pick is checked as given
    only_error({"backend": "here", "image": "ssh-only"}, cat, "image")
    # and the default backend follows an image the user picked
    config["default_options"] = {"backend": "here", "image": "base"}
    cat = build_catalog(**config)
    req = build_request({"image": "ssh-only"}, cat, STAFF)
    assert (req.backend, req.image) == ("gpu-hosts", "ssh-only")


def test_max_runtime_without_profile(catalog):
    assert build_request({}, catalog, STAFF).max_runtime == 2 * 86400


def test_no_max_runtime(fake_kinds, config):
    config["max_runtime"] = 0
    assert build_request({}, build_catalog(**config), STAFF).max_runtime is None


# ------------------------------------------------------------------ default_values
def test_default_values_follow_policy(catalog):
    assert default_values(catalog, catalog.policy_for(STAFF)) == {
        "backend": "here",
        "image": "base",
        "gpus": 0,
        "gpu_memory": 0,
        "gpu_type": None,
        "host": None,
        "cpu": None,
        "memory": None,
    }
    ml = default_values(catalog, catalog.policy_for(ML101))
    assert (ml["backend"], ml["image"]) == ("gpu-hosts", "pytorch")


def test_default_values_capped_gpus(fake_kinds, config):
    config["default_options"]["gpus"] = 3
    cat = build_catalog(**config)
    assert default_values(cat, cat.policy_for(STAFF))["gpus"] == 3
    assert default_values(cat, cat.policy_for(STUDENTS))["gpus"] == 1
    assert default_values(cat, cat.policy_for(NOBODY))["gpus"] == 0
    # defaults never produce a request the user is refused
    assert build_request({}, cat, STUDENTS).gpus == 1


# ------------------------------------------------------------------ backend / image
@pytest.mark.parametrize("value", ["nowhere", "HERE", "here ", ""])
def test_unknown_backend(catalog, value):
    assert_short_and_safe(only_error({"backend": value}, catalog, "backend"))


def test_backend_not_allowed_for_group(catalog):
    msg = only_error({"backend": "gpu-hosts"}, catalog, "backend", STUDENTS)
    assert "not available" in msg


@pytest.mark.parametrize("value", ["nothing", "Base", "jupyter/base-notebook:latest", ""])
def test_unknown_image(catalog, value):
    only_error({"image": value}, catalog, "image")


def test_image_not_allowed_for_group(catalog):
    assert "not available" in only_error({"image": "pytorch"}, catalog, "image", STUDENTS)
    assert "not available" in only_error({"image": "ssh-only"}, catalog, "image", NOBODY)


def test_image_not_runnable_on_backend_kind(catalog):
    assert "cannot run" in only_error({"backend": "here", "image": "ssh-only"}, catalog, "image")
    assert build_request({"backend": "gpu-hosts", "image": "ssh-only"}, catalog, STAFF).image == "ssh-only"


def test_backend_and_image_errors_together(catalog):
    errors = errors_of({"backend": "nowhere", "image": "nothing", "gpus": -1}, catalog)
    assert set(errors) == {"backend", "image", "gpus"}


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize("value", [-1, 1.5, 2.0, "2", "abc", True, False, None, [], [1], {}, {"n": 1}, math.nan, math.inf])
def test_bad_gpus(catalog, value):
    only_error({"gpus": value}, catalog, "gpus")


@pytest.mark.parametrize("groups, limit", [(STUDENTS, 1), (NOBODY, 0), (ML101 + STUDENTS, 2), (STAFF, 4)])
def test_gpus_above_group_max(catalog, groups, limit):
    assert build_request({"gpus": limit}, catalog, groups).gpus == limit
    msg = only_error({"gpus": limit + 1}, catalog, "gpus", groups)
    assert str(limit) in msg


def test_gpus_never_above_catalog_max(catalog):
    only_error({"gpus": 5}, catalog, "gpus")
    only_error({"gpus": 10**30}, catalog, "gpus")


@pytest.mark.parametrize("value", [20, 24.0, "24", True, -16, None, [24], {}, pytest.param(10**5000, id="huge-int")])
def test_bad_gpu_memory(catalog, value):
    msg = only_error({"gpus": 1, "gpu_memory": value}, catalog, "gpu_memory")
    assert_short_and_safe(msg)


def test_gpu_memory_checked_even_without_gpu(catalog):
    # an invalid value is an error, whether or not it would have been used
    only_error({"gpus": 0, "gpu_memory": 20}, catalog, "gpu_memory")


@pytest.mark.parametrize("value", [3, 8, -1, "2", True, [2], {}, math.nan])
def test_bad_cpu(catalog, value):
    only_error({"cpu": value}, catalog, "cpu")


@pytest.mark.parametrize("value", [5, 8.0, "8", False, [8], {}, 32])
def test_bad_memory(catalog, value):
    only_error({"memory": value}, catalog, "memory")


def test_cpu_memory_when_not_offered(fake_kinds, config):
    config["cpu_choices"] = []
    config["memory_choices"] = []
    cat = build_catalog(**config)
    only_error({"cpu": 2}, cat, "cpu")
    only_error({"memory": 8}, cat, "memory")
    assert build_request({"cpu": None, "memory": 0}, cat, STAFF).cpu is None


# ------------------------------------------------------------------ wrong JSON types
@pytest.mark.parametrize(
    "field, value",
    [
        (f, v)
        for f in ("backend", "image", "gpus", "gpu_memory", "cpu", "memory", "mounts", "profile")
        for v in (["here"], {"a": "b"}, [], {}, 3.25, True)
        if not (f == "mounts" and v == [])  # an empty mounts list is valid
    ],
)
def test_wrong_json_type_every_field(catalog, field, value):
    errors = errors_of({field: value}, catalog)
    assert list(errors) == [field]
    assert_short_and_safe(errors[field])


@pytest.mark.parametrize("field", ["backend", "image", "gpus", "gpu_memory"])
def test_null_for_required_fields(catalog, field):
    only_error({field: None}, catalog, field)


@pytest.mark.parametrize(
    "value",
    [
        "x" * 10_000,
        "here\n",
        "a\nb",
        "a\x00b",
        "\x1b[31mred",
        "ünïcødé 🚀",
        "\u202egpu",
        "$(touch /tmp/x)",
        "here; rm -rf /",
        "`id`",
        "' OR 1=1 --",
        "<script>alert(1)</script>",
        "{{7*7}}",
        "../../etc/passwd",
        "-rf",
        " ",
    ],
)
@pytest.mark.parametrize("field", STRING_FIELDS)
def test_hostile_strings_every_field(catalog, field, value):
    errors = errors_of({field: value}, catalog)
    assert list(errors) == [field], errors
    assert_short_and_safe(errors[field], value)


def test_bad_value_quoted_truncated(catalog):
    value = "$(touch /tmp/x)" + "y" * 500
    msg = only_error({"backend": value}, catalog, "backend")
    assert "'$(touch /tmp/x)" in msg  # quoted
    assert "…" in msg
    assert len(msg) < 100


def test_shown():
    assert shown("abc") == "'abc'"
    assert shown("a\nb\x00") == "'a\\nb\\x00'"
    assert len(shown("z" * 10_000)) <= 60
    assert len(shown(list(range(10_000)))) <= 60
    assert len(shown(10**5000)) <= 60  # repr() of a huge int raises ValueError on 3.11+


# ------------------------------------------------------------------ the options object
@pytest.mark.parametrize("options", [[], ["backend", "here"], "backend=here", 5, True, ("gpus", 1)])
def test_user_options_not_a_dict(catalog, options):
    assert list(errors_of(options, catalog)) == ["user_options"]


def test_unknown_keys_named(catalog):
    errors = errors_of({"colour": "red", "GPUS": 2, "gpus": 1}, catalog)
    assert set(errors) == {"colour", "GPUS"}
    assert "gpus" in errors["colour"]  # lists what is expected


def test_unknown_key_with_other_errors(catalog):
    assert set(errors_of({"colour": 1, "gpus": -1}, catalog)) == {"colour", "gpus"}


@pytest.mark.parametrize("key", ["k" * 10_000, "a\nb", "\x00", "$(id)", 5, ("a", "b")])
def test_hostile_unknown_keys(catalog, key):
    errors = errors_of({key: 1}, catalog)
    (name,) = errors
    assert len(name) <= 60
    assert "\n" not in name and "\x00" not in name
    assert_short_and_safe(errors[name])


def test_unknown_key_and_bad_profile(catalog):
    errors = errors_of({"colour": 1, "profile": "nope"}, catalog)
    assert set(errors) == {"colour", "profile"}


# ------------------------------------------------------------------ profiles
def test_profile_values_apply(catalog):
    req = build_request({"profile": "course"}, catalog, ML101)
    assert (req.backend, req.backend_kind, req.image, req.gpus, req.gpu_memory) == ("gpu-hosts", "ssh", "pytorch", 1, 16)
    assert req.profile == "course"
    assert req.max_runtime == 4 * 3600


def test_profile_without_max_runtime_uses_catalog(catalog):
    req = build_request({"profile": "open"}, catalog, STUDENTS)
    assert req.max_runtime == 2 * 86400
    assert (req.backend, req.image, req.gpus, req.profile) == ("here", "base", 0, "open")


@pytest.mark.parametrize(
    "field, value", [("gpu_memory", 24), ("backend", "here"), ("image", "base"), ("gpu_memory", 0)]
)
def test_profile_fixed_field_cannot_change(catalog, field, value):
    msg = only_error({"profile": "course", field: value}, catalog, field, ML101)
    assert "fixed" in msg and "ML course" in msg


def test_profile_fixed_field_may_be_repeated(catalog):
    req = build_request(
        {"profile": "course", "backend": "gpu-hosts", "image": "pytorch", "gpu_memory": 16}, catalog, ML101
    )
    assert req.gpu_memory == 16


def test_profile_fixed_gpus(catalog):
    only_error({"profile": "open", "gpus": 1}, catalog, "gpus", STAFF)


def test_profile_changeable_fields(catalog):
    req = build_request({"profile": "course", "gpus": 2, "cpu": 4}, catalog, ML101)
    assert (req.gpus, req.cpu, req.gpu_memory) == (2, 4, 16)


@pytest.mark.parametrize(
    "options, field",
    [
        ({"gpus": 3}, "gpus"),  # above the profile's max_gpus
        ({"gpus": -1}, "gpus"),
        ({"gpus": "2"}, "gpus"),
        ({"cpu": 3}, "cpu"),
        ({"cpu": "4"}, "cpu"),
    ],
)
def test_profile_changeable_fields_validated(catalog, options, field):
    only_error({"profile": "course", **options}, catalog, field, ML101)


def test_profile_max_gpus_beats_group_max(catalog):
    # ml101 + students: group max 2; the profile's own cap is what applies to it
    assert build_request({"profile": "course", "gpus": 2}, catalog, ML101 + STUDENTS).gpus == 2


@pytest.mark.parametrize("groups", [STUDENTS, NOBODY, STAFF])
def test_profile_not_visible(catalog, groups):
    msg = only_error({"profile": "course"}, catalog, "profile", groups)
    assert "course" in msg
    assert "open" in msg  # offers what the user may pick


@pytest.mark.parametrize("value", ["nope", 1, ["course"], {"key": "course"}, True, "course\n"])
def test_bad_profile_value(catalog, value):
    assert_short_and_safe(only_error({"profile": value}, catalog, "profile", ML101))


def test_profile_error_stops_other_checks(catalog):
    # a bad profile makes every other field meaningless: only profile (and unknown keys) report
    assert set(errors_of({"profile": "nope", "gpus": -1}, catalog)) == {"profile"}


def test_no_free_choice_requires_profile(catalog):
    msg = only_error({}, catalog, "profile", ML101)
    assert "course" in msg
    only_error({"backend": "gpu-hosts", "image": "pytorch", "gpus": 1}, catalog, "profile", ML101)
    only_error({"profile": ""}, catalog, "profile", ML101)
    only_error({"profile": None}, catalog, "profile", ML101)


def test_no_free_choice_and_no_profile(fake_kinds, config):
    config["default_policy"] = {"free_choice": False}
    config["profiles"]["open"]["groups"] = ["staff"]
    cat = build_catalog(**config)
    assert "admin" in only_error({}, cat, "profile", NOBODY)


def test_free_choice_union(catalog):
    # ml101 alone must use a profile; with students the union allows free choice
    assert build_request({}, catalog, ML101 + STUDENTS).backend == "here"


def test_profile_may_use_backend_outside_group_policy(catalog):
    # "open" is visible to everyone; its fixed backend is allowed through the profile
    req = build_request({"profile": "open"}, catalog, ML101)
    assert req.backend == "here"


def test_profile_backend_only_picks_runnable_image(fake_kinds, config):
    config["profiles"]["ssh"] = {"values": {"backend": "gpu-hosts"}}
    config["default_options"] = {"backend": "here", "image": "base"}
    config["default_policy"]["images"] = ["ssh-only", "base"]
    config["images"]["base"].pop("ssh")
    cat = build_catalog(**config)
    req = build_request({"profile": "ssh"}, cat, NOBODY)
    assert (req.backend, req.image) == ("gpu-hosts", "ssh-only")


def test_profile_image_only_picks_runnable_backend(fake_kinds, config):
    # the catalog default backend ("here") cannot run the profile's image: the request must
    # not fail at spawn time for a preset the catalog accepted
    config["profiles"]["ssh-img"] = {"values": {"image": "ssh-only"}}
    config["default_policy"]["backends"] = "*"
    cat = build_catalog(**config)
    req = build_request({"profile": "ssh-img"}, cat, NOBODY)
    assert (req.backend, req.image) == ("gpu-hosts", "ssh-only")


# ------------------------------------------------------------------ mounts
@pytest.mark.parametrize("value", ["s3://bucket", 1, {"type": "s3"}, True])
def test_mounts_wrong_type(catalog, value):
    assert only_error({"mounts": value}, catalog, "mounts") == "must be a list of mount objects"


def test_mounts_not_enabled(catalog):
    message = only_error({"mounts": [{"type": "s3", "bucket": "b", "target": "data"}]}, catalog, "mounts")
    assert message == "data mounts are not enabled on this hub"


def test_fields_constant():
    assert set(FIELDS) == {"backend", "image", "gpus", "gpu_memory", "gpu_type", "host", "cpu", "memory", "mounts"}


def test_options_not_mutated(catalog):
    opts = {"profile": "course", "gpus": 2}
    before = copy.deepcopy(opts)
    build_request(opts, catalog, ML101)
    assert opts == before


# ------------------------------------------------------------------ gpu_type
def _offer_gpu_types(monkeypatch) -> None:
    """Let the fake kinds offer ``settings['gpu_types']`` (real kinds implement their own)."""
    from gridspawner.backends.base import Backend

    def choices(cls, settings):
        return dict(settings.get("gpu_types", {})) if isinstance(settings, dict) else {}

    monkeypatch.setattr(Backend, "gpu_type_choices", classmethod(choices))


TYPES = {"a100": "NVIDIA A100 80GB", "mig-1g": "MIG 1g.10gb"}
ON_HOSTS = {"backend": "gpu-hosts", "image": "pytorch", "gpus": 1}


@pytest.fixture
def typed(config, monkeypatch):
    _offer_gpu_types(monkeypatch)
    config["backends"]["gpu-hosts"]["gpu_types"] = dict(TYPES)
    return config


@pytest.fixture
def typed_catalog(typed):
    return build_catalog(**typed)


def test_gpu_type_is_a_field():
    assert "gpu_type" in FIELDS


def test_catalog_keeps_each_backends_gpu_types(typed_catalog):
    assert dict(typed_catalog.backends["gpu-hosts"].gpu_types) == TYPES
    assert dict(typed_catalog.backends["here"].gpu_types) == {}


def test_gpu_type_offered_by_the_backend(typed_catalog):
    req = build_request({**ON_HOSTS, "gpu_type": "mig-1g"}, typed_catalog, STAFF)
    assert req.gpu_type == "mig-1g"
    assert "gpu_type=mig-1g" in req.summary()
    assert build_request({**ON_HOSTS, "gpu_type": "a100", "gpu_memory": 80}, typed_catalog, STAFF).gpu_type == "a100"


@pytest.mark.parametrize("value", [None, ""])
def test_gpu_type_empty_means_any(typed_catalog, value):
    assert build_request({**ON_HOSTS, "gpu_type": value}, typed_catalog, STAFF).gpu_type is None
    assert build_request(ON_HOSTS, typed_catalog, STAFF).gpu_type is None


def test_unknown_gpu_type_is_a_field_error(typed_catalog):
    message = only_error({**ON_HOSTS, "gpu_type": "h100"}, typed_catalog, "gpu_type")
    assert message == "unknown GPU type 'h100'; choose one of: a100, mig-1g"


def test_gpu_type_on_a_backend_without_types(typed_catalog):
    message = only_error({"backend": "here", "gpus": 1, "gpu_type": "a100"}, typed_catalog, "gpu_type")
    assert message == "this backend offers no GPU type choice"


@pytest.mark.parametrize("bad", [3, ["a100"], {"a": 1}, True])
def test_gpu_type_must_be_a_name(typed_catalog, bad):
    message = only_error({**ON_HOSTS, "gpu_type": bad}, typed_catalog, "gpu_type")
    assert message.startswith("must be a GPU type name")
    assert_short_and_safe(message)


def test_hostile_gpu_type_is_quoted_briefly(typed_catalog):
    bad = "<script>" + "x" * 5000
    message = only_error({**ON_HOSTS, "gpu_type": bad}, typed_catalog, "gpu_type")
    assert_short_and_safe(message, bad)


@pytest.mark.parametrize("value", ["a100", "h100", 7, ""])
def test_gpu_type_without_gpus_is_dropped(typed_catalog, value):
    # like gpu_memory: a form keeps its last selection when the user goes down to no GPU
    req = build_request({**ON_HOSTS, "gpus": 0, "gpu_type": value}, typed_catalog, STAFF)
    assert req.gpus == 0 and req.gpu_type is None


def test_gpu_type_error_with_an_invalid_backend_names_the_backend_only(typed_catalog):
    errors = errors_of({"backend": "nowhere", "gpus": 1, "gpu_type": "a100"}, typed_catalog)
    assert list(errors) == ["backend"]


def test_profile_fixes_a_gpu_type(typed, monkeypatch):
    typed["profiles"]["mig"] = {
        "groups": ["ml101"],
        "values": {**ON_HOSTS, "gpu_type": "mig-1g"},
    }
    cat = build_catalog(**typed)
    assert build_request({"profile": "mig"}, cat, ML101).gpu_type == "mig-1g"
    message = only_error({"profile": "mig", "gpu_type": "a100"}, cat, "gpu_type", ML101)
    assert "fixed" in message
    assert build_request({"profile": "mig", "gpu_type": "mig-1g"}, cat, ML101).gpu_type == "mig-1g"


def test_profile_gpu_type_changeable(typed):
    typed["profiles"]["gpu"] = {
        "groups": ["ml101"],
        "values": {**ON_HOSTS, "gpu_type": "a100"},
        "changeable": ["gpu_type"],
    }
    cat = build_catalog(**typed)
    assert build_request({"profile": "gpu"}, cat, ML101).gpu_type == "a100"
    assert build_request({"profile": "gpu", "gpu_type": "mig-1g"}, cat, ML101).gpu_type == "mig-1g"
    assert build_request({"profile": "gpu", "gpu_type": ""}, cat, ML101).gpu_type is None  # "Any GPU"
    assert "gpu_type" in errors_of({"profile": "gpu", "gpu_type": "h100"}, cat, ML101)


def test_default_gpu_type_applies_to_its_backend_only(typed):
    typed["default_options"] = {**ON_HOSTS, "gpu_type": "a100"}
    cat = build_catalog(**typed)
    assert default_values(cat, cat.policy_for(STAFF))["gpu_type"] == "a100"
    assert build_request({}, cat, STAFF).gpu_type == "a100"
    # another backend chosen: the default's type does not follow it, and is no error
    req = build_request({"backend": "here", "image": "base", "gpus": 1}, cat, STAFF)
    assert (req.backend, req.gpu_type) == ("here", None)
    # a group whose default backend differs does not start from it either
    assert default_values(cat, cat.policy_for(STUDENTS))["gpu_type"] is None


# ------------------------------------------------------------------ host
def _offer_hosts(monkeypatch) -> None:
    """Let the fake kinds offer ``settings['host_choices']`` (the ssh kind implements its own)."""
    from gridspawner.backends.base import Backend

    def choices(cls, settings):
        return dict(settings.get("host_choices", {})) if isinstance(settings, dict) else {}

    monkeypatch.setattr(Backend, "host_choices", classmethod(choices))


HOSTS = {"a": "a (GPUs 0, 1)", "b": "b"}


@pytest.fixture
def hosted(config, monkeypatch):
    _offer_hosts(monkeypatch)
    config["backends"]["gpu-hosts"]["host_choices"] = dict(HOSTS)
    return config


@pytest.fixture
def hosted_catalog(hosted):
    return build_catalog(**hosted)


def test_host_is_a_field():
    from gridspawner.fields import PRESET_NAMES as PROFILE_VALUE_FIELDS

    assert "host" in FIELDS and "host" in PROFILE_VALUE_FIELDS


def test_catalog_keeps_each_backends_hosts(hosted_catalog):
    assert dict(hosted_catalog.backends["gpu-hosts"].host_choices) == HOSTS
    assert dict(hosted_catalog.backends["here"].host_choices) == {}


def test_host_offered_by_the_backend(hosted_catalog):
    req = build_request({**ON_HOSTS, "host": "b"}, hosted_catalog, STAFF)
    assert req.host == "b"
    assert "host=b" in req.summary()
    # a host means something without GPUs too (unlike gpu_type)
    assert build_request({**ON_HOSTS, "gpus": 0, "host": "a"}, hosted_catalog, STAFF).host == "a"


@pytest.mark.parametrize("value", [None, ""])
def test_host_empty_means_best_fit(hosted_catalog, value):
    assert build_request({**ON_HOSTS, "host": value}, hosted_catalog, STAFF).host is None
    assert build_request(ON_HOSTS, hosted_catalog, STAFF).host is None
    # "any host" is no error on a backend that offers no host choice either
    assert build_request({"backend": "here", "host": value}, hosted_catalog, STAFF).host is None


def test_unknown_host_is_a_field_error(hosted_catalog):
    message = only_error({**ON_HOSTS, "host": "z"}, hosted_catalog, "host")
    assert message == "unknown host 'z'; choose one of: a, b"


def test_host_on_a_backend_without_host_choice(hosted_catalog):
    message = only_error({"backend": "here", "host": "a"}, hosted_catalog, "host")
    assert message == "this backend places servers itself; no host choice"


def test_host_on_a_backend_that_does_not_allow_it(catalog):
    message = only_error({**ON_HOSTS, "host": "a"}, catalog, "host")
    assert message == "this backend places servers itself; no host choice"


@pytest.mark.parametrize("bad", [3, ["a"], {"a": 1}, True])
def test_host_must_be_a_name(hosted_catalog, bad):
    message = only_error({**ON_HOSTS, "host": bad}, hosted_catalog, "host")
    assert message.startswith("must be a host name")
    assert_short_and_safe(message)


def test_hostile_host_is_quoted_briefly(hosted_catalog):
    bad = "<script>" + "x" * 5000
    message = only_error({**ON_HOSTS, "host": bad}, hosted_catalog, "host")
    assert_short_and_safe(message, bad)


def test_host_error_with_an_invalid_backend_names_the_backend_only(hosted_catalog):
    errors = errors_of({"backend": "nowhere", "host": "a"}, hosted_catalog)
    assert list(errors) == ["backend"]


def test_profile_fixes_a_host(hosted):
    hosted["profiles"]["on-a"] = {"groups": ["ml101"], "values": {**ON_HOSTS, "host": "a"}}
    cat = build_catalog(**hosted)
    assert build_request({"profile": "on-a"}, cat, ML101).host == "a"
    assert "fixed" in only_error({"profile": "on-a", "host": "b"}, cat, "host", ML101)
    assert build_request({"profile": "on-a", "host": "a"}, cat, ML101).host == "a"


def test_profile_host_changeable(hosted):
    hosted["profiles"]["pick"] = {"groups": ["ml101"], "values": {**ON_HOSTS, "host": "a"}, "changeable": ["host"]}
    cat = build_catalog(**hosted)
    assert build_request({"profile": "pick"}, cat, ML101).host == "a"
    assert build_request({"profile": "pick", "host": "b"}, cat, ML101).host == "b"
    assert build_request({"profile": "pick", "host": ""}, cat, ML101).host is None  # "Any host"
    assert "host" in errors_of({"profile": "pick", "host": "z"}, cat, ML101)


@pytest.mark.parametrize(
    "values, words",
    [
        ({"image": "pytorch", "host": "a"}, "needs 'backend'"),
        ({**ON_HOSTS, "host": "z"}, "offers no host 'z'; it offers: a, b"),
        ({"backend": "here", "image": "base", "host": "a"}, "(it offers no host choice)"),
        ({**ON_HOSTS, "host": 3}, "must be a host name"),
    ],
)
def test_profile_host_must_be_offered_by_its_backend(hosted, values, words):
    from gridspawner.catalog import CatalogError

    hosted["profiles"]["bad"] = {"values": values}
    with pytest.raises(CatalogError) as e:
        build_catalog(**hosted)
    assert e.value.key == "c.GridSpawner.profiles['bad']['values']['host']"
    assert words in e.value.message


def test_default_host_applies_to_its_backend_only(hosted):
    hosted["default_options"] = {**ON_HOSTS, "host": "b"}
    cat = build_catalog(**hosted)
    assert default_values(cat, cat.policy_for(STAFF))["host"] == "b"
    assert build_request({}, cat, STAFF).host == "b"
    req = build_request({"backend": "here", "image": "base"}, cat, STAFF)
    assert (req.backend, req.host) == ("here", None)
    assert default_values(cat, cat.policy_for(STUDENTS))["host"] is None


def test_ssh_backend_offers_its_hosts_only_when_allowed(real_kinds, tmp_path):
    """The real ssh kind: ``allow_host_choice`` turns its hosts into host choices."""
    ssh = {
        "kind": "ssh",
        "hosts": [{"name": "a", "gpus": [0, 1]}, {"name": "b", "gpus": [2]}, "c"],
        "username": "gs",
        "known_hosts": str(tmp_path / "known_hosts"),
    }
    images = {"base": {"ssh": {}}}
    cat = build_catalog(backends={"lab": ssh}, images=images)
    assert dict(cat.backends["lab"].host_choices) == {}
    cat = build_catalog(backends={"lab": {**ssh, "allow_host_choice": True}}, images=images)
    assert dict(cat.backends["lab"].host_choices) == {"a": "a (GPUs 0, 1)", "b": "b (GPU 2)", "c": "c"}
    assert build_request({"host": "c"}, cat, []).host == "c"
