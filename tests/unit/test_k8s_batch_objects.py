"""The pure builders and readers of a notebook run's pod (`batch_objects`), validated against
the Kubernetes 1.33 OpenAPI schema."""

from __future__ import annotations

import base64
import subprocess

import kubernetes_validate
import pytest

from gridspawner.backends.base import BATCH_LOG_TAIL, BatchJob
from gridspawner.backends.kubernetes import batch_objects, objects
from gridspawner.backends.kubernetes.objects import BuildError, build_pod, build_secret, run_names
from gridspawner.backends.kubernetes.settings import parse_image, parse_settings

TOKEN = "s3cr3t-token-value"
IMAGE = parse_image("scipy", {"image": "quay.io/jupyter/scipy-notebook:2025-01-01"}, "k")
S = parse_settings("cluster", {"namespace": "jhub"}, "c.GridSpawner.backends['cluster']")
JOB = BatchJob(run_id="run-42", argv=("papermill", "input.ipynb", "output.ipynb", "; rm -rf /"),
               files={"input.ipynb": b"{}", "parameters.json": b'{"x": 1}'}, outputs=("output.ipynb",),
               env={"MPLBACKEND": "Agg"})


def validate(obj: dict) -> dict:
    kubernetes_validate.validate(obj, "1.33", strict=True)
    return obj


def built(job=JOB, gpus=0):
    names = run_names(job.run_id)
    env = {"JUPYTERHUB_API_TOKEN": TOKEN, "JUPYTERHUB_USER": "alice"}
    pod = build_pod(S, IMAGE, user="alice", server_name="", names=names, env=env, cmd=("jupyterhub-singleuser",),
                    args=(), gpus=gpus, gpu_memory=0, cpu=None, memory=None, tolerance=0.07)
    secret = build_secret(S, names, "alice", "", env)
    batch_objects.to_batch_pod(pod, job, nonce="n0nce", secret=names.secret)
    batch_objects.add_files(secret, job)
    return validate(pod), validate(secret)


def test_the_run_pod_runs_argv_as_data_with_no_server():
    pod, secret = built(gpus=1)
    c = pod["spec"]["containers"][0]
    assert c["command"][:2] == ["/bin/sh", "-c"]
    assert c["command"][3:] == ["gridspawner-run", "n0nce", *JOB.argv]  # each element its own argument
    assert "ports" not in c and "readinessProbe" not in c
    assert c["workingDir"] == batch_objects.WORK_DIR
    assert pod["spec"]["restartPolicy"] == "Never"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"  # the server's GPU scheduling
    labels = pod["metadata"]["labels"]
    assert labels[objects.RUN_LABEL] == "run-42"
    assert labels["component"] == "singleuser-server"  # the single-user NetworkPolicies hold it
    assert objects.is_run(pod) and objects.is_run(secret)
    assert TOKEN not in str(pod)
    # only the file keys are mounted, never the token that shares the Secret
    vol = next(v for v in pod["spec"]["volumes"] if v["name"] == "run-files")
    assert sorted(i["path"] for i in vol["secret"]["items"]) == ["input.ipynb", "parameters.json"]
    assert all(i["key"].startswith("file.") for i in vol["secret"]["items"])
    assert secret["metadata"]["labels"]["component"] == "notebook-run-secret"  # out of the hub's sweep


def test_the_script_runs_argv_and_prints_outputs_and_exit_code(tmp_path):
    files = tmp_path / "files"
    work = tmp_path / "work"
    files.mkdir()
    work.mkdir()
    (files / "input.ipynb").write_bytes(b"in")
    argv = ["sh", "-c", 'cat input.ipynb > output.ipynb; printf "\\000\\377" >> output.ipynb; echo "$0"; exit 3',
            "; echo injected"]
    out = subprocess.run(["/bin/sh", "-c", batch_objects.RUN_SCRIPT, "gridspawner-run", "abc", *argv], cwd=work,
                         env={"PATH": "/usr/bin:/bin", "GRIDSPAWNER_RUN_FILES": str(files),
                              "GRIDSPAWNER_RUN_OUTPUTS": "output.ipynb/missing.txt"},
                         capture_output=True, text=True)
    assert out.returncode == 3
    got, tail, code = batch_objects.parse_log(out.stdout + out.stderr, "abc", ("output.ipynb", "missing.txt"))
    assert code == 3
    assert got == {"output.ipynb": b"in\x00\xff"}
    assert tail == "; echo injected"


def test_parse_log_keeps_the_tail_and_reports_cut_outputs():
    log = "x" * (BATCH_LOG_TAIL + 10) + "\n@@gridspawner-n begin out.ipynb\nAAAA\n"
    files, tail, code = batch_objects.parse_log(log, "n", ("out.ipynb",))
    assert files == {} and code is None
    assert "out.ipynb was cut off" in tail and len(tail.encode()) <= BATCH_LOG_TAIL
    # a forged block with another nonce is the job's own output, not an output file
    forged = "@@gridspawner-other begin out.ipynb\n" + base64.b64encode(b"fake").decode() + "\n"
    files, tail, code = batch_objects.parse_log(forged, "n", ("out.ipynb",))
    assert files == {} and code is None


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ".hidden", "-rf", ""])
def test_file_names_must_be_plain(name):
    with pytest.raises(BuildError, match="plain file name"):
        built(BatchJob(run_id="r", argv=("true",), files={name: b"x"}))


def test_files_over_a_secret_s_limit_are_refused():
    with pytest.raises(BuildError, match="1 MiB"):
        built(BatchJob(run_id="r", argv=("true",), files={"big.ipynb": b"x" * (1024 * 1024)}))


def test_run_names_are_unique_and_valid():
    a, b = run_names("Run_1"), run_names("run-1")
    assert a.pod != b.pod and len(a.pod) <= 63 and a.pod.startswith("run-")
    assert objects.pod_of_secret(a.secret) == a.pod


def test_the_run_pod_carries_its_maximum_run_time_as_an_active_deadline():
    """Counted by the kubelet from the pod's startTime (before the pull): at creation the
    maximum run time + the start's own bound + the margin; once started, what the start
    took + the maximum run time + the margin (Kubernetes lets it only go down)."""
    assert batch_objects.deadline_at_create(None, 300, 60) is None  # no maximum run time: no deadline
    assert batch_objects.deadline_at_create(3600, S.start_timeout, S.run_deadline_margin) == 3600 + 300 + 60
    assert batch_objects.deadline_once_started(3600, 60, start_time=1000.0, now=1042.5) == 3600 + 60 + 43
    assert batch_objects.deadline_once_started(0.5, 0, start_time=1000.0, now=999.0) == 1  # a clock behind: ≥ 1
    names = run_names(JOB.run_id)
    pod = build_pod(S, IMAGE, user="alice", server_name="", names=names, env={}, cmd=("jupyterhub-singleuser",),
                    args=(), gpus=0, gpu_memory=0, cpu=None, memory=None, tolerance=0.07)
    batch_objects.to_batch_pod(pod, JOB, nonce="n", secret=names.secret, deadline=3960)
    assert validate(pod)["spec"]["activeDeadlineSeconds"] == 3960
    assert "activeDeadlineSeconds" not in built()[0]["spec"]
    ended = {"status": {"phase": "Failed", "reason": "DeadlineExceeded", "startTime": "2026-12-07T10:00:00Z"}}
    assert batch_objects.deadline_exceeded(ended) and not batch_objects.deadline_exceeded({"status": {"phase": "Failed"}})
    assert batch_objects.start_time(ended) == 1796637600.0 and batch_objects.start_time({"status": {}}) is None
    with pytest.raises(Exception) as e:
        parse_settings("cluster", {"run_deadline_margin": "soon"}, "c.GridSpawner.backends['cluster']")
    assert "run_deadline_margin" in str(e.value)
    assert parse_settings("cluster", {"run_deadline_margin": 0}, "k").run_deadline_margin == 0
