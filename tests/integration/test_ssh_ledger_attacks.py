"""The host-side GPU ledger under attack by another account on the host.

A lab host with two GPUs; the hub logs in as each user's own account (``username:
"{username}"``: alice, bob and carol), so several accounts share the ledger; eve is a
student with a shell on the host (an unprivileged account made here). Eve tries every attack
on the ledger — pre-creating its directory, deleting or altering another account's claim,
holding a lock, forging claims — and the test asserts that a GPU is never handed out twice,
that claims are not blocked beyond a bound, and that an unsafe ledger is refused with the
command that fixes it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relayhttp import http_get  # noqa: E402
from sshhosts import available  # noqa: E402
from sshhosts.accounts import run_as, unix_accounts  # noqa: E402
from sshhosts.backend_env import SERVER, Env, cleanup, context, image, lab_fixture, launch, request, smi, stop  # noqa: E402

from gridspawner.backends.base import BackendError, NoCapacity  # noqa: E402
from gridspawner.backends.host.ledger import gpu_key  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

TWO_T4 = "Tesla T4,15360;Tesla T4,15360"
#: how long a launch may take here while eve attacks (a normal one takes about a second)
BOUND = 10.0
TAG = os.getpid() % 10000


lab = lab_fixture("a", accounts=True)


@pytest.fixture(scope="module")
def accounts():
    with unix_accounts(*(f"{n}{TAG}" for n in ("gsalice", "gsbob", "gscarol", "gseve"))) as names:
        yield dict(zip(("alice", "bob", "carol", "eve"), names))


@pytest.fixture
async def env(lab, accounts):
    e = Env(lab, Path(tempfile.mkdtemp(prefix="gsatk-")))
    e.ledger_dir = Path(f"/tmp/gsatk{TAG}-{e.root.name[-6:]}")  # in /tmp, like the default
    yield e
    await cleanup(e)
    shutil.rmtree(e.ledger_dir, ignore_errors=True)
    for a in accounts.values():
        shutil.rmtree(e.session_root.replace("{account}", a), ignore_errors=True)


def backend(env: Env):
    return env.backend([env.host("a", nvidia_smi=smi("a", TWO_T4))], username="{username}", probe_username="root",
                       notebook_dir="~/nb", ledger_dir=str(env.ledger_dir))


IMG = image(cmd=["/usr/bin/python3", SERVER])


async def spawn(env: Env, b, user: str, gpus: int = 1):
    t0 = time.monotonic()
    r = await launch(env, b, context(user=user), request(gpus, img=IMG))
    return r, time.monotonic() - t0


def eve(accounts, command: str) -> subprocess.CompletedProcess:
    return run_as(accounts["eve"], "/bin/sh", "-c", command)


def make_ledger_as_root(env: Env) -> None:
    """What the refusal message tells the admin to run (checked in the first test)."""
    subprocess.run(["install", "-d", "-o", "root", "-g", "root", "-m", "1777", str(env.ledger_dir)], check=True)


def fix_command(message: str) -> str:
    """The command a refusal message gives the admin (after "as root on a: ")."""
    return message.split("as root on a: ", 1)[1].split("   (", 1)[0]


async def test_a_ledger_made_by_another_account_is_refused_with_the_fix(env, accounts):
    b = backend(env)
    alice = accounts["alice"]
    # a shared ledger that does not exist yet is never made by one of the accounts
    with pytest.raises(BackendError) as e:
        await b.launch(context(user=alice), request(1, img=IMG))
    assert not isinstance(e.value, NoCapacity)
    assert f"the GPU ledger {env.ledger_dir} on a is not safe to use: it does not exist" in str(e.value)
    assert not env.ledger_dir.exists()
    # eve gets there first: her directory, anyone may write
    assert eve(accounts, f"mkdir -m 777 {env.ledger_dir}").returncode == 0
    with pytest.raises(BackendError) as e:
        await b.launch(context(user=alice), request(1, img=IMG))
    msg = str(e.value)
    assert not isinstance(e.value, NoCapacity)
    assert f"it is owned by {accounts['eve']}, not by root" in msg and "No GPU is handed out on a" in msg
    assert os.listdir(env.ledger_dir) == []  # no claim went into eve's directory
    cap = await b.probe_capacity()
    assert not cap.hosts[0].reachable and "not safe to use" in cap.hosts[0].error
    # the admin runs the command from the message; then claims work
    fix = fix_command(msg)
    assert fix == f"chown root:root {env.ledger_dir} && chmod 1777 {env.ledger_dir}"
    subprocess.run(["sh", "-c", fix], check=True)
    r, _ = await spawn(env, b, alice)
    assert len(r.gpus) == 1
    # eve no longer owns the directory: she cannot delete alice's claim now
    (claim,) = r.state["ledger_claims"]
    assert eve(accounts, f"rm -f {env.ledger_dir}/{claim}").returncode != 0
    assert (env.ledger_dir / claim).exists()
    await stop(env, b, r)


async def test_eve_cannot_delete_alter_or_block_a_claim(env, accounts):
    make_ledger_as_root(env)
    b = backend(env)
    held, _ = await spawn(env, b, accounts["alice"])
    (claim,) = held.state["ledger_claims"]
    path = env.ledger_dir / claim
    before = path.read_text()
    attacks = {
        "delete": f"rm -f {path}",
        "rename": f"mv {path} {env.ledger_dir}/x",
        "overwrite": f"echo 'uuid=nothing' >{path}",
        "append a holder": f"echo 'hold=1' >>{path}",
        "truncate": f"truncate -s 0 {path}",
        "chmod": f"chmod 666 {path}",
        "replace with a link": f"ln -sf /dev/null {path}",
    }
    for what, command in attacks.items():
        eve(accounts, command)
        assert path.is_file() and not path.is_symlink() and path.read_text() == before, what
    # the old ledger's lock: eve holds a lock on a file she made there, for longer than the
    # old claim waited (10 s). No claim takes a lock any more.
    locker = subprocess.Popen(["runuser", "-u", accounts["eve"], "--", "flock", "-s", str(env.ledger_dir / ".lock"),
                               "sleep", "60"], start_new_session=True)
    try:
        time.sleep(0.5)
        r, took = await spawn(env, b, accounts["bob"])
        assert took < BOUND, took
        assert r.gpus[0].uuid != held.gpus[0].uuid  # the other GPU: never the same one twice
        with pytest.raises(NoCapacity):  # both GPUs are taken
            await b.launch(context(user=accounts["carol"]), request(1, img=IMG))
    finally:
        os.killpg(locker.pid, 9)
        locker.wait()
    assert (await http_get(held.url))[0] == 200
    await stop(env, b, r)
    await stop(env, b, held)


async def test_forged_claims_neither_block_a_gpu_nor_free_a_held_one(env, accounts):
    make_ledger_as_root(env)
    b = backend(env)
    held, _ = await spawn(env, b, accounts["alice"])
    (taken,) = held.gpus
    free = next(g for g in (await b.probe_capacity()).hosts[0].gpus if g.uuid != taken.uuid)
    fk, tk = gpu_key(free.uuid), gpu_key(taken.uuid)
    L = env.ledger_dir
    alice_pid = held.state["pid"]
    forgeries = [
        # the free GPU, "held" by alice's server (not eve's process), by pid 1, by nobody for ever
        f"printf 'uuid={free.uuid}\\nentry=x\\nhold={alice_pid} 0\\n' >{L}/{fk}@1",
        f"printf 'uuid={free.uuid}\\nentry=x\\nhold=1\\n' >{L}/{fk}@2",
        # a file that says it is the free GPU under another GPU's name, and garbage
        f"printf 'uuid={taken.uuid}\\nhold=1\\n' >{L}/{fk}@3",
        f"head -c 100000 /dev/zero >{L}/{fk}@4",
        # a link to alice's claim (so it would look like alice holds the free GPU too)
        f"ln -s {L}/{held.state['ledger_claims'][0]} {L}/{fk}@5",
        f"mkfifo {L}/{fk}@6",
        # the GPU alice holds: a later slot saying nobody holds it (it must stay alice's)
        f"printf 'uuid={taken.uuid}\\nentry=x\\n' >{L}/{tk}@7",
    ]
    for command in forgeries:
        assert eve(accounts, command).returncode == 0, command
    # eve's files without a live holder of hers count for ledger_grace at most: with the
    # default 120 s the free GPU may be "pending" now — what is never allowed is handing out
    # alice's GPU, and blocking beyond that bound. Shorten the bound for the test:
    short = env.backend([env.host("a", nvidia_smi=smi("a", TWO_T4))], username="{username}", probe_username="root",
                        notebook_dir="~/nb", ledger_dir=str(L), ledger_grace=2)
    t0 = time.monotonic()
    deadline = t0 + 2 + BOUND
    while True:
        try:
            r, took = await spawn(env, short, accounts["bob"])
            break
        except NoCapacity:
            assert time.monotonic() < deadline, "forged claims blocked the free GPU beyond ledger_grace"
            await asyncio.sleep(0.5)
    print(f"\nthe free GPU was handed out {time.monotonic() - t0:.1f} s after eve's forgeries (ledger_grace 2 s)")
    assert r.gpus[0].uuid == free.uuid and r.gpus[0].uuid != taken.uuid
    # the claims were judged, not trusted: the probe shows eve's files as what they are
    states = {e.name: (e.state, e.account) for e in (await short._probe(short.probe_login("a"))).entries}
    assert states[f"{fk}@1"] == ("forged", accounts["eve"])  # alice's pid is not eve's process
    assert states[f"{fk}@2"] == ("forged", accounts["eve"])  # pid 1 is root's
    assert states[f"{tk}@7"][0] in ("pending", "stale")  # never a way to free alice's GPU
    with pytest.raises(NoCapacity):
        await short.launch(context(user=accounts["carol"]), request(1, img=IMG))
    await stop(env, short, r)
    await stop(env, b, held)


async def test_a_live_claim_of_eves_own_holds_a_gpu_and_names_her(env, accounts):
    """Eve can claim a GPU with a process of her own (as she could simply use it: isolation
    by CUDA_VISIBLE_DEVICES is no boundary); the GPU is then never handed out, and the ledger
    says who holds it. Only a root-made group ledger (mode 1770) keeps her out entirely."""
    make_ledger_as_root(env)
    b = backend(env)
    cap = await b.probe_capacity()
    first = cap.hosts[0].gpus[0]
    k = gpu_key(first.uuid)
    sleeper = subprocess.Popen(["runuser", "-u", accounts["eve"], "--", "/bin/sh", "-c", "echo $$; exec sleep 120"],
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pid = int(sleeper.stdout.readline())
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        eve(accounts, f"printf 'uuid={first.uuid}\\nentry=eve\\nhold={pid} {start}\\n' >{env.ledger_dir}/{k}@1")
        r, _ = await spawn(env, b, accounts["alice"])
        assert r.gpus[0].uuid != first.uuid
        entries = {e.name: e for e in (await b._probe(b.probe_login("a"))).entries}
        assert (entries[f"{k}@1"].state, entries[f"{k}@1"].account) == ("held", accounts["eve"])
        await stop(env, b, r)
    finally:
        os.killpg(sleeper.pid, 9)
        sleeper.wait()


CONNECT = ("import socket, sys\n"
           "s = socket.socket(socket.AF_UNIX)\n"
           "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    sys.exit(f'refused: {e}')\n"
           "print('connected')\n")


async def test_accounts_sharing_a_host_cannot_reach_each_others_sessions(env, accounts):
    """Several accounts on one host: each has its own session root and 0700 session
    directories; neither another user nor eve can list, read, connect to or signal what is
    in them (socket, pid file, log, mount credentials)."""
    make_ledger_as_root(env)
    b = backend(env)
    ra, _ = await spawn(env, b, accounts["alice"], gpus=0)
    rb, _ = await spawn(env, b, accounts["bob"], gpus=0)
    a_dir, b_dir = Path(ra.state["session_dir"]), Path(rb.state["session_dir"])
    assert a_dir.parent != b_dir.parent  # one session root per account
    assert (a_dir.stat().st_mode & 0o777, b_dir.stat().st_mode & 0o777) == (0o700, 0o700)
    (a_dir / ".mounts").mkdir(mode=0o700, exist_ok=True)  # where a mount's credentials live
    creds = a_dir / ".mounts" / "0.conf"
    creds.write_text("secret_access_key = s3cr3t\n")
    os.chmod(creds, 0o600)
    shutil.chown(a_dir / ".mounts", accounts["alice"], accounts["alice"])
    shutil.chown(creds, accounts["alice"], accounts["alice"])
    for who in (accounts["bob"], accounts["eve"]):
        for argv in (["ls", str(a_dir)], ["cat", str(a_dir / "server.log")], ["cat", str(a_dir / "pid")],
                     ["cat", str(creds)], ["kill", "-s", "TERM", str(ra.state["pid"])],
                     ["/usr/bin/python3", "-c", CONNECT, ra.state["socket"]]):
            done = run_as(who, *argv)
            assert done.returncode != 0 and "connected" not in done.stdout, (who, argv, done.stdout)
    assert run_as(accounts["alice"], "cat", str(creds)).stdout == "secret_access_key = s3cr3t\n"
    assert (await http_get(ra.url))[0] == 200 and (await http_get(rb.url))[0] == 200
    await stop(env, b, ra)
    await stop(env, b, rb)
