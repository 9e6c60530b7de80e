"""Custom image references: where a group's policy allows them (``image_refs`` patterns), a
user gives an image reference instead of an image key; everything else is a field error
naming ``image``, and bad patterns are start-up errors naming their key."""

from __future__ import annotations

import pytest

from gridspawner.backends.kubernetes.settings import KubernetesImage
from gridspawner.backends.ssh.settings import SSHImage
from gridspawner.catalog import build_catalog
from gridspawner.request import OptionsError, build_request
from gridspawner.vocabulary import CatalogError

BACKENDS = {
    "cluster": {"kind": "kubernetes", "namespace": "jhub"},
    "podman-hosts": {"kind": "ssh", "username": "svc", "hosts": [{"name": "a", "runtime": "podman"}, {"name": "b", "runtime": "apptainer"}]},
    "bare-hosts": {"kind": "ssh", "username": "svc", "hosts": [{"name": "c"}, {"name": "d", "runtime": "docker"}]},
    "here": {"kind": "local"},
}
IMAGES = {
    "scipy": {"kubernetes": {"image": "quay.io/jupyter/scipy-notebook:2025-01-01"}, "local": {},
              "ssh": {"image": "docker://quay.io/jupyter/scipy-notebook:2025-01-01"}},
}
POLICY = {"research": {"image_refs": ["registry.example.edu/*", "quay.io/jupyter/*-notebook:2025-*"]},
          "students": {"backends": "*"}}


def catalog(**kw):
    return build_catalog(backends=BACKENDS, images=IMAGES, group_policy=kw.pop("group_policy", POLICY), **kw)


def error(options, groups=("research",)) -> dict[str, str]:
    with pytest.raises(OptionsError) as e:
        build_request(options, catalog(), list(groups))
    return e.value.errors


def test_an_allowed_reference_reaches_the_kubernetes_backend_as_its_image():
    req = build_request({"backend": "cluster", "image": "registry.example.edu/lab/torch:1.2"}, catalog(), ["research"])
    assert req.image == "registry.example.edu/lab/torch:1.2" and req.image_ref
    assert isinstance(req.image_settings, KubernetesImage)
    assert req.image_settings.image == "registry.example.edu/lab/torch:1.2"
    assert "image=registry.example.edu/lab/torch:1.2" in req.summary()
    # a catalog key is still a key
    assert not build_request({"backend": "cluster", "image": "scipy"}, catalog(), ["research"]).image_ref


def test_an_allowed_reference_runs_on_hosts_whose_every_runtime_is_a_container():
    req = build_request({"backend": "podman-hosts", "image": "quay.io/jupyter/base-notebook:2025-02-01"},
                        catalog(), ["research"])
    assert isinstance(req.image_settings, SSHImage)
    assert req.image_settings.image == "quay.io/jupyter/base-notebook:2025-02-01"


@pytest.mark.parametrize("options,groups,says", [
    ({"backend": "cluster", "image": "docker.io/evil/miner:latest"}, ("research",), "not allowed for you; allowed: registry.example.edu/*"),
    ({"backend": "cluster", "image": "registry.example.edu/x:1"}, ("students",), "unknown image"),
    ({"backend": "cluster", "image": "registry.example.edu/x:1"}, (), "unknown image"),
    ({"backend": "here", "image": "registry.example.edu/x:1"}, ("research",), "kind 'local' runs no container images"),
    ({"backend": "bare-hosts", "image": "registry.example.edu/x:1"}, ("research",), "host c of this backend runs no container runtime"),
    ({"backend": "cluster", "image": "-v/:/host"}, ("research",), "nor a valid image reference"),
    ({"backend": "cluster", "image": "registry.example.edu/x:1 --privileged"}, ("research",), "nor a valid image reference"),
    ({"backend": "cluster", "image": "registry.example.edu/$(id)"}, ("research",), "nor a valid image reference"),
    ({"backend": "cluster", "image": "registry.example.edu/x;rm -rf /"}, ("research",), "nor a valid image reference"),
])
def test_refused_references_are_field_errors_naming_image(options, groups, says):
    errors = error(options, groups)
    assert list(errors) == ["image"], errors
    assert says in errors["image"]


def test_the_union_of_groups_allows_each_group_s_patterns():
    policy = {"a": {"image_refs": ["registry.example.edu/*"]}, "b": {"image_refs": ["ghcr.io/lab/*"]}}
    cat = catalog(group_policy=policy)
    assert build_request({"backend": "cluster", "image": "ghcr.io/lab/x:1"}, cat, ["a", "b"]).image_ref
    with pytest.raises(OptionsError):
        build_request({"backend": "cluster", "image": "ghcr.io/lab/x:1"}, cat, ["a"])


@pytest.mark.parametrize("patterns,key", [
    ("registry.example.edu/*", "c.GridSpawner.group_policy['research']['image_refs']"),
    (["registry.example.edu/*", "-rf*"], "c.GridSpawner.group_policy['research']['image_refs'][1]"),
    (["reg istry/*"], "c.GridSpawner.group_policy['research']['image_refs'][0]"),
    ([""], "c.GridSpawner.group_policy['research']['image_refs'][0]"),
])
def test_bad_patterns_are_start_up_errors_naming_the_key(patterns, key):
    with pytest.raises(CatalogError) as e:
        catalog(group_policy={"research": {"image_refs": patterns}})
    assert key in str(e.value)


def test_a_pattern_does_not_allow_a_longer_host():
    with pytest.raises(OptionsError):
        build_request({"backend": "cluster", "image": "registry.example.edu.evil.com/x:1"}, catalog(), ["research"])


# ------------------------------------------------------------------ the form


def form(groups, values=None, errors=None):
    from bs4 import BeautifulSoup

    from gridspawner.form import render_form

    return BeautifulSoup(render_form(catalog=catalog(), groups=list(groups), capacity={}, values=values,
                                     errors=errors), "html.parser")


def test_the_form_offers_a_labelled_reference_input_only_where_allowed():
    soup = form(["research"])
    box = soup.find("input", attrs={"name": "image_ref"})
    assert box is not None and box.get("value") == ""
    label = soup.find("label", attrs={"for": box["id"]})
    assert label is not None and "own image" in label.get_text()
    help_text = soup.find(id=box["aria-describedby"].split()[0]).get_text()
    assert "registry.example.edu/*" in help_text and "quay.io/jupyter/*-notebook:2025-*" in help_text
    assert form(["students"]).find("input", attrs={"name": "image_ref"}) is None


def test_a_refused_reference_comes_back_in_the_form_with_its_message_under_image():
    from gridspawner.form import parse_form

    options = parse_form({"backend": ["cluster"], "image": ["scipy"], "image_ref": [" docker.io/evil/x:1 "]})
    assert options["image"] == "docker.io/evil/x:1"  # the typed reference replaces the select
    assert parse_form({"backend": ["cluster"], "image": ["scipy"], "image_ref": [""]})["image"] == "scipy"
    with pytest.raises(OptionsError) as e:
        build_request(options, catalog(), ["research"])
    soup = form(["research"], values=options, errors=e.value.errors)
    assert soup.find("input", attrs={"name": "image_ref"})["value"] == "docker.io/evil/x:1"
    assert "not allowed for you" in soup.find(id="gs-image-error").get_text()
    # what the user typed is escaped, never markup
    soup = form(["research"], values={"image": 'x"><script>alert(1)</script>'}, errors={"image": "bad"})
    assert soup.find("script", string="alert(1)") is None
