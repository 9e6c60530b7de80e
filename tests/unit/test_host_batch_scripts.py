"""The host batch-job scripts (pure): quoting, the files written by here-document, and the
collect script's answer parsed back (files, exit status, log tail)."""

from __future__ import annotations

import base64
import subprocess

import pytest

from gridspawner.backends.host import batch_scripts as bs
from gridspawner.backends.host.launch_scripts import LaunchSpec


def spec(tmp_path, cmd=("echo", "$(id); rm -rf /")) -> LaunchSpec:
    return LaunchSpec(session_root=str(tmp_path / "root"), slug="run-abc", notebook_dir=str(tmp_path / "nb"),
                      env={"A": "x'y"}, cmd=tuple(cmd))


def test_argv_and_env_are_quoted_never_interpreted(tmp_path):
    script = bs.batch_script(spec(tmp_path), {"input.ipynb": b"\x00\x01 '$(id)'"}, {"B": "$HOME"})
    r = subprocess.run(["/bin/sh", "-s"], input=script.encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    sdir = tmp_path / "root" / "run-abc"
    for _ in range(50):
        if (sdir / "exit").exists():
            break
        subprocess.run(["sleep", "0.1"])
    assert (sdir / "log").read_text() == "$(id); rm -rf /\n"
    assert (sdir / "work" / "input.ipynb").read_bytes() == b"\x00\x01 '$(id)'"
    assert (sdir / "exit").read_text().strip() == "0"
    out = subprocess.run(["/bin/sh", "-s"], input=bs.collect_script(str(sdir), ["input.ipynb", "missing"], 100).encode(),
                         capture_output=True, timeout=30).stdout.decode()
    code, files, log, too_big = bs.parse_collect(out)
    assert code == 0 and files == {"input.ipynb": b"\x00\x01 '$(id)'"} and log == "$(id); rm -rf /\n" and too_big == []


def test_unsafe_file_names_are_refused(tmp_path):
    for name in ("../x", "a/b", "", ".."):
        with pytest.raises(ValueError):
            bs.write_files({name: b""})
        with pytest.raises(ValueError):
            bs.collect_script("/s", [name], 10)


def test_parse_collect_reads_markers():
    blob = base64.encodebytes(b"notebook").decode()
    out = f"@@file output.ipynb\n{blob}@@end\n@@too-big big.bin 999\n@@exit 3\n@@log\n{base64.b64encode(b'tail').decode()}\n@@end\n"
    assert bs.parse_collect(out) == (3, {"output.ipynb": b"notebook"}, "tail", ["big.bin 999"])
    assert bs.parse_collect("@@exit none\n@@log\n@@end\n")[0] is None


def test_collect_refuses_a_symlinked_log_and_output(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root only")
    sdir = tmp_path / "root" / "run-abc"
    (sdir / "work").mkdir(parents=True)
    (sdir / "log").symlink_to(secret)
    (sdir / "work" / "output.ipynb").symlink_to(secret)
    out = subprocess.run(["/bin/sh", "-s"], input=bs.collect_script(str(sdir), ["output.ipynb"], 100).encode(),
                         capture_output=True, timeout=30).stdout.decode()
    assert bs.parse_collect(out) == (None, {}, "", [])


def test_a_job_of_an_account_gets_its_servers_confinement(tmp_path):
    from gridspawner.backends.host import confine

    s = LaunchSpec(session_root=str(tmp_path / "root"), slug="run-abc", notebook_dir="~", env={}, cmd=("true",),
                   account=confine.Account("alice", 1234, 1234, "/home/alice"), limits=confine.Limits(memory=10**9))
    script = bs.batch_script(s, {"input.ipynb": b"x"}, {})
    assert 'chmod 711 "$R"' in script and 'chmod 700 "$R"' not in script  # the shared root stays 0711
    assert confine.hand_over_lines(s.account) in script
    assert confine.cgroup_setup_lines(s.session_dir, s.limits) in script
    start = next(line for line in script.splitlines() if line.startswith("setsid -f"))
    assert " ".join(confine.become_words(s.account)) in start and start.endswith(">/dev/null 2>&1 </dev/null")
    assert 'as_account cat "$S/pid"' in script and 'echo kind=run >>"$S/owner"' in script
    for reader in (bs.batch_poll_script(s.session_dir, 5), bs.kill_tree_script(s.session_dir, 5)):
        assert 'as_account cat "$S/pid"' in reader and 'cat "$S/pid"' not in reader.replace("as_account cat", "")
    assert bs.collect_script(s.session_dir, ["output.ipynb"], 10).count("as_account /bin/sh -s") == 1
