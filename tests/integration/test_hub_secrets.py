"""The server's API token travels only in its environment: never in any process's argv
(what `ps` shows every user on the machine), never in the hub log."""

from __future__ import annotations

import os
import stat

import pytest

from hubtools import procs

pytestmark = pytest.mark.hub


@pytest.mark.jh5
def test_token_not_in_ps_or_logs(hub, username):
    mark = hub.log_mark()
    hub.spawn_ready(username, {"gpus": 1})
    try:
        pid = hub.server_pid(username)
        token = procs.environ(pid).get("JUPYTERHUB_API_TOKEN")
        assert token and len(token) >= 16, "the server must get its token in its environment"
        ps = procs.all_command_lines()
        assert "singleuser" in ps or "jupyter" in ps  # ps sees the server at all
        assert token not in ps
        for p in hub.server_pids(username):
            assert token not in " ".join(procs.cmdline(p))
        assert token not in hub.log_since(mark)
        # no world- or group-readable file under the session root holds it
        for dirpath, _, files in os.walk(hub.session_root):
            for f in files:
                path = os.path.join(dirpath, f)
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or not st.st_mode & (stat.S_IRGRP | stat.S_IROTH):
                    continue
                with open(path, "rb") as fh:
                    assert token.encode() not in fh.read(), f"token in readable file {path}"
    finally:
        hub.stop_server(username)


def test_session_directory_is_private(hub, username):
    hub.spawn_ready(username, {"gpus": 0})
    try:
        root = hub.session_root
        dirs = [p for p in root.iterdir() if p.is_dir()]
        assert dirs, "the local backend made no session directory"
        for d in dirs:
            assert stat.S_IMODE(d.stat().st_mode) & 0o077 == 0, oct(d.stat().st_mode)
    finally:
        hub.stop_server(username)
