"""Settings of a kubernetes backend and its images: defaults, and errors naming the key."""

from __future__ import annotations

import pytest

from gridspawner.backends.kubernetes.settings import parse_image, parse_settings
from gridspawner.catalog import CatalogError, build_catalog

KEY = "c.GridSpawner.backends['k8s']"


def parse(**raw):
    return parse_settings("k8s", raw, KEY)


def test_defaults():
    s = parse()
    assert s.namespace is None and s.in_cluster is None
    assert s.gpu_resource == "nvidia.com/gpu"
    assert s.gpu_memory_label == "nvidia.com/gpu.memory"
    assert s.gpu_product_label == "nvidia.com/gpu.product"
    assert s.gpu_tolerations == ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    assert s.service_account is None
    assert (s.run_as_user, s.run_as_group, s.fs_group) == (1000, 100, 100)
    assert s.pending_timeout == 30.0
    assert s.home_volume is None
    assert s.mig_profiles == ()


def test_full_settings():
    s = parse(
        namespace="jhub",
        kubeconfig="/etc/kube.conf",
        context="lab",
        mig_profiles=["1g.10gb", "3g.40gb"],
        gpu_types={"a100": {"product": "NVIDIA-A100-SXM4-80GB", "display_name": "A100 80 GB"}, "small": {"mig": "2g.20gb"}},
        home_volume={"size": "5Gi", "storage_class": "standard", "access_modes": ["ReadWriteOnce"], "mount_path": "/home/jovyan"},
        pending_timeout="2m",
        image_pull_secrets=["regcred"],
        extra_labels={"release": "jhub"},
    )
    assert s.namespace == "jhub"
    assert s.mig_profiles == ("1g.10gb", "3g.40gb", "2g.20gb")
    assert s.gpu_types["a100"].display_name == "A100 80 GB"
    assert s.home_volume.size == "5Gi"
    assert s.pending_timeout == 120.0
    assert parse(home_volume=True).home_volume.mount_path == "/home/jovyan"


@pytest.mark.parametrize(
    "raw,key",
    [
        ({"namespce": "x"}, "['namespce']"),
        ({"namespace": "Bad_NS"}, "['namespace']"),
        ({"in_cluster": True, "kubeconfig": "/x"}, "['in_cluster']"),
        ({"gpu_resource": "gpu"}, "['gpu_resource']"),
        ({"gpu_memory_label": "not a label"}, "['gpu_memory_label']"),
        ({"mig_profiles": ["1g10gb"]}, "['mig_profiles'][0]"),
        ({"gpu_types": {"x": {}}}, "['gpu_types']['x']"),
        ({"gpu_types": {"x": {"product": "A", "mig": "1g.10gb"}}}, "['gpu_types']['x']"),
        ({"gpu_types": {"x": {"mig": "big"}}}, "['gpu_types']['x']['mig']"),
        ({"gpu_tolerations": [{"key": "a", "operator": "Maybe"}]}, "['gpu_tolerations'][0]['operator']"),
        ({"tolerations": [{"key": "a", "operator": "Exists", "value": "v"}]}, "['tolerations'][0]['value']"),
        ({"node_selector": {"a": 1}}, "['node_selector']['a']"),
        ({"run_as_user": 0}, "['run_as_user']"),
        ({"shm_size": "lots"}, "['shm_size']"),
        ({"image_pull_policy": "Sometimes"}, "['image_pull_policy']"),
        ({"home_volume": {"size": "10 GB"}}, "['home_volume']['size']"),
        ({"home_volume": {"mount_path": "home"}}, "['home_volume']['mount_path']"),
        ({"pending_timeout": -1}, "['pending_timeout']"),
        ({"extra_labels": {"a": "x" * 64}}, "['extra_labels']['a']"),
        ({"api_retries": -1}, "['api_retries']"),
        ({"keep_entrypoint": "no"}, "['keep_entrypoint']"),
    ],
)
def test_errors_name_the_key(raw, key):
    with pytest.raises(CatalogError) as info:
        parse(**raw)
    assert info.value.key == KEY + key


def test_image():
    img = parse_image("torch", {"image": "quay.io/jupyter/pytorch-notebook:cuda12", "pull_policy": "Always", "cmd": ["start.sh"]}, "k")
    assert img.image == "quay.io/jupyter/pytorch-notebook:cuda12"
    assert img.cmd == ("start.sh",)
    for raw, key in (
        ({}, "k['image']"),
        ({"image": "a b"}, "k['image']"),
        ({"image": "x", "pull_policy": "always"}, "k['pull_policy']"),
        ({"image": "x", "cmd": "jupyter"}, "k['cmd']"),
        ({"image": "x", "tag": "1"}, "k['tag']"),
        ({"image": "x", "env": {"A": 1}}, "k['env']['A']"),
        ({"image": "x", "keep_entrypoint": "yes"}, "k['keep_entrypoint']"),
    ):
        with pytest.raises(CatalogError) as info:
            parse_image("torch", raw, "k")
        assert info.value.key == key


def test_catalog_accepts_a_kubernetes_backend():
    cat = build_catalog(
        backends={"cluster": {"kind": "kubernetes", "namespace": "jhub", "gpu_types": {"mig": {"mig": "1g.10gb"}}}},
        images={"torch": {"kubernetes": {"image": "quay.io/jupyter/pytorch-notebook:latest"}}},
    )
    assert cat.backends["cluster"].settings.namespace == "jhub"
    assert cat.images["torch"].per_kind["kubernetes"].image.endswith(":latest")
    with pytest.raises(CatalogError) as info:
        build_catalog(backends={"cluster": {"kind": "kubernetes", "nmespace": "x"}}, images={"t": {"kubernetes": {"image": "i"}}})
    assert info.value.key == "c.GridSpawner.backends['cluster']['nmespace']"
