"""Settings of the local (host) backend and of images on it: validation and messages."""

from __future__ import annotations

import os

import pytest

from gridspawner.backends.host.settings import HostImage, HostSettings
from gridspawner.vocabulary import user_dir_name
from gridspawner.backends.local import LocalBackend, LocalSettings
from gridspawner.catalog import CatalogError

KEY = "c.GridSpawner.backends['here']"
IKEY = "c.GridSpawner.images['torch']['local']"


def parse(raw):
    return LocalBackend.parse_settings("here", raw, KEY)


def error(raw) -> CatalogError:
    with pytest.raises(CatalogError) as e:
        parse(raw)
    return e.value


def test_defaults():
    s = parse({})
    assert s == LocalSettings(session_root=f"/tmp/gridspawner-{os.getuid()}", run_as="user" if os.geteuid() == 0 else "hub",
                             enforce_limits=os.geteuid() == 0)
    assert (s.ledger_dir, s.notebook_dir, s.nvidia_smi, s.relay_host) == (
        "/tmp/gridspawner-ledger",
        "~/gridspawner/{username}",
        ("nvidia-smi",),
        "127.0.0.1",
    )
    assert (s.interrupt_timeout, s.term_timeout, s.kill_timeout) == (10, 5, 5)
    assert s.host_name == "localhost"


def test_all_keys():
    s = parse(
        {
            "session_root": "/run/gs/",
            "ledger_dir": "/var/lib/gs-ledger",
            "notebook_dir": "/srv/notebooks/{username}/work",
            "nvidia_smi": "/usr/bin/nvidia-smi -i 0,1",
            "env": {"HF_HOME": "/data/hf", "OMP_NUM_THREADS": "4"},
            "interrupt_timeout": 1,
            "term_timeout": 2.5,
            "kill_timeout": 0,
            "relay_host": "::1",
            "start_wait": 5,
            "command_timeout": 9,
            "mount_timeout": 7200,
            "ledger_grace": 30,
            "host_name": "gpu box 1",
        }
    )
    assert s.session_root == "/run/gs"
    assert s.nvidia_smi == ("/usr/bin/nvidia-smi", "-i", "0,1")
    assert s.env == (("HF_HOME", "/data/hf"), ("OMP_NUM_THREADS", "4"))
    assert s.notebook_dir_for("alice") == "/srv/notebooks/alice/work"
    assert (s.term_timeout, s.start_wait, s.command_timeout, s.ledger_grace) == (2.5, 5, 9, 30)
    assert s.mount_timeout == 7200


def test_unknown_key_is_named():
    e = error({"sesion_root": "/tmp/x"})
    assert e.key == f"{KEY}['sesion_root']"
    assert "expected one of" in e.message and "session_root" in e.message


@pytest.mark.parametrize(
    "raw, key, text",
    [
        ({"session_root": "relative/dir"}, "session_root", "absolute path"),
        ({"session_root": "/tmp/" + "x" * 60}, "session_root", "too long for unix socket paths"),
        ({"session_root": "/tmp/a\nb"}, "session_root", "newline"),
        ({"ledger_dir": 5}, "ledger_dir", "non-empty path"),
        ({"notebook_dir": "~/nb/{user}"}, "notebook_dir", "only use the placeholder {username}"),
        ({"notebook_dir": "~/nb/{username!r}"}, "notebook_dir", "only use the placeholder"),
        ({"notebook_dir": "~/nb/{username:>10}"}, "notebook_dir", "only use the placeholder"),
        ({"notebook_dir": "~/nb/{0}"}, "notebook_dir", "only use the placeholder"),
        ({"notebook_dir": "~/nb/{username"}, "notebook_dir", "not a valid template"),
        ({"notebook_dir": "nb/{username}"}, "notebook_dir", "absolute path or start with '~/'"),
        ({"nvidia_smi": []}, "nvidia_smi", "non-empty list"),
        ({"nvidia_smi": "nvidia-smi 'unclosed"}, "nvidia_smi", "cannot be split"),
        ({"env": ["A=1"]}, "env", "must be a dict"),
        ({"interrupt_timeout": -1}, "interrupt_timeout", ">= 0"),
        ({"kill_timeout": True}, "kill_timeout", "number of seconds"),
        ({"command_timeout": 0}, "command_timeout", ">= 0.1"),
        ({"mount_timeout": "1h"}, "mount_timeout", "number of seconds"),
        ({"relay_host": "127.0.0.1; rm -rf /"}, "relay_host", "IP address or host name"),
        ({"host_name": "a\nb"}, "host_name", "one-line name"),
    ],
)
def test_bad_values_name_their_key(raw, key, text):
    e = error(raw)
    assert e.key == f"{KEY}[{key!r}]"
    assert text in e.message


@pytest.mark.parametrize(
    "env, name, text",
    [
        ({"1BAD": "x"}, "1BAD", "not a valid environment variable name"),
        ({"A-B": "x"}, "A-B", "not a valid environment variable name"),
        ({"JUPYTERHUB_API_TOKEN": "x"}, "JUPYTERHUB_API_TOKEN", "may not be overridden"),
        ({"CUDA_VISIBLE_DEVICES": "0"}, "CUDA_VISIBLE_DEVICES", "may not be overridden"),
        ({"A": 1}, "A", "must be a string"),
    ],
)
def test_bad_env(env, name, text):
    e = error({"env": env})
    assert e.key == f"{KEY}['env'][{name!r}]"
    assert text in e.message


def test_user_dir_name_is_safe_and_injective():
    assert user_dir_name("alice") == "alice"
    assert user_dir_name("a.b_c-1") == "a.b_c-1"
    names = ["a@b", "a-b", "A-b", "../../etc", ".", "..", "", "x/y", "$(id)", "ü", "a b"]
    dirs = [user_dir_name(n) for n in names]
    assert len(set(dirs)) == len(dirs)
    for d in dirs:
        assert d and "/" not in d and d not in (".", "..") and not d.startswith(".")
        assert all(c.isalnum() or c in "._-" for c in d)


def test_notebook_dir_is_formatted_once():
    s = parse({"notebook_dir": "~/nb/{username}"})
    # a user name that looks like a template stays text
    assert s.notebook_dir_for("{username}") .startswith("~/nb/username-")


def test_parse_image():
    img = LocalBackend.parse_image("torch", {"cmd": ["jupyterhub-singleuser", "--debug"], "prefix": ". /opt/t/bin/activate", "env": {"X": "1"}}, IKEY)
    assert img == HostImage(cmd=("jupyterhub-singleuser", "--debug"), prefix=". /opt/t/bin/activate", env=(("X", "1"),))
    assert LocalBackend.parse_image("base", {}, IKEY) == HostImage()


@pytest.mark.parametrize(
    "raw, key, text",
    [
        ({"command": ["x"]}, "command", "unknown setting; expected one of: cmd, env, prefix"),
        ({"cmd": "jupyterhub-singleuser"}, "cmd", "must be a list of strings"),
        ({"cmd": []}, "cmd", "non-empty list"),
        ({"cmd": ["ok", 3]}, "cmd", "non-empty list"),
        ({"prefix": ["x"]}, "prefix", "must be shell text"),
        ({"env": {"JUPYTERHUB_X": "1"}}, "env']['JUPYTERHUB_X", "may not be overridden"),
    ],
)
def test_bad_image(raw, key, text):
    with pytest.raises(CatalogError) as e:
        LocalBackend.parse_image("torch", raw, IKEY)
    assert e.value.key == f"{IKEY}['{key}']"
    assert text in e.value.message
