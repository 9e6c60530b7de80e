"""build_catalog: a good config builds; every bad one names its exact key."""

from __future__ import annotations

import copy
import math

import pytest

from gridspawner.catalog import (
    BackendConfig,
    CatalogError,
    CatalogErrors,
    ImageConfig,
    Policy,
    build_catalog,
    parse_duration,
)

pytestmark = pytest.mark.usefixtures("fake_kinds")


def build(config, **changes):
    raw = copy.deepcopy(config)
    raw.update(changes)
    return build_catalog(**raw)


def error_key(config, **changes) -> str:
    """The key of the first error (a config with several reports each; see the tests of
    CatalogErrors below)."""
    with pytest.raises(CatalogError) as info:
        build(config, **changes)
    errors = getattr(info.value, "errors", (info.value,))
    for err in errors:
        assert isinstance(err.message, str) and err.message
        assert str(err).startswith(err.key + ": ")
    assert (info.value.key, info.value.message) == (errors[0].key, errors[0].message)
    return errors[0].key


# ------------------------------------------------------------------ a good config
def test_good_config_builds(catalog):
    assert list(catalog.backends) == ["here", "gpu-hosts"]
    here = catalog.backends["here"]
    assert isinstance(here, BackendConfig)
    assert (here.name, here.kind, here.display_name, here.description) == ("here", "local", "Hub machine", "")
    assert here.settings == {}
    assert catalog.backends["gpu-hosts"].display_name == "gpu-hosts"
    assert catalog.backends["gpu-hosts"].settings == {"hosts": ["a", "b"]}

    base = catalog.images["base"]
    assert isinstance(base, ImageConfig)
    assert base.display_name == "Base"
    assert base.runs_on("local") and base.runs_on("ssh")
    assert base.per_kind["local"] == {"cmd": ["jupyterhub-singleuser"]}
    assert not catalog.images["ssh-only"].runs_on("local")
    assert catalog.images["ssh-only"].display_name == "ssh-only"

    assert catalog.max_gpus == 4
    assert catalog.gpu_memory_classes == (0, 16, 24, 80)  # 0 ("any") is always offered
    assert catalog.cpu_choices == (1, 2, 4)
    assert catalog.memory_choices == (4, 8, 16)
    assert catalog.gpu_memory_tolerance == pytest.approx(0.07)
    assert catalog.max_runtime == 2 * 86400
    assert catalog.defaults == {"backend": "here", "image": "base", "gpus": 0, "gpu_memory": 0}

    course = catalog.profiles["course"]
    assert course.groups == frozenset({"ml101"})
    assert course.changeable == frozenset({"gpus", "cpu"})
    assert course.max_gpus == 2
    assert course.max_runtime == 4 * 3600
    assert catalog.profiles["open"].max_runtime is None
    assert catalog.profiles["open"].max_gpus is None


def test_catalog_is_frozen(catalog):
    with pytest.raises(TypeError):
        catalog.backends["x"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        catalog.profiles["course"].values["gpus"] = 4  # type: ignore[index]
    with pytest.raises(AttributeError):
        catalog.max_gpus = 100  # type: ignore[misc]


def test_minimal_config_and_defaults(fake_kinds):
    cat = build_catalog(backends={"b": {"kind": "local"}}, images={"i": {"local": {}}})
    assert cat.gpu_memory_classes == (0, 16, 24, 40, 80)
    assert cat.max_gpus == 8
    assert cat.default_policy == Policy(None, None, 8, True)
    assert dict(cat.profiles) == {} and dict(cat.group_policy) == {}
    assert cat.max_runtime is None


def test_lists_are_sorted(config):
    cat = build(config, gpu_memory_classes=[80, 0, 16], cpu_choices=[4, 0.5, 2], memory_choices=[16, 4])
    assert cat.gpu_memory_classes == (0, 16, 80)
    assert cat.cpu_choices == (0.5, 2, 4)
    assert cat.memory_choices == (4, 16)


def test_group_policy_max_gpus_is_capped_by_catalog(config):
    config["group_policy"]["staff"]["max_gpus"] = 100
    assert build(config).group_policy["staff"].max_gpus == 4


def test_backend_kind_settings_error_propagates(config):
    config["backends"]["here"]["reject_me"] = 1
    assert error_key(config) == "c.GridSpawner.backends['here']['reject_me']"


def test_image_kind_settings_error_propagates(config):
    config["images"]["base"]["ssh"] = {"reject_me": 1}
    assert error_key(config) == "c.GridSpawner.images['base']['ssh']['reject_me']"


# ------------------------------------------------------------------ backends
@pytest.mark.parametrize("kind", ["nomad", None, "", "LOCAL", 3, ["local"]])
def test_unknown_or_missing_backend_kind(config, kind):
    if kind is None:
        del config["backends"]["here"]["kind"]
    else:
        config["backends"]["here"]["kind"] = kind
    assert error_key(config) == "c.GridSpawner.backends['here'].kind"


def test_planned_but_unavailable_kind_names_kind_key(config):
    config["backends"]["k8s"] = {"kind": "kubernetes"}
    with pytest.raises(CatalogError) as info:
        build(config)
    assert info.value.key == "c.GridSpawner.backends['k8s'].kind"


@pytest.mark.parametrize("name", ["", "-dash", "has space", "a/b", "x" * 64, "ünï", 7, "a\nb"])
def test_bad_backend_name(config, name):
    config["backends"] = {name: {"kind": "local"}}
    assert error_key(config) == f"c.GridSpawner.backends[{name!r}]"


def test_backend_not_a_dict(config):
    config["backends"]["here"] = "local"
    assert error_key(config) == "c.GridSpawner.backends['here']"


@pytest.mark.parametrize("value", [{}, None, [], "here"])
def test_backends_empty_or_wrong_type(config, value):
    assert error_key(config, backends=value) == "c.GridSpawner.backends"


@pytest.mark.parametrize("field", ["display_name", "description"])
def test_backend_display_strings(config, field):
    config["backends"]["here"][field] = 5
    assert error_key(config) == f"c.GridSpawner.backends['here'].{field}"


# ------------------------------------------------------------------ images
@pytest.mark.parametrize("value", [{}, None, ["base"]])
def test_images_empty_or_wrong_type(config, value):
    assert error_key(config, images=value) == "c.GridSpawner.images"


def test_image_with_no_kind_entry(config):
    config["images"]["lonely"] = {"display_name": "Lonely"}
    with pytest.raises(CatalogError) as info:
        build(config)
    assert info.value.key == "c.GridSpawner.images['lonely']"
    assert "local" in info.value.message


def test_image_running_on_no_configured_backend_kind(config):
    del config["backends"]["gpu-hosts"]
    config["group_policy"] = {}
    config["profiles"] = {}
    assert error_key(config) == "c.GridSpawner.images['ssh-only']"


def test_unknown_key_in_image(config):
    config["images"]["base"]["bogus"] = 1
    key = error_key(config)
    assert key == "c.GridSpawner.images['base']['bogus']"


def test_image_kind_entry_not_a_dict(config):
    config["images"]["base"]["local"] = "jupyter/base"
    assert error_key(config) == "c.GridSpawner.images['base']['local']"


def test_image_entry_for_unavailable_kind(config):
    config["images"]["base"]["kubernetes"] = {"image": "x"}
    assert error_key(config) == "c.GridSpawner.images['base']['kubernetes']"


@pytest.mark.parametrize("name", ["", "a b", "_x", None])
def test_bad_image_name(config, name):
    config["images"] = {name: {"local": {}}}
    assert error_key(config) == f"c.GridSpawner.images[{name!r}]"


@pytest.mark.parametrize("field", ["display_name", "description"])
def test_image_display_strings(config, field):
    config["images"]["base"][field] = ["x"]
    assert error_key(config) == f"c.GridSpawner.images['base']['{field}']"


# ------------------------------------------------------------------ policies
@pytest.mark.parametrize(
    "policy, key",
    [
        ({"backends": ["nowhere"]}, "['backends']"),
        ({"images": ["nothing"]}, "['images']"),
        ({"backends": "here"}, "['backends']"),  # a string other than "*"
        ({"images": [["base"]]}, "['images']"),  # unhashable element
        ({"backends": [{"a": 1}]}, "['backends']"),
        ({"max_gpus": True}, "['max_gpus']"),
        ({"max_gpus": -1}, "['max_gpus']"),
        ({"max_gpus": "2"}, "['max_gpus']"),
        ({"max_gpus": 1.0}, "['max_gpus']"),
        ({"free_choice": "no"}, "['free_choice']"),
        ({"free_choice": 0}, "['free_choice']"),
        ({"colour": "red"}, "['colour']"),
    ],
)
def test_bad_group_policy(config, policy, key):
    config["group_policy"]["students"] = policy
    assert error_key(config) == "c.GridSpawner.group_policy['students']" + key


def test_bad_default_policy(config):
    config["default_policy"] = {"images": ["nothing"]}
    assert error_key(config) == "c.GridSpawner.default_policy['images']"


def test_group_policy_not_dicts(config):
    assert error_key(config, group_policy=["students"]) == "c.GridSpawner.group_policy"
    config["group_policy"]["students"] = ["here"]
    assert error_key(config) == "c.GridSpawner.group_policy['students']"


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize("value", [True, False, -1, "8", 2.5, None])
def test_bad_max_gpus(config, value):
    assert error_key(config, max_gpus=value) == "c.GridSpawner.max_gpus"


def test_max_gpus_zero_is_allowed(config):
    config["profiles"] = {}
    config["group_policy"] = {}
    assert build(config, max_gpus=0).max_gpus == 0


def test_gpu_memory_classes_duplicates(config):
    assert error_key(config, gpu_memory_classes=[16, 24, 16]) == "c.GridSpawner.gpu_memory_classes"


@pytest.mark.parametrize("bad", [-16, 24.0, True, "24", None, math.nan])
def test_gpu_memory_classes_bad_element(config, bad):
    assert error_key(config, gpu_memory_classes=[16, bad]) == "c.GridSpawner.gpu_memory_classes[1]"


def test_gpu_memory_classes_not_a_list(config):
    assert error_key(config, gpu_memory_classes="16,24") == "c.GridSpawner.gpu_memory_classes"


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "2", False])
def test_cpu_choices_bad_element(config, bad):
    assert error_key(config, cpu_choices=[1, bad]) == "c.GridSpawner.cpu_choices[1]"


def test_memory_choices_must_be_integers(config):
    assert error_key(config, memory_choices=[4, 8.5]) == "c.GridSpawner.memory_choices[1]"


@pytest.mark.parametrize("value", [-0.01, 0.5, 0.9, 1, True, "0.07", None, math.nan])
def test_tolerance_out_of_range(config, value):
    assert error_key(config, gpu_memory_tolerance=value) == "c.GridSpawner.gpu_memory_tolerance"


@pytest.mark.parametrize("value", [0, 0.0, 0.49])
def test_tolerance_in_range(config, value):
    assert build(config, gpu_memory_tolerance=value).gpu_memory_tolerance == value


# ------------------------------------------------------------------ profiles
P = "c.GridSpawner.profiles['course']"


@pytest.mark.parametrize(
    "change, key",
    [
        ({"colour": "red"}, "['colour']"),
        ({"values": {"bogus": 1}}, "['values']['bogus']"),
        ({"values": {"mounts": []}}, "['values']['mounts']"),
        ({"values": "gpu-hosts"}, "['values']"),
        ({"values": {"backend": "nowhere"}}, "['values']['backend']"),
        ({"values": {"backend": ["here"]}}, "['values']['backend']"),
        ({"values": {"backend": None}}, "['values']['backend']"),
        ({"values": {"image": "nothing"}}, "['values']['image']"),
        ({"values": {"image": None}}, "['values']['image']"),
        ({"values": {"image": {"x": 1}}}, "['values']['image']"),
        ({"values": {"backend": "here", "image": "ssh-only"}}, "['values']['image']"),
        ({"values": {"gpus": 5}, "max_gpus": None}, "['values']['gpus']"),  # above catalog max 4
        ({"values": {"gpus": 3}}, "['values']['gpus']"),  # above the profile's max_gpus 2
        ({"values": {"gpus": -1}}, "['values']['gpus']"),
        ({"values": {"gpus": "1"}}, "['values']['gpus']"),
        ({"values": {"gpus": True}}, "['values']['gpus']"),
        ({"values": {"gpu_memory": 20}}, "['values']['gpu_memory']"),
        ({"values": {"gpu_memory": 16.0}}, "['values']['gpu_memory']"),  # requests refuse floats
        ({"values": {"gpu_memory": False}}, "['values']['gpu_memory']"),
        ({"values": {"cpu": 3}}, "['values']['cpu']"),
        ({"values": {"cpu": True}}, "['values']['cpu']"),
        ({"values": {"memory": 8.0}}, "['values']['memory']"),
        ({"values": {"memory": 5}}, "['values']['memory']"),
        ({"changeable": ["gpus", "mounts"]}, "['changeable']"),
        ({"changeable": "gpus"}, "['changeable']"),
        ({"groups": "ml101"}, "['groups']"),
        ({"groups": [1]}, "['groups']"),
        ({"max_gpus": -1}, "['max_gpus']"),
        ({"max_gpus": "2"}, "['max_gpus']"),
        ({"display_name": 3}, "['display_name']"),
        ({"max_runtime": "forever"}, "['max_runtime']"),
        ({"max_runtime": "-1h"}, "['max_runtime']"),
    ],
)
def test_bad_profile(config, change, key):
    config["profiles"]["course"].update(change)
    assert error_key(config) == P + key


@pytest.mark.parametrize("name", ["", "a b", 1])
def test_bad_profile_name(config, name):
    config["profiles"] = {name: {}}
    assert error_key(config) == f"c.GridSpawner.profiles[{name!r}]"


def test_profiles_not_a_dict(config):
    assert error_key(config, profiles=["course"]) == "c.GridSpawner.profiles"


def test_profile_max_gpus_is_capped_by_catalog(config):
    config["profiles"]["course"]["max_gpus"] = 64
    assert build(config).profiles["course"].max_gpus == 4


def test_profile_gpus_up_to_its_own_max(config):
    config["profiles"]["course"]["values"]["gpus"] = 2
    assert build(config).profiles["course"].values["gpus"] == 2


# ------------------------------------------------------------------ default options, max_runtime
@pytest.mark.parametrize(
    "defaults, key",
    [
        ({"backend": "nowhere"}, "['backend']"),
        ({"image": "nothing"}, "['image']"),
        ({"backend": "here", "image": "ssh-only"}, "['image']"),
        ({"gpus": 9}, "['gpus']"),
        ({"gpus": -1}, "['gpus']"),
        ({"gpu_memory": 12}, "['gpu_memory']"),
        ({"cpu": 64}, "['cpu']"),
        ({"memory": "8"}, "['memory']"),
        ({"profile": "course"}, "['profile']"),
        ({"mounts": []}, "['mounts']"),
    ],
)
def test_bad_default_options(config, defaults, key):
    assert error_key(config, default_options=defaults) == "c.GridSpawner.default_options" + key


def test_default_options_not_a_dict(config):
    assert error_key(config, default_options=[("gpus", 1)]) == "c.GridSpawner.default_options"


@pytest.mark.parametrize("value", ["soon", "-1h", "1h30m", True, -5, "0", [1], math.nan])
def test_bad_max_runtime(config, value):
    assert error_key(config, max_runtime=value) == "c.GridSpawner.max_runtime"


# ------------------------------------------------------------------ parse_duration
@pytest.mark.parametrize(
    "value, seconds",
    [
        ("90m", 5400),
        ("8h", 8 * 3600),
        ("2d", 2 * 86400),
        ("45s", 45),
        ("120", 120),
        (" 1.5h ", 5400),
        ("90 m", 5400),
        (3600, 3600),
        (0.5, 0.5),
        (0, None),
        (0.0, None),
        (None, None),
        ("", None),
    ],
)
def test_parse_duration(value, seconds):
    assert parse_duration(value, "k") == seconds


@pytest.mark.parametrize("value", ["-1h", "abc", "1h30m", "h", "1 hour", "1H", "0", "0m", True, -1, [], {}, math.nan])
def test_parse_duration_errors(value):
    with pytest.raises(CatalogError) as info:
        parse_duration(value, "c.GridSpawner.max_runtime")
    assert info.value.key == "c.GridSpawner.max_runtime"


# ------------------------------------------------------------------ policy semantics
def test_policy_for_union_of_groups(catalog):
    p = catalog.policy_for(["students", "ml101"])
    assert p.backends == frozenset({"here", "gpu-hosts"})
    assert p.images == frozenset({"base", "pytorch"})
    assert p.max_gpus == 2
    assert p.free_choice is True  # students may choose freely, so the union may


def test_policy_union_with_star_is_star(catalog):
    p = catalog.policy_for(["students", "staff"])
    assert p.backends is None and p.images is None
    assert p.allows_backend("gpu-hosts") and p.allows_image("ssh-only")
    assert p.max_gpus == 4


def test_policy_single_group(catalog):
    p = catalog.policy_for(["ml101", "not-configured"])
    assert p == Policy(frozenset({"gpu-hosts"}), frozenset({"pytorch"}), 2, False)
    assert not p.allows_backend("here") and not p.allows_image("base")


def test_policy_for_unknown_groups_is_default(catalog):
    assert catalog.policy_for([]) == catalog.default_policy
    assert catalog.policy_for(["nobody-knows"]) == catalog.default_policy
    assert catalog.default_policy == Policy(frozenset({"here"}), frozenset({"base", "pytorch"}), 0, True)


def test_policy_for_is_order_independent(catalog):
    assert catalog.policy_for(["staff", "ml101", "students"]) == catalog.policy_for(["students", "ml101", "staff"])


def test_policy_union_is_symmetric():
    a = Policy(frozenset({"x"}), None, 1, False)
    b = Policy(frozenset({"y"}), frozenset({"i"}), 3, False)
    assert a.union(b) == b.union(a) == Policy(frozenset({"x", "y"}), None, 3, False)


def test_profiles_for_visibility(catalog):
    assert [p.key for p in catalog.profiles_for([])] == ["open"]
    assert [p.key for p in catalog.profiles_for(["students"])] == ["open"]
    assert [p.key for p in catalog.profiles_for(["ml101"])] == ["course", "open"]
    assert [p.key for p in catalog.profiles_for(iter(["staff", "ml101"]))] == ["course", "open"]
    assert catalog.profiles["course"].visible_to({"ml101"})
    assert not catalog.profiles["course"].visible_to(["ml10"])


# ------------------------------------------------------------------ the real "local" kind
REAL = {
    "backends": {
        "here": {
            "kind": "local",
            "display_name": "This machine",
            "session_root": "/tmp/gs-test",
            "env": {"HF_HOME": "/data/hf"},
        }
    },
    "images": {
        "torch": {"display_name": "PyTorch", "local": {"prefix": ". /opt/envs/torch/bin/activate", "cmd": ["jupyterhub-singleuser"]}},
        "plain": {"local": {}},
    },
}


def test_real_local_kind_builds(real_kinds):
    from gridspawner.backends.local import LocalBackend
    from gridspawner.request import build_request

    cat = build_catalog(**copy.deepcopy(REAL))
    assert cat.backends["here"].kind == "local"
    settings = cat.backends["here"].settings
    assert settings.session_root == "/tmp/gs-test"
    assert settings.env == (("HF_HOME", "/data/hf"),)
    torch = cat.images["torch"].per_kind["local"]
    assert torch.cmd == ("jupyterhub-singleuser",)
    assert torch.prefix == ". /opt/envs/torch/bin/activate"
    from gridspawner.backends import backend_class

    assert backend_class("local") is LocalBackend
    req = build_request({"image": "torch"}, cat, [])
    assert (req.backend, req.backend_kind, req.image) == ("here", "local", "torch")
    assert req.image_settings is torch


@pytest.mark.parametrize(
    "where, change, key",
    [
        ("backend", {"bogus": 1}, "c.GridSpawner.backends['here']['bogus']"),
        ("backend", {"session_root": "relative/dir"}, "c.GridSpawner.backends['here']['session_root']"),
        ("backend", {"session_root": "/tmp/" + "x" * 100}, "c.GridSpawner.backends['here']['session_root']"),
        ("backend", {"env": {"CUDA_VISIBLE_DEVICES": "0"}}, "c.GridSpawner.backends['here']['env']['CUDA_VISIBLE_DEVICES']"),
        ("backend", {"env": {"JUPYTERHUB_API_TOKEN": "x"}}, "c.GridSpawner.backends['here']['env']['JUPYTERHUB_API_TOKEN']"),
        ("backend", {"term_timeout": -1}, "c.GridSpawner.backends['here']['term_timeout']"),
        ("image", {"bogus": 1}, "c.GridSpawner.images['torch']['local']['bogus']"),
        ("image", {"cmd": "jupyterhub-singleuser"}, "c.GridSpawner.images['torch']['local']['cmd']"),
        ("image", {"env": {"A B": "1"}}, "c.GridSpawner.images['torch']['local']['env']['A B']"),
        ("image", {"prefix": 3}, "c.GridSpawner.images['torch']['local']['prefix']"),
    ],
)
def test_real_local_kind_errors_name_the_key(real_kinds, where, change, key):
    raw = copy.deepcopy(REAL)
    if where == "backend":
        raw["backends"]["here"].update(change)
    else:
        raw["images"]["torch"]["local"].update(change)
    with pytest.raises(CatalogError) as info:
        build_catalog(**raw)
    assert info.value.key == key


def test_real_kinds_image_for_a_kind_without_backend(real_kinds):
    raw = copy.deepcopy(REAL)
    raw["images"]["k8s-only"] = {"kubernetes": {"image": "quay.io/jupyter/base-notebook"}}
    with pytest.raises(CatalogError) as info:
        build_catalog(**raw)
    # either the kind rejects these settings or no configured backend runs the image: the
    # key names the image either way
    assert info.value.key.startswith("c.GridSpawner.images['k8s-only']")


# ------------------------------------------------------------------ gpu_type (per backend)
@pytest.fixture
def typed(config, monkeypatch):
    """The fake kinds offer ``settings['gpu_types']``; gpu-hosts offers two."""
    from gridspawner.backends.base import Backend

    def choices(cls, settings):
        return dict(settings.get("gpu_types", {})) if isinstance(settings, dict) else {}

    monkeypatch.setattr(Backend, "gpu_type_choices", classmethod(choices))
    config["backends"]["gpu-hosts"]["gpu_types"] = {"a100": "NVIDIA A100 80GB", "mig-1g": "MIG 1g.10gb"}
    return config


def test_backends_carry_their_gpu_type_choices(typed):
    cat = build(typed)
    assert dict(cat.backends["gpu-hosts"].gpu_types) == {"a100": "NVIDIA A100 80GB", "mig-1g": "MIG 1g.10gb"}
    assert dict(cat.backends["here"].gpu_types) == {}
    with pytest.raises(TypeError):
        cat.backends["gpu-hosts"].gpu_types["x"] = "y"  # frozen like the rest


def test_default_kinds_offer_no_gpu_types(catalog):
    assert all(not b.gpu_types for b in catalog.backends.values())


def test_profile_may_fix_a_gpu_type_of_its_backend(typed):
    typed["profiles"]["course"]["values"]["gpu_type"] = "mig-1g"
    typed["profiles"]["course"]["changeable"] = ["gpus", "gpu_type"]
    assert build(typed).profiles["course"].values["gpu_type"] == "mig-1g"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"gpu_type": "h100"}, "offers no GPU type 'h100'; it offers: a100, mig-1g"),
        ({"gpu_type": 3}, "must be a GPU type name"),
        ({"backend": "here", "image": "base", "gpu_type": "a100"}, "it offers no GPU type choice"),
    ],
)
def test_bad_profile_gpu_type(typed, values, message):
    typed["profiles"]["course"]["values"].update(values)
    with pytest.raises(CatalogError) as info:
        build(typed)
    assert info.value.key == P + "['values']['gpu_type']"
    assert message in info.value.message


def test_profile_gpu_type_needs_its_backend(typed):
    typed["profiles"]["open"]["values"] = {"image": "base", "gpus": 1, "gpu_type": "a100"}
    with pytest.raises(CatalogError) as info:
        build(typed)
    assert info.value.key == "c.GridSpawner.profiles['open']['values']['gpu_type']"
    assert "needs 'backend'" in info.value.message


def test_default_options_gpu_type(typed):
    typed["default_options"] = {"backend": "gpu-hosts", "image": "pytorch", "gpus": 1, "gpu_type": "a100"}
    assert build(typed).defaults["gpu_type"] == "a100"
    typed["default_options"]["gpu_type"] = "h100"
    with pytest.raises(CatalogError) as info:
        build(typed)
    assert info.value.key == "c.GridSpawner.default_options['gpu_type']"


# ------------------------------------------------------------------ every error at once
def errors_of(config, **changes) -> list[str]:
    with pytest.raises(CatalogError) as info:
        build(config, **changes)
    return [e.key for e in getattr(info.value, "errors", (info.value,))]


def test_every_wrong_setting_is_reported_in_one_error(config):
    config["backends"]["gpu-hosts"]["reject_me"] = 1
    config["images"]["pytorch"]["display_name"] = 3
    config["profiles"]["course"]["values"]["gpus"] = 3
    config["profiles"]["course"]["groups"] = "ml101"
    with pytest.raises(CatalogErrors) as info:
        build(config, max_runtime="forever", default_options={"cpu": 64})
    keys = [e.key for e in info.value.errors]
    assert keys == [
        "c.GridSpawner.backends['gpu-hosts']['reject_me']",
        "c.GridSpawner.images['pytorch']['display_name']",
        "c.GridSpawner.profiles['course']['groups']",
        "c.GridSpawner.profiles['course']['values']['gpus']",
        "c.GridSpawner.default_options['cpu']",
        "c.GridSpawner.max_runtime",
    ]
    text = str(info.value)
    assert text.startswith("6 settings are wrong:\n")
    for err in info.value.errors:
        assert f"\n  {err.key}: {err.message}" in text
    # a handler of a single CatalogError still gets a real key
    assert (info.value.key, info.value.message) == (keys[0], info.value.errors[0].message)


def test_a_wrong_entry_is_not_reported_again_where_it_is_used(config):
    """A profile, policy or default naming a backend/image whose own entry is wrong is not
    a second error (the admin fixes the entry, not its users)."""
    config["backends"]["gpu-hosts"]["reject_me"] = 1
    config["images"]["ssh-only"]["ssh"]["reject_me"] = 1
    config["profiles"]["course"]["values"].update({"backend": "gpu-hosts", "image": "ssh-only"})
    config["group_policy"] = {"ml": {"backends": ["gpu-hosts"], "images": ["ssh-only"]}}
    assert errors_of(config, default_options={"backend": "gpu-hosts"}) == [
        "c.GridSpawner.backends['gpu-hosts']['reject_me']",
        "c.GridSpawner.images['ssh-only']['ssh']['reject_me']",
    ]
    # ... but a name nobody defined still is
    config["group_policy"]["ml"]["backends"] = ["gpu-hosts", "nowhere"]
    assert "c.GridSpawner.group_policy['ml']['backends']" in errors_of(config)


def test_a_single_wrong_setting_raises_a_plain_catalog_error(config):
    with pytest.raises(CatalogError) as info:
        build(config, max_runtime="forever")
    assert not isinstance(info.value, CatalogErrors)
    assert str(info.value).startswith("c.GridSpawner.max_runtime: ")
