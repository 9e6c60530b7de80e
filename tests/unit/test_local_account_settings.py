"""Per-user accounts and cgroup limits of the local backend: settings (start-up errors naming
the key), the account mapping, and the pure sh builders of `host.confine`."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from gridspawner.backends.base import BackendError
from gridspawner.backends.host import accounts, confine, launch_scripts
from gridspawner.backends.local import LocalBackend
from gridspawner.catalog import CatalogError

KEY = "c.GridSpawner.backends['here']"


def parse(raw, root=True, monkeypatch=None):
    return LocalBackend.parse_settings("here", raw, KEY)


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(accounts.os, "geteuid", lambda: 0)


@pytest.fixture
def not_root(monkeypatch):
    monkeypatch.setattr(accounts.os, "geteuid", lambda: 1000)


def test_defaults_follow_the_hubs_account(as_root):
    s = parse({})
    assert (s.run_as, s.account, s.create_accounts, s.enforce_limits) == ("user", "{username}", False, True)
    assert LocalBackend.resource_limits(s) == "all"
    assert LocalBackend.resource_limits(parse({"enforce_limits": False})) == "none"


def test_defaults_without_root(not_root):
    s = parse({})
    assert (s.run_as, s.enforce_limits) == ("hub", False)
    assert LocalBackend.resource_limits(s) == "none"


@pytest.mark.parametrize("raw, key, words", [
    ({"run_as": "root"}, "run_as", "'user' or 'hub'"),
    ({"account": ""}, "account", "template"),
    ({"account": "{user}"}, "account", "{user}"),
    ({"account": 7}, "account", "template"),
    ({"create_accounts": "yes"}, "create_accounts", "true or false"),
    ({"create_accounts": True, "run_as": "hub"}, "create_accounts", "only applies"),
    ({"enforce_limits": 1}, "enforce_limits", "true or false"),
    ({"account_function": "no.such.module:f"}, "account_function", "cannot import"),
    ({"account_function": "os:sep"}, "account_function", "not a function"),
    ({"account_function": 3}, "account_function", "import string"),
])
def test_bad_values_name_their_key(as_root, raw, key, words):
    with pytest.raises(CatalogError) as e:
        parse(raw)
    assert f"{KEY}['{key}']" in str(e.value) and words in str(e.value)


def test_user_accounts_and_limits_need_root(not_root):
    for raw, key in (({"run_as": "user"}, "run_as"), ({"enforce_limits": True}, "enforce_limits")):
        with pytest.raises(CatalogError, match=rf"\['{key}'\].*root"):
            parse(raw)


def test_account_names(as_root):
    assert accounts.account_name(parse({}), "alice") == "alice"
    assert accounts.account_name(parse({"account": "jh-{username}"}), "alice") == "jh-alice"
    assert accounts.account_name(parse({"account_function": lambda u: "x" + u.upper().lower()}), "bob") == "xbob"
    assert accounts.account_name(parse({"account_function": "posixpath:basename"}), "carol") == "carol"
    for user in ("Alice", "a b", "../x", "a;rm -rf", "-rf", "x" * 40, ""):
        with pytest.raises(BackendError, match="not a safe account name"):
            accounts.account_name(parse({}), user)

    def broken(user):
        raise KeyError(user)

    with pytest.raises(BackendError, match="account function failed for 'dave'"):
        accounts.account_name(parse({"account_function": broken}), "dave")
    b = LocalBackend("here", parse({"account": "jh-{username}"}))
    assert b.account_for("localhost", "eve") == "jh-eve"
    assert b.account_for("localhost", None) != "jh-eve"  # background work: the hub's account


async def test_missing_and_system_accounts_are_refused():
    with pytest.raises(BackendError, match="no Unix account 'gs-surely-missing'"):
        await accounts.resolve_account("gs-surely-missing", create=False, timeout=5)
    with pytest.raises(BackendError, match="system account"):
        await accounts.resolve_account("daemon", create=False, timeout=5)


def test_exposed_hub_files():
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        os.chmod(d, 0o755)
        open_file, closed, keys = f"{d}/db", f"{d}/secret", f"{d}/keys"
        for p, mode in ((open_file, 0o644), (closed, 0o600)):
            with open(p, "w"):
                pass
            os.chmod(p, mode)
        os.mkdir(keys, 0o711)
        assert accounts.exposed_files((open_file, closed, keys, f"{d}/missing")) == [
            f"{open_file} (mode 644)", f"{keys} (mode 711)"]
        os.chmod(d, 0o700)  # a private directory protects what is in it
        assert accounts.exposed_files((open_file, keys)) == []
    assert accounts.hub_files(db_url="sqlite:///jupyterhub.sqlite", cookie_secret_file="/srv/jh/cookie",
                              usage_db_url="postgresql://x/y", key_dir="/srv/keys")[:3] == (
        os.path.abspath("jupyterhub.sqlite"), "/srv/jh/cookie", "/srv/keys")
    assert accounts.sqlite_file("sqlite:///:memory:") is None and accounts.sqlite_file("sqlite:////a/b.db") == "/a/b.db"


def test_limits_and_cgroup_names():
    assert confine.limits_of(2.5, 16) == confine.Limits(2.5, 16_000_000_000)
    assert not confine.limits_of(None, None) and confine.limits_of(1, None)
    a, b = confine.cgroup_name("/tmp/s/alice-1"), confine.cgroup_name("/tmp/s/bob-1")
    assert a != b and a.startswith("gs-") and a == confine.cgroup_name("/tmp/s/alice-1")
    text = confine.cgroup_setup_lines("/tmp/s/alice-1", confine.Limits(1.5, 2_000_000_000))
    assert "150000 100000" in text and "cpu.cfs_quota_us" in text and "2000000000" in text
    assert "memory.swap.max" in text and "memory.memsw.limit_in_bytes" in text
    only_cpu = confine.cgroup_setup_lines("/tmp/s/alice-1", confine.Limits(cpu=1))
    assert "memory.max" not in only_cpu and "limit_in_bytes" not in only_cpu


def test_as_account_script_keeps_secrets_off_argv_and_refuses_its_tag():
    body = "echo s3cr3t\n"
    text = confine.as_account_script(body)
    assert text.startswith("as_account /bin/sh -s <<'GS_AS_ACCOUNT_") and "s3cr3t" in text.split("\n", 1)[1]
    # the here-document's end is named after the body: text in it never ends it early
    tricky = "echo one\nGS_AS_ACCOUNT_0123456789abcdef\necho 'two $(x)'\n"
    out = run("S=/nonexistent\n" + confine.AS_ACCOUNT + "{\n" + confine.as_account_script(tricky) + "} </dev/null\n")
    assert out.stdout == "one\ntwo $(x)\n" and "GS_AS_ACCOUNT_0123456789abcdef: not found" in out.stderr


def run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-s"], input=script, capture_output=True, text=True, timeout=30)


def test_as_account_runs_as_the_owner_of_the_session_directory():
    """Root runs as is in its own directory; in a directory handed to another account the
    command runs as that account (here: nobody)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o711)
        s = f"{d}/sess"
        os.mkdir(s, 0o700)
        check = f"S={s}\n" + confine.AS_ACCOUNT + "as_account id -u\n"
        assert run(check).stdout.strip() == "0"
        os.chown(s, 65534, 65534)
        assert run(check).stdout.strip() == "65534"


def test_the_launch_script_hands_the_session_over_and_never_allows_root():
    acct = confine.Account("alice", 1234, 1235, "/home/alice")
    spec = launch_scripts.LaunchSpec(session_root="/tmp/gs", slug="alice-1", notebook_dir="~/nb", env={}, cmd=("x",),
                              account=acct, limits=confine.Limits(cpu=1))
    text = launch_scripts.launch_script(spec)
    assert 'chown 1234:1235 "$S"' in text and 'chmod 711 "$R"' in text
    assert "setpriv --reuid=1234 --regid=1235 --init-groups -- /bin/sh -c" in text
    assert "--allow-root" not in text and "gs_limits_fail" in text
    plain = launch_scripts.launch_script(launch_scripts.LaunchSpec(session_root="/tmp/gs", slug="alice-1", notebook_dir="~/nb",
                                                     env={}, cmd=("x",)))
    assert "chown" not in plain and "setpriv --reuid=1234" not in plain and 'gs_cgroups=""' in plain
