"""The host scripts: exact text of the pure builders, and what they do when sh runs them.

Hostile values (command substitution, ';', backticks, newlines, quotes, unicode) must reach
their destination byte for byte and never run: each such test runs the built script with
/bin/sh against a temp dir and checks that a canary file was not created.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gridspawner.backends.host import confine, launch_scripts, ledger, ledger_hold, probe_scripts, scripts
from gridspawner.backends.host.inventory import Inventory, parse_probe
from gridspawner.gpu import GPUProbeError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAKE_SMI = str(FIXTURES / "fake_nvidia_smi")

FUNCS = """alive() {
  [ -n "$1" ] || return 1
  if [ -r "/proc/$1/stat" ]; then
    case "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)" in Z*|X*|'') return 1 ;; esac
    return 0
  fi
  kill -0 "$1" 2>/dev/null
}
group_alive() { kill -0 "-$1" 2>/dev/null; }
nap() { sleep 0.1 2>/dev/null || sleep 1; }
""" + confine.AS_ACCOUNT


def sh(script: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        ["/bin/sh", "-s"], input=script, capture_output=True, text=True, env={**base, **(env or {})}, timeout=timeout
    )


@pytest.fixture
def tmp():
    # short paths: unix sockets must stay under 104 bytes
    d = tempfile.mkdtemp(dir="/tmp", prefix="gsu-")
    yield Path(d)
    subprocess.run(["rm", "-rf", d], check=False)


HOSTILE = [
    "$(touch {canary})",
    "`touch {canary}`",
    "x; touch {canary}",
    "x && touch {canary} || touch {canary}",
    "a\nb\ntouch {canary}\n",
    "it's \"quoted\" $HOME \\ \\$(touch {canary})",
    "ünïcödé ✓ 日本語 $(touch {canary})",
    "' ; touch {canary} ; '",
    "-e",
    "",
]


# --------------------------------------------------------------------------- exact output


def test_release_script_exact():
    assert ledger_hold.release_script("/tmp/l/", ["GPU-a@1", "GPU-b@2"]) == (
        "{\n[ -O /tmp/l/GPU-a@1 ] && rm -f /tmp/l/GPU-a@1\n[ -O /tmp/l/GPU-b@2 ] && rm -f /tmp/l/GPU-b@2\n} </dev/null\n"
    )


def test_probe_script_exact():
    text = probe_scripts.probe_script(("nvidia-smi",), "/tmp/gridspawner ledger")
    assert text.startswith(
        "{\n"
        'gs_uuids=""\n'
        "if command -v nvidia-smi >/dev/null 2>&1; then\n"
        "  out=$(nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits 2>&1); rc=$?\n"
        '  echo "@@gpus $rc"\n'
        "  printf '%s\\n' \"$out\"\n"
        "  [ \"$rc\" = 0 ] && gs_uuids=$(printf '%s\\n' \"$out\" | cut -d, -f2 | sed 's/^ *//;s/ *$//')\n"
        "else\n"
        '  echo "@@gpus missing"\n'
        "fi\n"
        "L='/tmp/gridspawner ledger'\n"
    )
    assert text.endswith(ledger.probe_lines("/tmp/gridspawner ledger", shared=False, grace=120) + "} </dev/null\n")
    assert "gs_shared=1\n" in probe_scripts.probe_script(("nvidia-smi",), "/l", shared=True)


def test_poll_script_exact():
    assert probe_scripts.poll_script("/tmp/s/a-1", 42, ledger_dir="/tmp/l", ledger_entry="a-1.x",
                               ledger_claims=("GPU-a@1",)) == (
        "{\n" + FUNCS + "S=/tmp/s/a-1\n"
        + scripts.remove_session_func("/tmp/s/a-1") +
        "p=42\n"
        'cur=$(as_account cat "$S/pid" 2>/dev/null)\n'
        'if [ "$cur" = "$p" ] && alive "$p"; then\n'
        '  echo "@@running"\n'
        "else\n"
        '  if [ "$cur" = "$p" ] || [ ! -e "$S" ]; then\n'
        "    remove_session\n"
        "    [ -O /tmp/l/GPU-a@1 ] && rm -f /tmp/l/GPU-a@1\n"
        "    [ -O /tmp/l/a-1.x ] && rm -f /tmp/l/a-1.x\n"
        "  fi\n"
        '  echo "@@gone"\n'
        "fi\n"
        "} </dev/null\n"
    )


def test_wait_script_exact():
    assert probe_scripts.wait_script("/tmp/s/a-1", 7, 2.5, log_lines=5) == (
        "{\n" + FUNCS + "S=/tmp/s/a-1\n"
        "p=7\n"
        "n=25\n"
        "while :; do\n"
        '  if [ -S "$S/jupyter.sock" ]; then echo "@@ready"; exit 0; fi\n'
        '  if ! alive "$p"; then\n'
        '    echo "@@dead"\n'
        '    as_account tail -n 5 "$S/server.log" 2>/dev/null\n'
        "    exit 0\n"
        "  fi\n"
        '  [ "$n" -gt 0 ] || break\n'
        "  nap\n"
        "  n=$((n - 1))\n"
        "done\n"
        'echo "@@waiting"\n'
        "} </dev/null\n"
    )


def test_launch_script_exact():
    spec = launch_scripts.LaunchSpec(
        session_root="/tmp/gs",
        slug="alice-1",
        notebook_dir="~/nb/alice",
        env={"JUPYTERHUB_API_TOKEN": "t0k", "CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b"},
        cmd=("jupyterhub-singleuser", "--debug"),
        prefix=". /opt/venv/bin/activate",
        ledger_dir="/tmp/l",
        ledger_entry="alice-1.abcd",
        ledger_claims=("GPU-a@1", "GPU-b@3"),
    )
    assert spec.session_dir == "/tmp/gs/alice-1"
    assert spec.socket_path == "/tmp/gs/alice-1/jupyter.sock"
    assert launch_scripts.launch_script(spec) == (
        "{\n" + FUNCS + "umask 077\n"
        "R=/tmp/gs\n"
        "S=/tmp/gs/alice-1\n"
        + scripts.remove_session_func("/tmp/gs/alice-1") +
        'mkdir -p "$R" 2>/dev/null\n'
        'if [ -L "$R" ] || [ ! -d "$R" ] || [ ! -O "$R" ]; then\n'
        '  echo "session root $R is not a directory owned by $(id -un)" >&2\n'
        "  exit 10\n"
        "fi\n"
        'chmod 700 "$R" || exit 10\n'
        + ledger_hold.take_over_lines("/tmp/l", "alice-1.abcd", ("GPU-a@1", "GPU-b@3")) +
        'if [ -d "$S" ]; then\n'
        '  old=$(as_account cat "$S/pid" 2>/dev/null)\n'
        '  if alive "$old"; then\n'
        '    echo "@@busy $old"\n'
        "    exit 11\n"
        "  fi\n"
        "  remove_session || exit 15\n"
        "fi\n"
        'mkdir -m 700 "$S" || exit 10\n'
        'gs_cgroups=""\n'
        "export JUPYTERHUB_API_TOKEN=t0k\n"
        "export CUDA_VISIBLE_DEVICES=GPU-a,GPU-b\n"
        'N="$HOME"/nb/alice\n'
        'as_account mkdir -p "$N" && cd "$N" || { echo "cannot use notebook directory $N" >&2; remove_session; exit 12; }\n'
        "{\n"
        ". /opt/venv/bin/activate\n"
        "} >&2\n"
        'if [ "$(id -u)" = 0 ]; then set -- --allow-root; else set --; fi\n'
        "setsid -f /bin/sh -c " + shlex.quote(confine.JOIN_CGROUPS) +  ' sh "$gs_cgroups" /bin/sh -c '
        "'exec >\"$1/server.log\" 2>&1 </dev/null; echo $$ >\"$1/pid.new\" && mv -f \"$1/pid.new\" \"$1/pid\" || exit 126; shift; exec \"$@\"'"
        ' sh "$S" jupyterhub-singleuser --debug "$@" --ServerApp.sock="$S/jupyter.sock" --ServerApp.sock_mode=0600'
        ' >/dev/null 2>&1 </dev/null\n'
        "n=100\n"
        'while [ ! -s "$S/pid" ] && [ "$n" -gt 0 ]; do nap; n=$((n - 1)); done\n'
        'pid=$(as_account cat "$S/pid" 2>/dev/null)\n'
        "case $pid in *[!0-9]*) pid=\"\" ;; esac\n"
        'if [ -z "$pid" ]; then\n'
        '  echo "the server process did not start:" >&2\n'
        '  as_account tail -n 20 "$S/server.log" >&2 2>/dev/null\n'
        "  remove_session\n"
        "  exit 13\n"
        "fi\n"
        + ledger_hold.hold_lines("/tmp/l", ("GPU-a@1", "GPU-b@3")) +
        'echo "@@pid $pid"\n'
        "} </dev/null\n"
    )


def test_stop_script_exact_now():
    assert scripts.stop_script("/tmp/s/a-1", 42, ledger_dir="/tmp/l", ledger_entry="a-1.x", kill_timeout=2, now=True) == (
        "{\n" + FUNCS + "S=/tmp/s/a-1\n"
        + scripts.remove_session_func("/tmp/s/a-1") +
        "p=42\n"
        'done=""\n'
        "ladder() {\n"
        '  alive "$p" || { done=none; return; }\n'
        "  # as the session's account: a pid file it wrote never makes root signal another's process\n"
        '  as_account kill -s "$1" -- "-$p" 2>/dev/null\n'
        "  n=$2\n"
        '  while alive "$p" && [ "$n" -gt 0 ]; do nap; n=$((n - 1)); done\n'
        '  alive "$p" || done=$1\n'
        "}\n"
        'cur=$(as_account cat "$S/pid" 2>/dev/null)\n'
        'if [ "$cur" = "$p" ]; then\n'
        '  if [ -n "$p" ]; then\n'
        '    [ -n "$done" ] || ladder KILL 20\n'
        "    # what is left of the group (the server's children) goes with it\n"
        '    group_alive "$p" && as_account kill -s KILL -- "-$p" 2>/dev/null\n'
        "  else\n"
        "    done=none\n"
        "  fi\n"
        "  remove_session\n"
        "  [ -O /tmp/l/a-1.x ] && rm -f /tmp/l/a-1.x\n"
        'elif [ ! -e "$S" ]; then\n'
        "  done=none\n"
        "  [ -O /tmp/l/a-1.x ] && rm -f /tmp/l/a-1.x\n"
        "else\n"
        "  done=none  # the session directory belongs to a newer server of this session: not ours\n"
        "fi\n"
        'if [ -n "$done" ]; then echo "@@stopped $done"; else echo "@@survived"; fi\n'
        "} </dev/null\n"
    )


def test_stop_script_ladder_order_and_ticks():
    text = scripts.stop_script("/s/a", 9, interrupt_timeout=10, term_timeout=0.25, kill_timeout=5)
    steps = [line.strip() for line in text.splitlines() if "|| ladder" in line]
    assert steps == ['[ -n "$done" ] || ladder INT 100', '[ -n "$done" ] || ladder TERM 3', '[ -n "$done" ] || ladder KILL 50']
    # no pid known (a launch cut short): the session directory names the server
    assert 'p=$(as_account cat "$S/pid" 2>/dev/null); case $p in *[!0-9]*) p="" ;; esac\n' in scripts.stop_script("/s/a", None)


def test_export_lines_and_bad_names():
    assert scripts.export_lines({"A": "x y", "B_2": "$(id)"}) == "export A='x y'\nexport B_2='$(id)'\n"
    for bad in ("1A", "A-B", "A B", "A;touch x", ""):
        with pytest.raises(ValueError):
            scripts.export_lines({bad: "v"})


def test_check_slug_and_entry_name():
    assert scripts.check_slug("alice-0123456789") == "alice-0123456789"
    for bad in ("", "-a", "a/b", "a b", "a.b", "../x", "a\n", "ä"):
        with pytest.raises(ValueError):
            scripts.check_slug(bad)
    name = scripts.ledger_entry_name("/tmp/gs/alice-1", "alice-1")
    assert name.startswith("alice-1.") and len(name) == len("alice-1.") + 8
    assert name != scripts.ledger_entry_name("/tmp/other/alice-1", "alice-1")


def test_sh_path():
    assert scripts.sh_path("~/a b/c") == "\"$HOME\"/'a b/c'"
    assert scripts.sh_path("~") == '"$HOME"'
    assert scripts.sh_path("/x/$(id)") == "'/x/$(id)'"


# --------------------------------------------------------------------------- parsers


def test_parse_probe_missing_and_failing_smi():
    assert parse_probe("@@gpus missing\n@@ledger missing\n@@end\n") == Inventory((), (), has_nvidia_smi=False)
    with pytest.raises(GPUProbeError, match=r"nvidia-smi failed \(exit 9\): NVIDIA-SMI has failed"):
        parse_probe("@@gpus 9\nNVIDIA-SMI has failed because it couldn't communicate\n@@ledger ok\n@@end\n")
    with pytest.raises(GPUProbeError, match="unexpected probe output"):
        parse_probe("bash: line 1: syntax error\n")


def test_parse_marker():
    assert scripts.parse_marker("noise\n@@pid 12\n", "pid") == "12"
    assert scripts.parse_marker("@@ready\n", "ready") == ""
    assert scripts.parse_marker("@@readyish\n", "ready") is None
    assert scripts.parse_marker("@@pid 1\n@@pid 2\n", "pid") == "2"


# --------------------------------------------------------------------------- running the scripts


def test_probe_runs_fake_nvidia_smi(tmp):
    spec = "Tesla T4,15360;NVIDIA A10,23028,100"
    smi = ("env", f"FAKE_NVIDIA_SMI_GPUS={spec}", FAKE_SMI)
    inv = parse_probe(sh(probe_scripts.probe_script(smi, str(tmp / "l"))).stdout)
    assert [(g.index, g.name, g.memory_total_mib, g.memory_used_mib) for g in inv.gpus] == [
        (0, "Tesla T4", 15360, 0),
        (1, "NVIDIA A10", 23028, 100),
    ]
    assert all(g.uuid.startswith("GPU-") for g in inv.gpus)
    assert inv.entries == () and inv.ledger_problem is None


def test_probe_without_nvidia_smi_or_ledger(tmp):
    inv = parse_probe(sh(probe_scripts.probe_script(("/nonexistent/nvidia-smi",), str(tmp / "nope"))).stdout)
    assert inv == Inventory((), (), has_nvidia_smi=False)


def test_probe_broken_driver(tmp):
    smi = ("env", "FAKE_NVIDIA_SMI_GPUS=!fail", FAKE_SMI)
    with pytest.raises(GPUProbeError, match="exit 9"):
        parse_probe(sh(probe_scripts.probe_script(smi, str(tmp))).stdout)


def run_launch(tmp, *, env=None, cmd=None, notebook_dir=None, prefix=""):
    out = tmp / "out.json"
    dump = "import json, os, sys; json.dump({'env': dict(os.environ), 'argv': sys.argv[1:], 'cwd': os.getcwd()}, open(os.environ['OUT_FILE'], 'w'))"
    spec = launch_scripts.LaunchSpec(
        session_root=str(tmp / "s"),
        slug="alice-1",
        notebook_dir=notebook_dir or str(tmp / "nb"),
        env={"OUT_FILE": str(out), **(env or {})},
        cmd=(sys.executable, "-c", dump, *(cmd or ())),
        prefix=prefix,
    )
    r = sh(launch_scripts.launch_script(spec))
    assert r.returncode == 0, r.stderr
    pid = int(scripts.parse_marker(r.stdout, "pid"))
    for _ in range(100):
        if out.exists() and out.stat().st_size:
            break
        time.sleep(0.05)
    return pid, json.loads(out.read_text()), spec


def test_launch_with_hostile_values_delivers_them_verbatim(tmp):
    canary = tmp / "canary"
    values = [v.format(canary=canary) for v in HOSTILE]
    env = {f"GS_V{i}": v for i, v in enumerate(values)}
    nb = str(tmp / "nb $(touch {c}) `touch {c}` ; x\n ü").format(c=canary)
    pid, seen, spec = run_launch(tmp, env=env, cmd=values, notebook_dir=nb)
    assert not canary.exists()
    for name, value in env.items():
        assert seen["env"][name] == value
    # the hostile arguments arrive in order, then the socket arguments
    assert seen["argv"][: len(values)] == values
    extra = ["--allow-root"] if os.getuid() == 0 else []
    assert seen["argv"][len(values) :] == extra + [
        f"--ServerApp.sock={spec.socket_path}",
        "--ServerApp.sock_mode=0600",
    ]
    assert seen["cwd"] == nb
    assert os.path.isdir(nb)


def test_launch_makes_private_session_dir_and_own_session(tmp):
    pid, seen, spec = run_launch(tmp, prefix="export GS_FROM_PREFIX=yes\necho prefix output is not the pid")
    sdir = Path(spec.session_dir)
    assert oct(sdir.stat().st_mode & 0o777) == "0o700"
    assert oct(sdir.parent.stat().st_mode & 0o777) == "0o700"
    assert (sdir / "pid").read_text().strip() == str(pid)
    assert oct((sdir / "pid").stat().st_mode & 0o777) == "0o600"
    assert seen["env"]["GS_FROM_PREFIX"] == "yes"
    # nothing of the caller's environment leaks beyond what the script exports
    assert "HOME" in seen["env"] and "PYTEST_CURRENT_TEST" not in seen["env"]


def test_launch_refuses_foreign_session_root(tmp):
    target = tmp / "elsewhere"
    target.mkdir()
    (tmp / "s").symlink_to(target)
    spec = launch_scripts.LaunchSpec(str(tmp / "s"), "a-1", str(tmp), {}, ("true",))
    r = sh(launch_scripts.launch_script(spec))
    assert r.returncode == scripts.EXIT_ROOT and "not a directory owned by" in r.stderr
    assert list(target.iterdir()) == []


def start_sleeper(tmp, ignore: str = "") -> tuple[int, Path]:
    sdir = tmp / "s" / "a-1"
    sdir.mkdir(parents=True)
    code = (
        "import signal, sys, time\n"
        f"for s in {ignore!r}.split(','):\n"
        "    s and signal.signal(getattr(signal, 'SIG' + s), signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    (sdir / "pid").write_text(f"{p.pid}\n")
    return p, sdir


@pytest.mark.parametrize(
    "ignore, expected",
    [("", "INT"), ("INT", "TERM"), ("INT,TERM", "KILL")],
)
def test_stop_ladder(tmp, ignore, expected):
    p, sdir = start_sleeper(tmp, ignore)
    (tmp / "l").mkdir()
    (tmp / "l" / "a-1.x").write_text("uuid=GPU-1\n")
    script = scripts.stop_script(str(sdir), p.pid, ledger_dir=str(tmp / "l"), ledger_entry="a-1.x",
                                 interrupt_timeout=0.3, term_timeout=0.3, kill_timeout=2)
    r = sh(script)
    assert r.stdout == f"@@stopped {expected}\n", r.stderr
    assert p.wait(5) is not None
    assert not sdir.exists() and not (tmp / "l" / "a-1.x").exists()


def test_stop_never_signals_a_pid_the_session_does_not_name(tmp):
    p, sdir = start_sleeper(tmp)
    try:
        (sdir / "pid").write_text("999999\n")  # a newer server of the session
        r = sh(scripts.stop_script(str(sdir), p.pid, now=True))
        assert r.stdout == "@@stopped none\n"
        assert p.poll() is None and sdir.exists()
    finally:
        p.kill()
        p.wait()


def test_poll_script(tmp):
    p, sdir = start_sleeper(tmp)
    (tmp / "l").mkdir()
    (tmp / "l" / "a-1.x").write_text("uuid=GPU-1\n")
    poll = probe_scripts.poll_script(str(sdir), p.pid, ledger_dir=str(tmp / "l"), ledger_entry="a-1.x")
    assert sh(poll).stdout == "@@running\n"
    p.kill()
    p.wait()
    assert sh(poll).stdout == "@@gone\n"
    # the hub calls no stop() for a server found gone: poll cleans up
    assert not sdir.exists() and not (tmp / "l" / "a-1.x").exists()


# --------------------------------------------------------------------------- data mounts

from gridspawner.backends.host.mount_reports import describe_mount, mount_failure  # noqa: E402
from gridspawner.backends.host.transport import RunResult  # noqa: E402
from gridspawner.mounts.resolved import ResolvedMount, S3Secret, S3Source, SSHSecret, SSHSource  # noqa: E402
from gridspawner.mounts.specs import MountSpec  # noqa: E402

MOUNT_SECRET = "s3cr3t+/KEY=value"


def s3_host_mount(index=0, target="d", mode="mount", read_only=False):
    return ResolvedMount(index, target, mode, read_only, S3Source("http://127.0.0.1:9", "lab-data", "alice/run1/"),
                     S3Secret("AKIAX", MOUNT_SECRET))


def mount_spec(**kw):
    return launch_scripts.LaunchSpec(
        session_root="/tmp/gs", slug="alice-1", notebook_dir="~/nb/alice",
        env={"JUPYTERHUB_API_TOKEN": "t0k"}, cmd=("jupyterhub-singleuser",), **kw,
    )


def test_launch_script_mounts_after_the_session_dir_and_before_the_server():
    spec = mount_spec(mounts=(s3_host_mount(0, "d"), s3_host_mount(1, "c", mode="copy")), data_link="data")
    text = launch_scripts.launch_script(spec)
    made, mounted = text.index('mkdir -m 700 "$S" || exit 10\n'), text.index("\n(\n")
    assert made < mounted < text.index("export JUPYTERHUB_API_TOKEN") < text.index("N=") < text.index("setsid -f")
    # the mount step runs in a subshell; any failure of it (or of a mount's first listing)
    # removes the session (unmounting first) and exits EXIT_MOUNT
    assert ") && mount_check 0 /tmp/gs/alice-1/data/d || { remove_session; exit 14; }\n" in text
    assert "mount_check 1" not in text  # a copy is no mount
    # the secret only in a here-doc of the script text: never on a command line or exported
    assert {ln for ln in text.splitlines() if MOUNT_SECRET in ln} == {f"secret_access_key = {MOUNT_SECRET}"}
    assert 'ln -s "$S/data" "$G" && echo "@@data-link $PWD/$G"' in text
    assert text.index("G=data") > text.index('cd "$N"')
    # no mounts: no mount step, no link
    plain = launch_scripts.launch_script(mount_spec(data_link="data"))
    assert "mount_check" not in plain and "@@data-link" not in plain and "hostcmd" not in plain


def test_launch_script_refuses_what_the_mount_tools_cannot_express():
    with pytest.raises(ValueError):
        launch_scripts.launch_script(mount_spec(mounts=(s3_host_mount(target="../x"),)))
    with pytest.raises(ValueError):
        launch_scripts.launch_script(mount_spec(mounts=(s3_host_mount(),), data_link="a/b"))
    with pytest.raises(ValueError):  # s3fs cannot take STS session tokens
        m = ResolvedMount(0, "d", "mount", False, S3Source("http://h:9", "lab-data"), S3Secret("a", "b", "tok"))
        launch_scripts.launch_script(mount_spec(mounts=(m,), mount_tool="s3fs"))


def test_every_session_removal_unmounts_first():
    for text in (
        scripts.stop_script("/tmp/s/a-1", 42),
        probe_scripts.poll_script("/tmp/s/a-1", 42),
        scripts.remove_tree_script("/tmp/s/a-1"),
        launch_scripts.launch_script(mount_spec()),
    ):
        assert 'rm -rf "$S"' not in text.replace(scripts.remove_session_func(text.split("S=", 1)[1].split("\n", 1)[0]), "")
        assert "gs_unmount_all" in text and ("remove_session\n" in text or "remove_session ||" in text)


def test_data_link_is_removed_only_when_it_points_into_the_session():
    text = scripts.stop_script("/tmp/s/a-1", 42, data_link="/home/alice/nb/data")
    assert '[ -L /home/alice/nb/data ] && [ "$(readlink /home/alice/nb/data)" = "$S/data" ] && rm -f /home/alice/nb/data\n' in text
    assert "readlink" in probe_scripts.poll_script("/tmp/s/a-1", 42, data_link="/x/data")


def test_session_dirs_outside_the_mount_safe_characters_still_clean_up(tmp):
    """A session root with a space cannot hold mounts (hostcmd refuses it) but must stop and
    clean up as before."""
    sdir = tmp / "s p" / "a-1"
    sdir.mkdir(parents=True)
    (sdir / "pid").write_text("")
    r = sh(scripts.stop_script(str(sdir), None, now=True))
    assert r.stdout == "@@stopped none\n", r.stderr
    assert not sdir.exists()
    sdir.mkdir()
    r = sh(scripts.remove_tree_script(str(sdir)))
    assert r.returncode == 0 and not sdir.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_remove_session_never_deletes_into_a_mount_point(tmp):
    """Whatever is mounted below a session directory (ours, or one the user made) and
    cannot be unmounted keeps the directory: rm -rf would walk into it."""
    sdir = tmp / "s" / "a-1"
    other = sdir / "elsewhere"
    other.mkdir(parents=True)
    assert subprocess.run(["mount", "-t", "tmpfs", "gs-test", str(other)]).returncode == 0
    try:
        (other / "precious.txt").write_text("remote data")
        r = sh(scripts.stop_script(str(sdir), None, now=True))
        assert "@@stopped none" in r.stdout and f"@@mounts-left {other}" in r.stdout, r.stdout + r.stderr
        assert (other / "precious.txt").read_text() == "remote data"
        r = sh(scripts.remove_tree_script(str(sdir)))
        assert "@@mounts-left" in r.stdout and (other / "precious.txt").exists()
    finally:
        subprocess.run(["umount", "-l", str(other)])
    r = sh(scripts.remove_tree_script(str(sdir)))
    assert r.stdout == "" and not sdir.exists()


def test_mount_descriptions_and_failure_messages():
    s3 = s3_host_mount(0, "run1", read_only=True)
    spec = MountSpec(type="s3", target="run1", read_only=True, endpoint="campus", bucket="lab-data", prefix="alice/run1/")
    assert describe_mount(s3, spec) == "s3 campus:lab-data/alice/run1 → data/run1 (read-only)"
    assert describe_mount(s3, None, "mydata") == "s3 lab-data/alice/run1 → mydata/run1 (read-only)"
    ssh = ResolvedMount(1, "home", "copy", False, SSHSource("10.0.0.5", "alice", "/export/alice"), SSHSecret(password="pw"))
    assert describe_mount(ssh, MountSpec(type="ssh", target="home", mode="copy", host="nas")) == "ssh nas:/export/alice → data/home"
    result = RunResult(14, "@@mounted 0\n@@mount-failed 1\n", "x\nERROR : permission denied\n")
    described = ["s3 … → data/run1", "ssh nas:/export/alice → data/home"]
    msg = mount_failure(result, (s3, ssh), described, "gpu1")
    assert msg == "mount 2 (ssh nas:/export/alice → data/home) on gpu1 failed: x\nERROR : permission denied"
    assert mount_failure(RunResult(14, "@@mount-failed -1\n", ""), (s3,), described, "h") == (
        "preparing the data directory on h failed"
    )
