"""The pure parts of notebook runs on Slurm (`slurm.batch_jobs`): a run's sbatch options are
a server's with its log as ``--output``; the stored batch script holds no parameter, file
or environment value; the submit command carries them on stdin and makes them 0600/0700
(run here with a fake sbatch); exit codes and run-job comments read as Slurm writes them."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from gridspawner.backends.slurm import batch_jobs, jobs
from gridspawner.backends.slurm.jobs import JobInfo
from gridspawner.backends.slurm.orphans import job_comment, ours
from gridspawner.backends.slurm.settings import parse_slurm_settings
from gridspawner.catalog import CatalogError
from gridspawner.request import LaunchRequest
from gridspawner.runs.papermill_cmd import batch_job

KEY = "c.GridSpawner.backends['hpc']"
SETTINGS = parse_slurm_settings({"login_hosts": ["login.example.org"], "username": "alice",
                                 "env": {"ADMIN_TOKEN": "admin-value-4711"}}, KEY)


def test_a_run_has_a_servers_options_with_its_log_as_output():
    request = LaunchRequest(backend="hpc", backend_kind="slurm", image="lab", gpus=2, gpu_memory=0, max_runtime=90)
    server = jobs.sbatch_options(SETTINGS, request, "run-ab12")
    rdir = batch_jobs.run_dir(SETTINGS.run_dir, "run-ab12", "0a1b2c3d")
    assert rdir == ".gridspawner/runs/run-ab12.0a1b2c3d"
    options = batch_jobs.batch_options(server, rdir)
    assert options == [o if not o.startswith("--output=") else f"--output={rdir}/log" for o in server]
    assert "--gres=gpu:2" in options and "--time=2" in options and "--no-requeue" in options
    with pytest.raises(ValueError):
        batch_jobs.run_dir(SETTINGS.run_dir, "run-ab12", "x; rm -rf ~")


def test_run_dir_setting_errors_name_the_key():
    for bad in ("../elsewhere", "-rf", "a b", "/"):
        with pytest.raises(CatalogError) as e:
            parse_slurm_settings({"login_hosts": ["l"], "username": "alice", "run_dir": bad}, KEY)
        assert str(e.value).startswith(f"{KEY}['run_dir']: must be a directory for notebook runs")


def fake_sbatch(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" >{tmp_path}/argv\ncat >{tmp_path}/script\necho 4242\n')
    (bin_dir / "sbatch").chmod(0o755)
    return bin_dir


def test_the_submit_stages_files_on_stdin_and_the_stored_script_holds_no_value(tmp_path):
    job = batch_job("ab12", b'{"cells": ["notebook-body-0815"]}', {"secret_param": "param-value-1234"})
    rdir = batch_jobs.run_dir("runs", "run-ab12", "0a1b2c3d")
    home = tmp_path / "home"
    (home / "runs" / "run-ab12.deadbeef").mkdir(parents=True)  # an earlier try's directory
    script = batch_jobs.job_script(SETTINGS, rdir, job.argv, "")
    submit = batch_jobs.submit_batch_script(["--parsable", f"--output={rdir}/log"], script, rdir, job.files,
                                            {**dict(SETTINGS.env), **job.env})
    env = {"PATH": f"{fake_sbatch(tmp_path)}:/usr/bin:/bin", "HOME": str(home)}
    r = subprocess.run(["/bin/sh", "-s"], input=submit, capture_output=True, text=True, cwd=home, env=env, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "4242", r.stderr
    w = home / rdir
    assert stat.S_IMODE(w.stat().st_mode) == 0o700 and stat.S_IMODE((w / "work").stat().st_mode) == 0o700
    assert (w / "work" / "input.ipynb").read_bytes() == job.files["input.ipynb"]
    assert b"param-value-1234" in (w / "work" / "parameters.json").read_bytes()
    assert stat.S_IMODE((w / "env").stat().st_mode) == 0o600 and "admin-value-4711" in (w / "env").read_text()
    assert not (home / "runs" / "run-ab12.deadbeef").exists()
    stored = (tmp_path / "script").read_text()
    argv = (tmp_path / "argv").read_text()
    for value in ("param-value-1234", "notebook-body-0815", "admin-value-4711"):
        assert value not in stored and value not in argv and value not in submit.split("base64 -d")[0]
    assert "papermill input.ipynb output.ipynb -f parameters.json" in stored


def test_a_refused_submit_removes_the_run_directory(tmp_path):
    rdir = "runs/run-cd34.0a1b2c3d"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition' >&2\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    submit = batch_jobs.submit_batch_script(["--parsable"], "#!/bin/sh\n", rdir, {"a.txt": b"x"}, {})
    r = subprocess.run(["/bin/sh", "-s"], input=submit, capture_output=True, text=True, cwd=tmp_path,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=30)
    assert r.returncode == 1 and "invalid partition" in r.stderr
    assert not (tmp_path / rdir).exists()


@pytest.mark.parametrize("info, code", [
    (JobInfo(1, "COMPLETED"), 0),
    (JobInfo(1, "FAILED", exit_code="3:0"), 3),
    (JobInfo(1, "CANCELLED", exit_code="0:15"), 143),
    (JobInfo(1, "TIMEOUT"), 1),
    (None, batch_jobs.EXIT_UNKNOWN),
])
def test_exit_codes_as_slurm_tells_them(info, code):
    assert batch_jobs.exit_code(info) == code


def test_completing_is_not_ended_for_a_run():
    assert batch_jobs.still_running(JobInfo(1, "COMPLETING"))
    assert batch_jobs.still_running(JobInfo(1, "PENDING", "Resources"))
    assert not batch_jobs.still_running(JobInfo(1, "TIMEOUT"))


def test_run_jobs_carry_kind_run_and_are_found_by_their_hubs_look_only():
    assert job_comment("h+runs", "hpc", run=True) == "gridspawner hub=h+runs backend=hpc kind=run"
    listing = "\n".join(["11|alice|gridspawner hub=h backend=hpc", "12|alice|gridspawner hub=h+runs backend=hpc kind=run",
                         "13|bob|gridspawner hub=h backend=hpc kind=runx"])
    assert ours(listing, "h", "hpc") == [(11, "alice")]
    assert ours(listing, "h+runs", "hpc") == [(12, "alice")]


def test_no_secret_of_the_environment_may_end_the_here_document():
    with pytest.raises(ValueError):
        batch_jobs.submit_batch_script([], "#!/bin/sh\n", "r/run-a.0a1b", {}, {"X": "a\nGS_ENV_END\nrm -rf ~"})
    assert os.path.exists("/bin/sh")


def test_a_runs_data_mounts_on_a_slurm_backend_are_a_field_error_at_submit():
    import nbformat

    from gridspawner.catalog import build_catalog
    from gridspawner.runs.submit import build_draft
    from gridspawner.vocabulary import OptionsError

    storage = {"ssh": {"lab": {"address": "lab.example", "known_hosts": "/kh", "paths": ["/data/*"],
                               "auth": ["password"]}}}
    catalog = build_catalog(backends={"hpc": {"kind": "slurm", "login_hosts": ["login.example"], "username": "alice"}},
                            images={"base": {"slurm": {}}}, default_options={"backend": "hpc", "image": "base"},
                            default_policy={"backends": ["hpc"], "images": ["base"]}, storage=storage)
    nb = nbformat.writes(nbformat.v4.new_notebook()).encode()
    assert build_draft({"notebook": nb, "options": {}}, catalog, [], "alice").request.backend_kind == "slurm"
    row = {"type": "ssh", "path": "/data/alice", "target": "inputs", "mode": "copy", "password": "pw"}
    with pytest.raises(OptionsError) as e:
        build_draft({"notebook": nb, "options": {"mounts": [row]}}, catalog, [], "alice")
    assert e.value.errors == {"mounts": "data mounts are not available on Slurm backends yet; remove the mounts"}
