"""The Slurm backend's pure parts: settings (errors name the key), sbatch options from a
request, the scripts (every value quoted, no secret in the batch script), Slurm's output
parsed (squeue, sacct, sinfo)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from gridspawner.backends.slurm import jobs
from gridspawner.backends.slurm.settings import parse_slurm_settings
from gridspawner.catalog import CatalogError
from gridspawner.request import LaunchRequest

KEY = "c.GridSpawner.backends['hpc']"
BASE = {
    "login_hosts": ["login.example.org"],
    "username": "{username}",
    "probe_username": "gridprobe",
    "partitions": ["gpu", "debug"],
    "qos": ["normal", "short"],
    "accounts": ["research"],
    "profiles": {"quick": {"partition": "debug", "qos": "short"}},
    "gpu_types": {
        "a100": {"gres": "a100", "memory": 80, "feature": "a100_80g"},
        "a40": {"gres": "a40", "memory": 48, "feature": "a40"},
        "t4": {"gres": "t4", "memory": 16, "feature": "t4_16g"},
    },
}


def parse(**overrides):
    return parse_slurm_settings({**BASE, **overrides}, KEY)


def request(**kw) -> LaunchRequest:
    base = dict(backend="hpc", backend_kind="slurm", image="lab", gpus=0, gpu_memory=0)
    base.update(kw)
    return LaunchRequest(**base)


@pytest.mark.parametrize(
    "overrides, key, message",
    [
        ({"login_hosts": []}, "['login_hosts']", "must be a non-empty list"),
        ({"login_hosts": [{"address": "-oProxyCommand=x"}]}, "['login_hosts'][0]['address']", "host name or IP"),
        ({"partitions": ["gpu; rm -rf /"]}, "['partitions'][0]", "Slurm partition name"),
        ({"profiles": {"quick": {"partition": "big"}}}, "['profiles']['quick']['partition']", "not in the backend's partition list"),
        ({"gpu_types": {"a100": {"memory": 80.5}}}, "['gpu_types']['a100']['memory']", "integer >= 0"),
        ({"gpu_types": {"a100": {"gres": "a100", "size": 80}}}, "['gpu_types']['a100']['size']", "unknown setting"),
        ({"gpu_option": "tres"}, "['gpu_option']", "must be 'gres'"),
        ({"queue_wait": -1}, "['queue_wait']", "number of seconds"),
        ({"time_limit": 30}, "['time_limit']", ">= 60"),
        ({"probe_username": None}, "['probe_username']", "is required when username is a template"),
        ({"extra_options": ["--gres=gpu:8"]}, "['extra_options'][0]", "set by gridspawner"),
        ({"extra_options": ["-p debug"]}, "['extra_options'][0]", "one long sbatch option"),
        ({"session_root": "/tmp/" + "x" * 40 + "/{account}"}, "['session_root']", "too long for unix socket paths"),
        ({"job_output": "-o x"}, "['job_output']", "file name for sbatch --output"),
        ({"nonsense": 1}, "['nonsense']", "unknown setting"),
    ],
)
def test_a_bad_setting_is_an_error_naming_its_key(overrides, key, message):
    with pytest.raises(CatalogError) as e:
        parse(**overrides)
    assert e.value.key == KEY + key
    assert message in e.value.message


def test_sbatch_options_of_a_profile_with_gpus_cpu_memory_and_time():
    s = parse()
    opts = jobs.sbatch_options(s, request(profile="quick", gpus=2, gpu_type="a100", cpu=3.5, memory=32,
                                          max_runtime=3601), "alice-1")
    assert opts == ["--parsable", "--job-name=gridspawner-alice-1", "--output=.gridspawner/slurm-%j.out",
                    "--no-requeue", "--partition=debug", "--qos=short", "--account=research", "--gres=gpu:a100:2",
                    "--cpus-per-task=4", "--mem=32G", "--time=61"]


def test_without_a_profile_the_first_of_each_list_is_the_default():
    opts = jobs.sbatch_options(parse(), request(), "bob-2")
    assert opts[4:] == ["--partition=gpu", "--qos=normal", "--account=research"]
    assert jobs.sbatch_options(parse(partitions=[], qos=[], accounts=[], profiles={}), request(), "b")[4:] == []


@pytest.mark.parametrize(
    "gpu_memory, want",
    [
        (0, ["--gres=gpu:1"]),  # any GPU
        (16, ["--gres=gpu:1"]),  # every declared type has 16 GB
        (40, ["--gres=gpu:1", "--constraint=a40|a100_80g"]),  # two types: their features, any of them
        (80, ["--gres=gpu:a100:1"]),  # one type
    ],
)
def test_minimum_vram_maps_to_gpu_types_or_features(gpu_memory, want):
    opts = jobs.sbatch_options(parse(), request(gpus=1, gpu_memory=gpu_memory), "c")
    assert opts[7:] == want


def test_vram_without_features_picks_the_smallest_type_that_fits_and_gpus_option():
    s = parse(gpu_types={"a100": {"memory": 80}, "a40": {"memory": 48}, "t4": {"memory": 16}}, gpu_option="gpus")
    assert jobs.sbatch_options(s, request(gpus=2, gpu_memory=40), "c")[7:] == ["--gpus=a40:2"]


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(gpus=1, gpu_memory=96), "no GPU type of this cluster has 96 GB (the largest has 80 GB)"),
        (dict(gpus=1, gpu_type="t4", gpu_memory=40), "GPU type 't4' has 16 GB, less than the 40 GB asked for"),
        (dict(gpus=1, gpu_type="h100"), "unknown GPU type 'h100'"),
    ],
)
def test_a_gpu_request_the_cluster_cannot_express_is_refused(kw, message):
    with pytest.raises(jobs.RequestProblem, match=message.replace("(", r"\(").replace(")", r"\)")):
        jobs.sbatch_options(parse(), request(**kw), "c")


def test_time_limits_are_whole_minutes():
    assert [jobs.time_minutes(s) for s in (1, 60, 61, 3600)] == [1, 1, 2, 60]


def test_the_job_script_quotes_every_value_and_holds_no_secret():
    s = parse(nvidia_smi=["/opt/nv/bin/nvidia-smi"])
    evil = "$(touch /tmp/pwned)'\";`id`"
    script = jobs.job_script(s, session_root="/tmp/gs-alice", slug="alice-1", cmd=("jupyterhub-singleuser", evil),
                             prefix="module load cuda", notebook_dir=f"~/{evil}")
    assert shlex.quote(evil) in script and f"~/{evil}" not in script
    assert "TOKEN" not in script and "module load cuda" in script
    # valid sh (parsed, not run)
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
    submit = jobs.submit_script(jobs.sbatch_options(s, request(), "alice-1"), script, s.job_output)
    assert subprocess.run(["sh", "-n"], input=submit, text=True).returncode == 0
    assert submit.startswith("mkdir -p -m 700 .gridspawner 2>/dev/null\nsbatch --parsable ")


def test_the_environment_is_delivered_on_stdin_quoted():
    env = {"JUPYTERHUB_API_TOKEN": "s3cr'et$(x)", "A": "1"}
    script = jobs.deliver_env_script("/tmp/gs-alice/alice-1.42", env)
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
    # what the job sources sets the value exactly
    text = jobs.export_lines(env)
    out = subprocess.run(["sh", "-c", text + 'printf %s "$JUPYTERHUB_API_TOKEN"'], capture_output=True, text=True).stdout
    assert out == "s3cr'et$(x)"


def test_squeue_sacct_and_sinfo_are_parsed():
    sq = jobs.parse_squeue("7|PENDING|Resources||2026-12-07T01:45:08\n8|RUNNING|None|gpu2|2026-12-07T01:42:08\n"
                           "9|TIMEOUT|TimeLimit|gpu1|2026-12-07T01:40:00\njunk\n")
    assert sq[7].pending and sq[7].pending_text() == "pending: Resources (estimated start 2026-12-07T01:45:08)"
    assert sq[8].running and sq[8].nodes == "gpu2"
    assert sq[9].ended and sq[9].ended_text() == "TIMEOUT: reached its time limit (TimeLimit)"
    assert jobs.JobInfo(1, "PENDING", "None", start="N/A").pending_text() == "pending: waiting for the scheduler"
    booting = jobs.JobInfo(2, "CONFIGURING", "None", "cloud1")
    assert booting.pending and not booting.running and booting.pending_text() == "allocated, its node is starting (CONFIGURING)"
    sa = jobs.parse_sacct("1|CANCELLED by 1001|None|gpu2|0:15\n2|NODE_FAIL|None|gpu1|1:0\n")
    assert sa[1].state == "CANCELLED" and sa[2].ended_text() == "NODE_FAIL: ended because its node failed"
    assert jobs.parse_job_id("123;cluster\n") == 123
    nodes = jobs.parse_sinfo_capacity(
        "gpu1|gpu*|mix|gpu:a100:2(S:0-1)|gpu:a100:1(IDX:0)|\ngpu1|debug|mix|gpu:a100:2(S:0-1)|gpu:a100:1(IDX:0)|\n"
        "gpu2|gpu*|drain|gpu:t4:2|gpu:t4:0(IDX:N/A)|\n")
    assert [(n.node, n.partitions, n.free("a100"), n.free("t4")) for n in nodes] == [
        ("gpu1", ("gpu", "debug"), 1, 0), ("gpu2", ("gpu",), 0, 0)]
    assert jobs.parse_node_address("gpu1|10.0.0.5\n", "gpu1") == "10.0.0.5"
    assert jobs.parse_node_address("gpu1|-oProxy\n", "gpu1") is None


def test_a_busy_cluster_still_fits_what_could_run_there_once_free():
    from gridspawner.backends.base import HostCapacity
    from gridspawner.backends.slurm.capacity import QueueCapacity
    from gridspawner.gpu import GPU

    a100 = tuple(GPU(i, f"gpu1/a100/{i}", "A100", 81920) for i in range(2))
    t4 = tuple(GPU(i, f"gpu2/t4/{i}", "T4", 16384) for i in range(4))
    cap = QueueCapacity(backend="hpc", hosts=(HostCapacity("gpu1 [gpu]", a100, frozenset()),
                                              HostCapacity("gpu2 [gpu]", t4, frozenset({"gpu2/t4/0"})),
                                              HostCapacity("gpu3 [gpu]", t4, error="gpu3 is down")), updated=1.0)
    assert cap.summary() == "1 of 6 GPUs free, up to 16 GB (1 host unreachable)"
    assert cap.fits(2, 80, 0.07) == (True, "")  # both A100s are busy: the job queues
    assert cap.fits(4, 16, 0.07) == (True, "")
    assert cap.fits(3, 80, 0.07) == (False, "no node has 3 GPUs with ≥ 80 GB (at most 2 on one node)")
    assert cap.fits(5, 0, 0.07) == (False, "no node has 5 GPUs (at most 4 on one node)")
