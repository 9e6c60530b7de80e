"""The lab's accounting: its own MariaDB (a temp data dir, loopback of the login node's
namespace) and slurmdbd, then the cluster, an account, QoS and users made with sacctmgr."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from . import daemons
from .conf import MARIADB_PORT, SLURMDBD_PORT, ClusterLayout, slurmdbd_conf

DB_USER = "slurm"
MARIADB_OPTIONS = [
    "--no-defaults",
    # small and quick: this database holds a few hundred rows
    "--innodb-log-file-size=4M",
    "--innodb-buffer-pool-size=16M",
    "--skip-name-resolve",
]


def start_mariadb(netns: str, dbdir: Path) -> daemons.Daemon:
    """mariadb-install-db into ``dbdir``/data, then mariadbd on 127.0.0.1 of ``netns`` (its
    own loopback: no port on this machine's) and a unix socket in ``dbdir``. About 0.6 s."""
    data, sock = dbdir / "data", dbdir / "mysqld.sock"
    r = subprocess.run(
        ["mariadb-install-db", *MARIADB_OPTIONS, f"--datadir={data}", "--user=root",
         "--auth-root-authentication-method=socket", "--skip-test-db"],
        capture_output=True, text=True, timeout=60,
    )
    if r.returncode != 0:
        raise daemons.LabError(f"mariadb-install-db failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    db = daemons.start(
        "mariadbd",
        netns,
        ["mariadbd", *MARIADB_OPTIONS, f"--datadir={data}", "--user=root", f"--socket={sock}",
         f"--pid-file={dbdir / 'mariadbd.pid'}", "--bind-address=127.0.0.1", f"--port={MARIADB_PORT}"],
        dbdir / "mariadbd.log",
    )
    db.wait_until(lambda: mariadb(sock, "SELECT 1").returncode == 0, 30, "answer on its socket")
    return db


def mariadb(sock: Path, sql: str) -> subprocess.CompletedProcess:
    """Run ``sql`` as the database's root (unix-socket authentication: no password)."""
    return subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-e", sql], capture_output=True, text=True, timeout=30)


def create_db_user(dbdir: Path) -> str:
    """The slurmdbd's database account, with a fresh random password (returned; it goes only
    into slurmdbd.conf, mode 0600, as slurmdbd requires)."""
    password = secrets.token_hex(16)
    r = mariadb(
        dbdir / "mysqld.sock",
        f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{password}';"
        f"GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1';",
    )
    if r.returncode != 0:
        raise daemons.LabError(f"creating the slurmdbd database user failed: {r.stderr}")
    return password


def write_slurmdbd_conf(layout: ClusterLayout, password: str) -> Path:
    path = layout.etc / "slurmdbd.conf"
    path.touch(mode=0o600)
    path.chmod(0o600)  # slurmdbd refuses a slurmdbd.conf others can read
    path.write_text(slurmdbd_conf(layout, DB_USER, password))
    return path


def start_slurmdbd(netns: str, layout: ClusterLayout, port_open) -> daemons.Daemon:
    """slurmdbd in the foreground; ready when it listens (its first start creates the tables)."""
    dbd = daemons.start(
        "slurmdbd", netns, daemons.as_host("login", ["slurmdbd", "-D"]), layout.state / "slurmdbd.out",
        env={"SLURM_CONF": str(layout.etc / "slurm.conf")},
    )
    dbd.wait_until(lambda: port_open(SLURMDBD_PORT), 60, f"listening on port {SLURMDBD_PORT}")
    return dbd
