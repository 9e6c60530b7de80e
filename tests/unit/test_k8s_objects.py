"""Kubernetes manifests from the PURE builders: GPU/VRAM/MIG scheduling, security, labels,
secrets — every manifest also validated against the Kubernetes 1.33 schema (strict)."""

from __future__ import annotations

import base64
import json
import re

import kubernetes_validate
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridspawner.backends.kubernetes import objects
from gridspawner.backends.kubernetes.objects import BuildError, build_pod, gpu_scheduling, label_value, server_names
from gridspawner.backends.kubernetes.settings import parse_image, parse_settings
from gridspawner.gpu import min_mib

TOKEN = "s3cr3t-token-value"


def validate(obj: dict) -> dict:
    kubernetes_validate.validate(obj, "1.33", strict=True)
    return obj


def settings(**raw):
    return parse_settings("gpu-cluster", raw, "c.GridSpawner.backends['gpu-cluster']")


IMAGE = parse_image("pytorch", {"image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-01"}, "k")

ENV = {
    "JUPYTERHUB_API_TOKEN": TOKEN,
    "JPY_API_TOKEN": TOKEN,
    "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:8888/user/alice/",
    "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
    "JUPYTERHUB_USER": "alice",
}


def pod(s=None, *, user="alice", server="", gpus=0, gpu_memory=0, cpu=None, memory=None, gpu_type=None, image=IMAGE, tolerance=0.07,
        node_vram=()):
    s = s or settings()
    return validate(
        build_pod(
            s,
            image,
            user=user,
            server_name=server,
            names=server_names(user, server, s),
            env=ENV,
            cmd=("jupyterhub-singleuser",),
            args=("--debug",),
            gpus=gpus,
            gpu_memory=gpu_memory,
            cpu=cpu,
            memory=memory,
            tolerance=tolerance,
            gpu_type=gpu_type,
            launch_id="abc123",
            summary="backend=gpu-cluster",
            node_vram_mib=tuple(node_vram),
        )
    )


def container(p):
    return p["spec"]["containers"][0]


def match_expressions(p):
    terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(terms) == 1
    return terms[0]["matchExpressions"]


# ------------------------------------------------------------------ GPUs


def test_cpu_only_pod_has_no_gpu_resource_affinity_or_gpu_toleration():
    p = pod()
    res = container(p)["resources"] if "resources" in container(p) else {}
    assert "nvidia.com/gpu" not in json.dumps(res)
    assert "affinity" not in p["spec"]
    assert "tolerations" not in p["spec"]
    env = {e["name"]: e.get("value") for e in container(p)["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"  # no GPU of the node leaks into a CPU pod


def test_gpu_count_limit_equals_request_and_gpu_taint_tolerated():
    p = pod(gpus=2)
    res = container(p)["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "2"
    assert res["requests"]["nvidia.com/gpu"] == "2"
    assert p["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "affinity" not in p["spec"]  # any VRAM: no node affinity
    assert "NVIDIA_VISIBLE_DEVICES" not in {e["name"] for e in container(p)["env"]}


@pytest.mark.parametrize("gb,tolerance", [(16, 0.07), (24, 0.07), (40, 0.07), (80, 0.07), (24, 0.0), (48, 0.1)])
def test_vram_becomes_gt_affinity_with_the_host_tolerance_rule(gb, tolerance):
    p = pod(gpus=1, gpu_memory=gb, tolerance=tolerance)
    (expr,) = match_expressions(p)
    assert expr["key"] == "nvidia.com/gpu.memory"
    assert expr["operator"] == "Gt"
    (value,) = expr["values"]
    assert re.fullmatch(r"[0-9]+", value)  # Gt needs an integer string
    # a card reporting exactly min_mib matches (Gt is strict), one MiB less does not
    assert int(value) == min_mib(gb, tolerance) - 1


def test_vram_rule_matches_real_cards():
    """'24 GB' must match an A10 (23028 MiB) but '24 GB' must not match a T4 (15360 MiB)."""
    (expr,) = match_expressions(pod(gpus=1, gpu_memory=24))
    threshold = int(expr["values"][0])
    assert 23028 > threshold
    assert 15360 <= threshold
    (expr16,) = match_expressions(pod(gpus=1, gpu_memory=16))
    assert 15360 > int(expr16["values"][0])


CLUSTER_VRAM = (15360, 23028, 46068, 81559, 81920)  # T4, A10, L40S, H100 80GB, A100 80GB (MiB labels)


def preferred(p):
    return p["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]


def test_smallest_fitting_vram_class_is_preferred_with_falling_weights():
    p = pod(gpus=1, gpu_memory=24, node_vram=CLUSTER_VRAM)
    assert preferred(p) == [
        {"weight": 100, "preference": {"matchExpressions": [{"key": "nvidia.com/gpu.memory", "operator": "Lt", "values": ["23029"]}]}},
        {"weight": 35, "preference": {"matchExpressions": [
            {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["23028"]},
            {"key": "nvidia.com/gpu.memory", "operator": "Lt", "values": ["46069"]}]}},
    ]  # the 80 GB class (81559 and 81920 MiB alike) is the largest: no preference
    # any GPU: the T4 first; nothing to prefer with one class or a product choice
    assert [t["weight"] for t in preferred(pod(gpus=1, node_vram=CLUSTER_VRAM))] == [100, 35, 12]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in pod(gpus=1, gpu_memory=80, node_vram=CLUSTER_VRAM)["spec"]["affinity"]["nodeAffinity"]
    assert "affinity" not in pod(gpus=1, node_vram=(81920,))["spec"]
    s = settings(gpu_types={"a100": {"product": "NVIDIA-A100-SXM4-80GB"}, "mig": {"mig": "1g.10gb"}})
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in pod(s, gpus=1, gpu_type=s.gpu_types["a100"], node_vram=CLUSTER_VRAM)["spec"]["affinity"]["nodeAffinity"]
    assert "affinity" not in pod(s, gpus=1, gpu_type=s.gpu_types["mig"], node_vram=CLUSTER_VRAM)["spec"]
    assert "affinity" not in pod(node_vram=CLUSTER_VRAM)["spec"]  # CPU only


def test_many_vram_classes_keep_the_last_weight():
    sizes = (8192, 11264, 15360, 23028, 40960, 46068, 81920, 144384)
    weights = [t["weight"] for t in preferred(pod(gpus=1, node_vram=sizes))]
    assert weights == [100, 35, 12, 4, 1, 1, 1]


def test_custom_labels_and_resource_name():
    s = settings(gpu_resource="example.com/gpu", gpu_memory_label="example.com/vram-mib")
    p = pod(s, gpus=1, gpu_memory=40)
    assert container(p)["resources"]["limits"] == {"example.com/gpu": "1"}
    assert match_expressions(p)[0]["key"] == "example.com/vram-mib"


def test_product_choice_is_an_in_affinity():
    s = settings(gpu_types={"a100-80": {"product": "NVIDIA-A100-SXM4-80GB"}})
    p = pod(s, gpus=1, gpu_memory=40, gpu_type=s.gpu_types["a100-80"])
    exprs = {e["key"]: e for e in match_expressions(p)}
    assert exprs["nvidia.com/gpu.product"] == {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-80GB"]}
    assert exprs["nvidia.com/gpu.memory"]["operator"] == "Gt"


def test_mig_profile_is_its_own_resource_without_vram_affinity():
    s = settings(gpu_types={"mig-1g.10gb": {"mig": "1g.10gb"}})
    p = pod(s, gpus=1, gpu_memory=0, gpu_type=s.gpu_types["mig-1g.10gb"])
    res = container(p)["resources"]
    assert res["limits"] == {"nvidia.com/mig-1g.10gb": "1"}
    assert res["requests"] == {"nvidia.com/mig-1g.10gb": "1"}
    assert "nvidia.com/gpu" not in res["limits"]
    assert "affinity" not in p["spec"]
    assert p["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert s.mig_profiles == ("1g.10gb",)


def _mig_catalog(**extra):
    from gridspawner.catalog import build_catalog

    return build_catalog(
        backends={"gpu": {"kind": "kubernetes", "gpu_types": {"mig": {"mig": "1g.10gb"}, "a100": {"product": "NVIDIA-A100-SXM4-80GB"}}}},
        images={"lab": {"kubernetes": {"image": "quay.io/jupyter/base-notebook:2025-01-01"}}},
        gpu_memory_classes=[0, 10, 24, 80],
        **extra,
    )


def test_mig_slice_smaller_than_the_vram_asked_is_a_field_error_at_submit():
    """The rule lives in catalog.gpu_type_memory_problem (sizes from the kind's gpu_type_memory):
    a 400 naming gpu_memory when the request is built, not a failure when the pod is made."""
    from gridspawner.request import OptionsError, build_request

    catalog = _mig_catalog()
    assert dict(catalog.backends["gpu"].gpu_type_memory) == {"mig": 10}  # products: size not known in advance
    with pytest.raises(OptionsError) as info:
        build_request({"gpus": 1, "gpu_type": "mig", "gpu_memory": 24}, catalog, [])
    assert list(info.value.errors) == ["gpu_memory"]
    assert "'MIG 1g.10gb' has 10 GB per GPU, less than the 24 GB asked for" in info.value.errors["gpu_memory"]
    assert build_request({"gpus": 1, "gpu_type": "mig", "gpu_memory": 10}, catalog, []).gpu_type == "mig"
    assert build_request({"gpus": 1, "gpu_type": "a100", "gpu_memory": 80}, catalog, []).gpu_memory == 80
    assert build_request({"gpus": 0, "gpu_type": "mig", "gpu_memory": 24}, catalog, []).gpu_type is None  # no GPU, no type
    # a profile fixing the memory: the user's GPU type is what to change
    catalog = _mig_catalog(profiles={"big": {"values": {"backend": "gpu", "gpus": 1, "gpu_memory": 24}, "changeable": ["gpu_type"]}})
    with pytest.raises(OptionsError) as info:
        build_request({"profile": "big", "gpu_type": "mig"}, catalog, [])
    assert list(info.value.errors) == ["gpu_type"]


def test_a_profile_with_a_mig_slice_too_small_is_refused_at_start_up():
    from gridspawner.catalog import CatalogError

    with pytest.raises(CatalogError, match=r"profiles\['p'\]\['values'\]\['gpu_memory'\].*has 10 GB per GPU"):
        _mig_catalog(profiles={"p": {"values": {"backend": "gpu", "gpus": 1, "gpu_type": "mig", "gpu_memory": 24}}})


def test_gpu_node_selector_and_custom_tolerations():
    s = settings(
        gpu_node_selector={"nvidia.com/gpu.present": "true"},
        node_selector={"pool": "jupyter"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "jupyter", "effect": "NoSchedule"}],
        gpu_tolerations=[{"key": "gpu", "operator": "Exists"}],
    )
    cpu_pod = pod(s)
    assert cpu_pod["spec"]["nodeSelector"] == {"pool": "jupyter"}
    assert cpu_pod["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "jupyter", "effect": "NoSchedule"}]
    gpu_pod = pod(s, gpus=1)
    assert gpu_pod["spec"]["nodeSelector"] == {"pool": "jupyter", "nvidia.com/gpu.present": "true"}
    assert {"key": "gpu", "operator": "Exists"} in gpu_pod["spec"]["tolerations"]


def test_gpu_description_for_users():
    s = settings()
    assert gpu_scheduling(s, 2, 40, 0.07).description == "2 free GPUs with ≥ 40 GB"
    assert gpu_scheduling(s, 1, 0, 0.07).description == "1 free GPU"


def test_cpu_and_memory():
    p = pod(cpu=2, memory=8)
    res = container(p)["resources"]
    assert res["requests"] == {"cpu": "2", "memory": "8Gi"} == res["limits"]
    assert container(pod(cpu=0.5))["resources"]["limits"]["cpu"] == "500m"
    s = settings(default_cpu=1, default_memory=4)
    assert container(pod(s))["resources"]["limits"] == {"cpu": "1", "memory": "4Gi"}


# ------------------------------------------------------------------ security


def test_pod_runs_unprivileged_as_non_root():
    p = pod(gpus=1)
    psc = p["spec"]["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 1000 and psc["fsGroup"] == 100
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    csc = container(p)["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["privileged"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["runAsNonRoot"] is True
    assert p["spec"]["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in p["spec"]


def test_service_account_opt_in():
    p = pod(settings(service_account="notebook"))
    assert p["spec"]["serviceAccountName"] == "notebook"
    assert p["spec"]["automountServiceAccountToken"] is True


def test_memory_backed_dev_shm():
    p = pod(settings(shm_size="2Gi"))
    (vol,) = [v for v in p["spec"]["volumes"] if v["name"] == "dshm"]
    assert vol["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(p)["volumeMounts"]


def test_token_never_plain_in_pod_spec():
    p = pod()
    assert TOKEN not in json.dumps(p)
    env = {e["name"]: e for e in container(p)["env"]}
    for name in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"):
        assert "value" not in env[name]
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": server_names("alice", "").secret, "key": name}


def test_secret_holds_the_token():
    s = settings()
    names = server_names("alice", "", s)
    secret = validate(objects.build_secret(s, names, "alice", "", ENV))
    assert secret["metadata"]["name"] == names.secret
    assert set(secret["data"]) == {"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"}
    assert base64.b64decode(secret["data"]["JUPYTERHUB_API_TOKEN"]).decode() == TOKEN
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gridspawner"


def test_secret_is_labelled_for_the_orphan_sweep_and_not_owned():
    s = settings()
    names = server_names("alice", "", s)
    secret = validate(objects.build_secret(s, names, "alice", "", ENV, launch_id="0123456789abcdef"))
    labels = secret["metadata"]["labels"]
    assert labels["gridspawner.io/launch-id"] == "0123456789abcdef"
    assert secret["metadata"]["annotations"]["gridspawner.io/launch-id"] == "0123456789abcdef"
    assert "ownerReferences" not in secret["metadata"]  # no patch per spawn: deleted explicitly
    # the sweep's selector matches the Secret's labels, and not the pod's
    selector = dict(kv.split("=") for kv in objects.secret_selector(s).split(","))
    assert selector.items() <= labels.items()
    pod_labels = pod(s)["metadata"]["labels"]
    assert not selector.items() <= pod_labels.items()
    assert objects.pod_of_secret(names.secret) == names.pod
    assert objects.pod_of_secret("something-else") is None and objects.pod_of_secret("-secret") is None


def test_server_listens_on_every_address_at_8888():
    p = pod()
    assert container(p)["ports"] == [{"name": "notebook-port", "containerPort": 8888, "protocol": "TCP"}]
    env = {e["name"]: e.get("value") for e in container(p)["env"]}
    assert env["JUPYTERHUB_SERVICE_URL"] == "http://0.0.0.0:8888/user/alice/"


def test_server_command_runs_through_the_image_entrypoint():
    """No ``command``: the image's ENTRYPOINT (Jupyter Docker Stacks: tini -g -- start.sh,
    which runs the start hooks) stays and gets the server command as its arguments."""
    c = container(pod())
    assert "command" not in c
    assert c["args"] == ["jupyterhub-singleuser", "--debug"]
    img = parse_image("x", {"image": "img:1", "cmd": ["start-singleuser.sh"], "pull_policy": "Always", "env": {"A": "1"}}, "k")
    c = container(pod(image=img))
    assert "command" not in c and c["args"] == ["start-singleuser.sh", "--debug"]
    assert c["imagePullPolicy"] == "Always"
    assert {"name": "A", "value": "1"} in c["env"]


def test_the_admin_may_replace_the_entrypoint_per_backend_or_image():
    c = container(pod(settings(keep_entrypoint=False)))
    assert c["command"] == ["jupyterhub-singleuser"] and c["args"] == ["--debug"]
    own = parse_image("x", {"image": "img:1", "cmd": ["/opt/run"], "keep_entrypoint": False}, "k")
    c = container(pod(image=own))
    assert c["command"] == ["/opt/run"] and c["args"] == ["--debug"]
    stacks = parse_image("y", {"image": "quay.io/jupyter/base-notebook:1", "keep_entrypoint": True}, "k")
    c = container(pod(settings(keep_entrypoint=False), image=stacks))  # the image's setting wins
    assert "command" not in c and c["args"] == ["jupyterhub-singleuser", "--debug"]


def test_pull_secrets_and_policy_from_settings():
    p = pod(settings(image_pull_policy="IfNotPresent", image_pull_secrets=["regcred"]))
    assert p["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert container(p)["imagePullPolicy"] == "IfNotPresent"


# ------------------------------------------------------------------ labels and names


def test_labels_zero_to_jupyterhub_selects():
    p = pod(settings(extra_labels={"release": "jhub"}, extra_annotations={"team": "ml lab"}), user="Alice@Uni.edu", server="gpu run")
    labels = p["metadata"]["labels"]
    assert labels["component"] == "singleuser-server"
    assert labels["app"] == "jupyterhub"
    assert labels["hub.jupyter.org/network-access-hub"] == "true"
    assert labels["app.kubernetes.io/managed-by"] == "gridspawner"
    assert labels["release"] == "jhub"
    assert labels["hub.jupyter.org/username"] != "Alice@Uni.edu"  # escaped
    assert labels["hub.jupyter.org/username"].startswith("Alice-Uni.edu-")
    assert p["metadata"]["annotations"]["hub.jupyter.org/username"] == "Alice@Uni.edu"  # exact
    assert p["metadata"]["annotations"]["hub.jupyter.org/servername"] == "gpu run"
    assert p["metadata"]["annotations"]["team"] == "ml lab"
    assert labels["hub.jupyter.org/servername"].startswith("gpu-run-")


def test_label_value_keeps_valid_values():
    assert label_value("alice") == "alice"
    assert label_value("") == ""
    assert label_value("a.b_c-d") == "a.b_c-d"


_LABEL = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@given(st.text(max_size=300))
def test_label_value_always_valid(text):
    v = label_value(text)
    assert len(v) <= 63 and _LABEL.fullmatch(v)


@given(st.text(max_size=200), st.text(max_size=200))
def test_names_are_dns_labels(user, server):
    s = settings(home_volume={"per_server": True})
    for n in (server_names(user, server), server_names(user, server, s)):
        for name in (n.pod, n.secret, n.home_claim):
            assert len(name) <= 63 and _DNS_LABEL.fullmatch(name), name


@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=40), st.text(max_size=40))
def test_names_collision_free(u1, s1, u2, s2):
    if (u1, s1) != (u2, s2):
        assert server_names(u1, s1).pod != server_names(u2, s2).pod
    if u1 != u2:
        assert label_value(u1) != label_value(u2)


def test_names_readable():
    n = server_names("alice", "")
    assert n.pod.startswith("jupyter-alice-")
    assert server_names("alice", "big-run").pod.startswith("jupyter-alice-big-run-")
    # one home per user, shared by named servers unless per_server
    assert server_names("alice", "x").home_claim == server_names("alice", "").home_claim
    s = settings(home_volume={"per_server": True})
    assert server_names("alice", "x", s).home_claim != server_names("alice", "", s).home_claim


# ------------------------------------------------------------------ home volume


def test_home_claim_and_mount():
    s = settings(home_volume={"size": "20Gi", "storage_class": "fast-ssd"})
    names = server_names("alice", "", s)
    claim = validate(objects.build_home_claim(s, names, "alice", ""))
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "fast-ssd",
    }
    p = pod(s)
    assert {"name": "home", "persistentVolumeClaim": {"claimName": names.home_claim}} in p["spec"]["volumes"]
    assert {"name": "home", "mountPath": "/home/jovyan"} in container(p)["volumeMounts"]
    assert objects.build_home_claim(settings(), names, "alice", "") is None


# ------------------------------------------------------------------ reading pods


def _status(phase, ready=False, ip="10.0.0.5", **extra):
    return {
        "metadata": {"name": "p", "uid": "u"},
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **extra,
        },
    }


def test_pod_ready_and_terminated():
    assert objects.pod_ready(_status("Running", ready=True))
    assert not objects.pod_ready(_status("Running", ready=False))
    assert not objects.pod_ready(_status("Pending"))
    assert objects.pod_terminated(_status("Running", ready=True)) is None
    assert objects.pod_terminated(None)[0] == 1
    evicted = _status("Failed", reason="Evicted", message="The node was low on resource: memory.")
    code, why = objects.pod_terminated(evicted)
    assert code == 1 and "Evicted" in why and "memory" in why
    done = _status(
        "Succeeded", containerStatuses=[{"name": "notebook", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
    )
    assert objects.pod_terminated(done) == (0, "Completed")


def test_waiting_problems():
    p = _status("Pending", containerStatuses=[{"state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image x"}}}])
    assert "ImagePullBackOff" in objects.container_waiting_problem(p)
    p = _status("Pending", containerStatuses=[{"state": {"waiting": {"reason": "ContainerCreating"}}}])
    assert objects.container_waiting_problem(p) is None


def test_the_stops_file_is_the_pods_stops_annotation_projected_by_the_downward_api():
    p = pod()
    c = container(p)
    [vol] = [v for v in p["spec"]["volumes"] if v["name"] == objects.STOPS_VOLUME]
    [item] = vol["downwardAPI"]["items"]
    assert item == {"path": "stops.json", "fieldRef": {"fieldPath": f"metadata.annotations['{objects.STOPS_ANNOTATION}']"}}
    assert {"name": objects.STOPS_VOLUME, "mountPath": objects.STOPS_DIR, "readOnly": True} in c["volumeMounts"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["GRIDSPAWNER_STOPS_FILE"] == f"{objects.STOPS_DIR}/stops.json"
    # a new pod starts with no stops; an announcement is a patch naming the pod's uid
    assert json.loads(p["metadata"]["annotations"][objects.STOPS_ANNOTATION]) == {"stops": []}
    entries = [{"reason": "idle", "at": 1767225600, "message": "it has been idle for 30 min"}]
    patch = objects.stops_patch("uid-1", entries)
    assert patch["metadata"]["uid"] == "uid-1"
    assert json.loads(patch["metadata"]["annotations"][objects.STOPS_ANNOTATION]) == {"stops": entries}
    patched = json.loads(json.dumps(p))
    patched["metadata"]["annotations"].update(patch["metadata"]["annotations"])
    validate(patched)
