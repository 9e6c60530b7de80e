"""`SlurmLab`: a real Slurm cluster in network namespaces (see the package docstring)."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import time
from pathlib import Path

from sshhosts import SSHLab
from sshhosts import available as ssh_available
from sshhosts.accounts import account_command, add_account

from . import accounting, cgroups, daemons
from .conf import (
    GPU,
    SLURMCTLD_PORT,
    ClusterLayout,
    NodeSpec,
    PartitionSpec,
    card_uuid,
    cgroup_conf,
    gpu_map,
    gres_conf,
    slurm_conf,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# copied into the lab's bin/ (world-readable, on every node's PATH): the checkout may sit
# where the lab's unprivileged account cannot read (e.g. under /root)
JOB_FIXTURES = ("fake_nvidia_smi", "host_sock_server.py")
NODE_NVIDIA_SMI = Path(__file__).resolve().parent / "node_nvidia_smi.py"
ACCOUNT = "research"  # the Slurm account the lab's users belong to
QOS = ("normal", "short")  # QoS the lab's users may use ("normal": the default)
SHORT_QOS_MAX_MINUTES = 10

DEFAULT_NODES = (
    NodeSpec("gpu1", gpus=(GPU("a100", "NVIDIA A100-SXM4-80GB", 81920, 2),), features=("a100", "a100_80g")),
    NodeSpec("gpu2", gpus=(GPU("t4", "Tesla T4", 15360, 2),), features=("t4", "t4_16g")),
)


def default_partitions(nodes: tuple[NodeSpec, ...]) -> tuple[PartitionSpec, ...]:
    names = tuple(n.name for n in nodes)
    return (
        PartitionSpec("gpu", names, default=True),
        PartitionSpec("debug", names, max_minutes=30),
    )


def available() -> str | None:
    """None when the lab can run here, else why not (tests skip with it)."""
    reason = ssh_available()
    if reason:
        return reason
    for tool in ("slurmctld", "slurmd", "slurmdbd", "sbatch", "munged", "mariadbd", "mariadb-install-db", "useradd"):
        if not shutil.which(tool):
            return f"Slurm lab needs {tool}: run scripts/install-slurm-test-deps.sh"
    return None


class SlurmLab:
    """One Slurm cluster: a login node (sshd, munged, slurmctld, slurmdbd + MariaDB) reachable
    from the root namespace, compute nodes (sshd, slurmd) behind it, and an unprivileged
    account ``user`` that submits through the login node. ``start()`` builds it; ``close()``
    (or leaving the ``with`` block) kills every process it started by PID, deletes the
    namespaces, the account and the temp dir."""

    def __init__(
        self,
        nodes: tuple[NodeSpec, ...] = DEFAULT_NODES,
        partitions: tuple[PartitionSpec, ...] | None = None,
        accounting: bool = True,
        constrain_devices: bool | None = None,
        min_job_age: int = 300,
    ):
        reason = available()
        if reason:
            raise RuntimeError(reason)
        self.ssh = SSHLab()
        self.ssh.open_to_accounts()
        self.root = self.ssh.root
        self.cluster = f"gs{self.ssh.run_id}"
        self.user = f"gsu{self.ssh.run_id}"  # the unprivileged account jobs run as
        self.users: list[str] = []
        self.nodes = nodes
        self.partitions = partitions or default_partitions(nodes)
        self.accounting = accounting
        # None: where cgroup v1 freezer + devices are mounted (as on this project's machines)
        self.constrain_devices = cgroups.v1_available() is None if constrain_devices is None else constrain_devices
        self.min_job_age = min_job_age
        self.etc = self._dir("etc", 0o755)
        self.bin = self._dir("bin", 0o755)
        self.conf = self.etc / "slurm.conf"
        self.daemons: list[daemons.Daemon] = []
        self.layout: ClusterLayout | None = None
        self.login = None  # sshhosts.Host of the login node, once started
        self.compute: dict = {}  # node name -> sshhosts.Host
        self.startup_seconds: dict[str, float] = {}
        self.cgroup_leftovers: list[str] = []

    def _dir(self, rel: str, mode: int) -> Path:
        d = self.root / rel
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(mode)
        return d

    # ------------------------------------------------------------------ start
    def start(self) -> "SlurmLab":
        t0 = time.monotonic()
        try:
            self._start(t0)
        except BaseException:
            self.close()
            raise
        self.startup_seconds["total"] = round(time.monotonic() - t0, 2)
        return self

    def _mark(self, what: str, t0: float) -> None:
        self.startup_seconds[what] = round(time.monotonic() - t0, 2)

    def _start(self, t0: float) -> None:
        env_line = f"SetEnv SLURM_CONF={self.conf} PATH={self.bin}:/usr/local/bin:/usr/bin:/bin"
        self.login = self.ssh.add_host("login", sshd_options=[env_line])
        self.login.exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")  # compute <-> compute
        self.compute = {}
        for node in self.nodes:
            host = self.ssh.add_host(node.name, behind="login", sshd_options=[env_line])
            # the login node's address on the root side (slurmctld's) and the other compute
            # nodes are reached through the login node
            host.exec("ip", "route", "add", "default", "via", host.peer)
            self.compute[node.name] = host
        self._mark("namespaces+sshd", t0)
        self.layout = ClusterLayout(
            cluster=self.cluster,
            etc=self.etc,
            state=self._dir("ctld", 0o700),
            nodes_dir=self._dir("nodes", 0o755),
            munge_socket=self._dir("munge-run", 0o755) / "munge.socket",
            controller_address=self.login.address,
            addresses={n.name: self.compute[n.name].address for n in self.nodes},
            nodes=self.nodes,
            partitions=self.partitions,
            accounting=self.accounting,
            constrain_devices=self.constrain_devices,
            cgroup_mountpoint=self._dir("cgroup", 0o755),
            min_job_age=self.min_job_age,
        )
        self._write_node_files()
        self.conf.write_text(slurm_conf(self.layout))
        (self.etc / "gres.conf").write_text(gres_conf(self.layout))
        if self.constrain_devices:
            (self.etc / "cgroup.conf").write_text(cgroup_conf(self.layout))
        self._start_munge()
        self._mark("munged", t0)
        self._add_user(self.user)
        if self.accounting:
            self._start_accounting(t0)
        ctld = self._daemon("slurmctld", self.login.netns, daemons.as_host("login", ["slurmctld", "-D", "-i"]), self.layout.state / "slurmctld.out")
        for node in self.nodes:
            self._start_slurmd(node)
        ctld.wait_until(lambda: self._listening(self.login, SLURMCTLD_PORT), 30, f"listening on port {SLURMCTLD_PORT}")
        self._mark("slurmctld", t0)
        for d in self.daemons:
            if d.name.startswith("slurmd "):
                d.wait_until(self._all_nodes_idle, 60, "every node idle in sinfo")
        self._mark("nodes idle", t0)

    def _write_node_files(self) -> None:
        """Per compute node its fake GPU device files (mknod: character devices with the real
        driver's major, 195); the lab's nvidia-smi and the map of each node's cards."""
        links = {}
        for node in self.nodes:
            d = self.layout.node_dir(node.name)
            (d / "dev").mkdir(parents=True)
            d.chmod(0o755)
            for gpu, path in self.layout.device_files(node):
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(195, int(path.name.removeprefix("nvidia"))))
                path.chmod(0o666)  # as the driver's nodes: any account may open (the cgroup decides)
            links[node.name] = f"net:[{os.stat(f'/run/netns/{self.compute[node.name].netns}').st_ino}]"
        for name in JOB_FIXTURES:
            shutil.copy(FIXTURES / name, self.bin / name)
            (self.bin / name).chmod(0o755)
        shutil.copy(NODE_NVIDIA_SMI, self.bin / "nvidia-smi")
        (self.bin / "nvidia-smi").chmod(0o755)
        (self.bin / "gpus.json").write_text(json.dumps(gpu_map(self.layout, links), indent=1))
        (self.bin / "gpus.json").chmod(0o644)

    def _daemon(self, name: str, netns: str, argv: list[str], log: Path) -> daemons.Daemon:
        d = daemons.start(name, netns, argv, log, env={"SLURM_CONF": str(self.conf)})
        self.daemons.append(d)
        return d

    def _start_munge(self) -> None:
        """One munged for the cluster (its socket is a file: every namespace reaches it), key
        0400 in a 0700 directory, socket directory 0755."""
        keydir = self._dir("munge-key", 0o700)
        key = keydir / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o400)
        sock = self.layout.munge_socket
        d = self._daemon(
            "munged",
            self.login.netns,
            ["munged", "-F", f"--key-file={key}", f"--socket={sock}", f"--pid-file={keydir / 'munged.pid'}",
             f"--seed-file={keydir / 'munged.seed'}", f"--log-file={keydir / 'munged.log'}"],
            keydir / "munged.out",
        )
        d.wait_until(lambda: subprocess.run(["munge", "-S", str(sock), "-n"], capture_output=True, timeout=5).returncode == 0,
                     15, "credential")

    def _start_accounting(self, t0: float) -> None:
        dbdir = self._dir("db", 0o700)
        self.daemons.append(accounting.start_mariadb(self.login.netns, dbdir))
        password = accounting.create_db_user(dbdir)
        self._mark("mariadb", t0)
        accounting.write_slurmdbd_conf(self.layout, password)
        self.daemons.append(accounting.start_slurmdbd(self.login.netns, self.layout, lambda p: self._listening(self.login, p)))
        self._mark("slurmdbd", t0)
        self.sacctmgr("add", "cluster", self.cluster)
        # DenyOnLimit: a job over the QoS's limits is refused at submit, not left pending
        self.sacctmgr("add", "qos", "short", f"MaxWall={SHORT_QOS_MAX_MINUTES}", "Flags=DenyOnLimit")
        self.sacctmgr("add", "account", ACCOUNT, "Description=lab", "Organization=lab")
        self._associate(self.user)
        self._mark("sacctmgr", t0)

    def _associate(self, user: str) -> None:
        self.sacctmgr("add", "user", user, f"Account={ACCOUNT}", f"QOS={','.join(QOS)}", "DefaultQOS=normal")

    def _start_slurmd(self, node: NodeSpec) -> None:
        host = self.compute[node.name]
        d = self.layout.node_dir(node.name)
        (d / "spool").mkdir()
        argv = ["slurmd", "-D", "-N", node.name]
        if self.constrain_devices:
            argv = cgroups.node_argv(self._cgroup_tag(node.name), self.layout.cgroup_mountpoint, node.name, argv)
        else:
            argv = daemons.as_host(node.name, argv)
        self._daemon(f"slurmd {node.name}", host.netns, argv, d / "slurmd.out")

    def _cgroup_tag(self, node: str) -> str:
        return f"slurmlab-{self.cluster}-{node}"

    @staticmethod
    def _listening(host, port: int) -> bool:
        r = host.exec("ss", "-Hltn", f"sport = :{port}", check=False)
        return bool(r.stdout.strip())

    def _all_nodes_idle(self) -> bool:
        r = self.slurm("sinfo", "-h", "-N", "-o", "%N %t", check=False)
        states = dict(line.split() for line in r.stdout.splitlines() if line.strip())
        return all(states.get(n.name) == "idle" for n in self.nodes)

    # ------------------------------------------------------------------ accounts
    def _add_user(self, name: str) -> None:
        add_account(name, shell="/bin/bash")
        self.users.append(name)

    def add_user(self, name: str) -> str:
        """Another unprivileged account (home on the shared filesystem), allowed to submit."""
        self._add_user(name)
        if self.accounting:
            self._associate(name)
        return name

    def card_uuid(self, node: str, index: int) -> str:
        """The UUID nvidia-smi reports for card ``index`` (driver order) of ``node``."""
        return card_uuid(self.cluster, node, index)

    def home(self, user: str | None = None) -> Path:
        """The account's home: the same path on every node (one filesystem, like a cluster's
        shared home); sbatch's default output (slurm-JOBID.out) lands there."""
        return Path(pwd.getpwnam(user or self.user).pw_dir)

    # ------------------------------------------------------------------ commands
    @property
    def slurm_version(self) -> str:
        """The installed Slurm's version, e.g. "22.05.8"."""
        return self.slurm("sinfo", "--version").stdout.split()[-1]

    def slurm(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """A Slurm command as root on the login node, without SSH (the harness's own view)."""
        return self.login.exec(*argv, check=check, env={**os.environ, "SLURM_CONF": str(self.conf)}, timeout=timeout)

    def sacctmgr(self, *argv: str) -> str:
        r = self.slurm("sacctmgr", "-i", *argv, check=False)
        if r.returncode != 0:
            raise daemons.LabError(f"sacctmgr {' '.join(argv)}: {r.stdout}{r.stderr}")
        return r.stdout

    def ssh_argv(self, host: str = "login", user: str | None = None) -> list[str]:
        """``ssh`` to a lab node as ``user`` (default: the lab's account) with the lab's key and
        known_hosts (host keys verified), connect timeout 10 s; compute nodes through the
        login node (a ProxyCommand ``ssh -W``, as ``-J`` would, with the same options)."""
        h = self.ssh.hosts[host]
        argv = ["ssh", "-i", str(self.ssh.client_key), "-o", f"UserKnownHostsFile={self.ssh.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if h.gateway is not None:
            g = h.gateway
            argv += ["-o", f"ProxyCommand={shlex.join(self.ssh_argv(g.name, user))} -W %h:%p"]
        return [*argv, f"{user or self.user}@{h.address}"]

    def run(self, command: str, host: str = "login", user: str | None = None, input: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
        """``command`` (shell text) over SSH on ``host`` as ``user``; not checked; killed
        (TimeoutExpired) after ``timeout`` seconds."""
        return subprocess.run([*self.ssh_argv(host, user), command], input=input, capture_output=True,
                              text=True, timeout=timeout)

    def sbatch(self, script: str, *options: str, user: str | None = None) -> int:
        """Submit ``script`` (on stdin) through the login node as ``user``; the job id. A refusal
        raises SubmitRefused with sbatch's message."""
        r = self.run(shlex.join(["sbatch", "--parsable", *options]), user=user, input=script)
        if r.returncode != 0:
            raise SubmitRefused(r.stderr.strip())
        return int(r.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict:
        """Slurm's record of a job (its entry in ``squeue --json``), {} once purged (MinJobAge).
        Slurm 22.05's ``squeue --json`` ignores -j/-u/-t and prints every job it still holds,
        finished ones included; ``scontrol`` has no --json before 23.02."""
        r = self.slurm("squeue", "--json")
        return next((j for j in json.loads(r.stdout).get("jobs", []) if j.get("job_id") == job_id), {})

    def wait_job(self, job_id: int, states: set[str], timeout: float = 30) -> dict:
        """Poll until the job's state is one of ``states``; its record."""
        deadline = time.monotonic() + timeout
        job: dict = {}
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job.get("job_state") in states:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {job.get('job_state')} {job.get('state_reason')}")

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        """Stop the daemons by PID, kill whatever else runs in the namespaces (jobs, their
        slurmstepd), delete the namespaces and the temp dir, then the accounts."""
        for d in reversed(self.daemons):
            d.stop()
        self.daemons.clear()
        self.ssh.close()  # every process left in a namespace, killed by PID; the temp dir
        for user in self.users:
            leftover = subprocess.run(["ps", "-o", "pid=", "-u", user], capture_output=True, text=True).stdout.split()
            daemons.kill_pids([int(p) for p in leftover])
            account_command(["userdel", "-r", user], check=False)
        self.users.clear()
        # what Slurm made in the nodes' cgroups (no task is left in them now)
        self.cgroup_leftovers = [d for n in self.nodes for d in cgroups.remove(self._cgroup_tag(n.name))]

    def __enter__(self) -> "SlurmLab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class SubmitRefused(RuntimeError):
    """sbatch refused a job; the message is Slurm's."""
