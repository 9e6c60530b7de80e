"""Real SSH "hosts" for tests: network namespaces on 198.51.100.0/24, each with its own sshd.

`SSHLab` owns one temporary directory (client key, known_hosts, sshd configs and host keys)
and the namespaces it made. Names are unique per run (``gs<pid><n>…``), addresses are
allocated under a lock from the addresses no interface on this machine uses yet, so
parallel runs do not collide. Everything is torn down in `close()` (also on failure: use it
as a context manager or fixture): every process in each namespace is killed by PID, then
``ip netns del``.

Layout:
- a *direct* host: netns H with one veth to the root namespace (a /30: root .x+1, host .x+2);
- a *gateway* G (like a direct host) plus a *compute* host C behind it: C has a veth only to
  G, on a /30 in 198.51.100.128/25 — the root namespace has no route to it, so C is
  reachable only with G as a jump host.

All hosts share this machine's filesystem: a program path (the venv's python, the fake
nvidia-smi) is the same everywhere, and so are the session and ledger directories — give
each host its own inventory with the ``nvidia_smi`` setting.

Needs root, iproute2 and openssh-server (`scripts/install-ssh-test-deps.sh`).
"""

from __future__ import annotations

import fcntl
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
NET = ipaddress.ip_network("198.51.100.0/24")
LOW = ipaddress.ip_network("198.51.100.0/25")  # root <-> host links
HIGH = ipaddress.ip_network("198.51.100.128/25")  # gateway <-> compute links
_LOCK = "/tmp/gridspawner-sshlab.lock"
_counter = itertools.count()


def available() -> str | None:
    """None when the lab can run here, else why not (tests skip with it)."""
    if os.geteuid() != 0:
        return "SSH lab needs root (network namespaces)"
    for tool in (SSHD, shutil.which("ip"), shutil.which("ssh-keygen")):
        if not tool or not os.path.exists(tool):
            return "SSH lab needs openssh-server, openssh-client and iproute2: run scripts/install-ssh-test-deps.sh"
    return None


def _run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, input=input)


def _used_addresses() -> set[ipaddress.IPv4Address]:
    used = set()
    out = _run("ip", "-o", "-4", "addr", "show").stdout
    for ns in _run("ip", "netns", "list", check=False).stdout.split("\n"):
        name = ns.split(" ")[0].strip()
        if name:
            out += _run("ip", "netns", "exec", name, "ip", "-o", "-4", "addr", "show", check=False).stdout
    for m in re.finditer(r"inet (198\.51\.100\.\d+)/(\d+)", out):
        net = ipaddress.ip_network(f"{m.group(1)}/{m.group(2)}", strict=False)
        used.update(net)  # the whole subnet: another link's /30 must not overlap
    return used


@dataclass
class Host:
    """One namespace with an sshd. ``address`` is where its sshd listens."""

    name: str  # the host's name in gridspawner settings
    netns: str
    address: str
    port: int = 22
    sshd_config: Path | None = None
    sshd: subprocess.Popen | None = None
    host_key: Path | None = None
    gateway: "Host | None" = None
    links: list[str] = field(default_factory=list)
    peer: str = ""  # the other end of its link: the root namespace's or its gateway's address
    sshd_options: list[str] = field(default_factory=list)  # extra sshd_config lines
    ifname: str = ""  # the host's own end of its link (inside its namespace)

    @property
    def sshd_pid(self) -> int | None:
        return self.sshd.pid if self.sshd else None

    def pids(self) -> list[int]:
        """Every process in this host's namespace (sshd, its sessions, servers)."""
        out = _run("ip", "netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split()]

    def exec(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        """Run a command inside the namespace (as root)."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *args], check=check, capture_output=True, text=True, **kw)


class SSHLab:
    """Namespaced sshd hosts + a client key and known_hosts trusted by them."""

    def __init__(self, root: str | Path | None = None, clean_rc: bool = True):
        reason = available()
        if reason:
            raise RuntimeError(reason)
        self.root = Path(root or tempfile.mkdtemp(prefix="gs-sshlab-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_id = f"{os.getpid() % 100000}{next(_counter)}"
        self.clean_rc = clean_rc
        self.hosts: dict[str, Host] = {}
        self._netns: list[str] = []
        self._seq = itertools.count()
        self.client_key = self.root / "id_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gridspawner-test", "-f", str(self.client_key))
        self.authorized_keys = self.root / "authorized_keys"
        shutil.copy(f"{self.client_key}.pub", self.authorized_keys)
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text("")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation dir

    def open_to_accounts(self) -> None:
        """Let unprivileged accounts log in with the lab's client key too: sshd reads
        AuthorizedKeysFile as the account logging in, so the lab's directory becomes
        traversable (0711: nothing in it can be listed) and the public-key file readable.
        The private client key and host keys stay 0600 root."""
        self.root.chmod(0o711)
        self.authorized_keys.chmod(0o644)

    # ------------------------------------------------------------------ building
    def _name(self, kind: str) -> str:
        return f"gs{self.run_id}{kind}{next(self._seq)}"

    def _alloc(self, pool: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        used = _used_addresses()
        for sub in pool.subnets(new_prefix=30):
            if not any(a in used for a in sub):
                return sub
        raise RuntimeError(f"no free /30 left in {pool}")

    def _link(self, left_ns: str | None, right_ns: str, pool: ipaddress.IPv4Network) -> tuple[str, str, str, str]:
        """A veth pair on a fresh /30: returns (left address, right address, left ifname, right ifname)."""
        a, b = self._name("a"), self._name("b")
        with open(_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            sub = self._alloc(pool)
            left, right = str(sub[1]), str(sub[2])
            _run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            if left_ns:
                _run("ip", "link", "set", a, "netns", left_ns)
            _run("ip", "link", "set", b, "netns", right_ns)
            pre = ["ip", "netns", "exec", left_ns] if left_ns else []
            _run(*pre, "ip", "addr", "add", f"{left}/30", "dev", a)
            _run(*pre, "ip", "link", "set", a, "up")
            _run("ip", "netns", "exec", right_ns, "ip", "addr", "add", f"{right}/30", "dev", b)
            _run("ip", "netns", "exec", right_ns, "ip", "link", "set", b, "up")
        return left, right, a, b

    def _netns_add(self) -> str:
        ns = self._name("n")
        _run("ip", "netns", "add", ns)
        self._netns.append(ns)
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        return ns

    def add_host(
        self, name: str, behind: str | None = None, start: bool = True, sshd_options: Sequence[str] = ()
    ) -> Host:
        """A host in its own namespace; ``behind``: the name of a gateway host it is reachable
        through only (on 198.51.100.128/25). ``sshd_options``: extra sshd_config lines
        (e.g. ``SetEnv NAME=value`` for every session)."""
        ns = self._netns_add()
        if behind is None:
            peer, address, link, ifname = self._link(None, ns, LOW)
            host = Host(name=name, netns=ns, address=address, links=[link], peer=peer, ifname=ifname)
        else:
            gw = self.hosts[behind]
            peer, address, _, ifname = self._link(gw.netns, ns, HIGH)
            host = Host(name=name, netns=ns, address=address, gateway=gw, peer=peer, ifname=ifname)
        host.sshd_options = list(sshd_options)
        self.hosts[name] = host
        self._configure_sshd(host)
        if start:
            self.start_sshd(host)
        return host

    def _configure_sshd(self, host: Host) -> None:
        d = self.root / host.name
        d.mkdir(exist_ok=True)
        host.host_key = d / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host.host_key))
        host.sshd_config = d / "sshd_config"
        host.sshd_config.write_text(
            "\n".join(
                [
                    f"Port {host.port}",
                    f"ListenAddress {host.address}",
                    f"HostKey {host.host_key}",
                    f"PidFile {d / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "AllowStreamLocalForwarding yes",
                    "AllowTcpForwarding yes",
                    "Subsystem sftp internal-sftp",
                    "GatewayPorts no",
                    "MaxSessions 50",
                    "MaxStartups 100:30:200",
                    "ClientAliveInterval 0",
                    "LogLevel VERBOSE",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "UseDNS no",
                    *host.sshd_options,
                    "",
                ]
            )
        )
        self.trust(host)

    def trust(self, host: Host, key_file: Path | None = None) -> None:
        """(Re)write ``host``'s line in known_hosts with its key (or ``key_file``'s)."""
        pub = Path(f"{key_file or host.host_key}.pub").read_text().split()
        entry = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
        lines = [ln for ln in self.known_hosts.read_text().splitlines() if ln.split(" ", 1)[0] != entry]
        lines.append(f"{entry} {pub[0]} {pub[1]}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def start_sshd(self, host: Host, timeout: float = 10) -> None:
        log = open(self.root / host.name / "sshd.log", "ab")
        cmd = [SSHD, "-D", "-e", "-f", str(host.sshd_config)]
        if self.clean_rc:
            # bash sources ~/.bashrc for every command sshd runs; this machine's root has a
            # heavy one (pyenv init: ~0.1 s of CPU per script). A real host's service account
            # would not: hide it from this sshd (a private mount namespace, root only).
            binds = "".join(f"mount --bind /dev/null {rc} && " for rc in self._rc_files())
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{binds}exec "$@"', "sh", *cmd]
        host.sshd = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, *cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if host.sshd.poll() is not None:
                raise RuntimeError(f"sshd for {host.name} exited: {self.sshd_log(host)[-2000:]}")
            r = host.exec("sh", "-c", f"ss -Hltn 'sport = :{host.port}' | grep -qF {host.address}:", check=False)
            if r.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd for {host.name} did not listen in {timeout} s")

    @staticmethod
    def _rc_files() -> list[str]:
        home = os.path.expanduser("~root")
        return [f"{home}/{n}" for n in (".bashrc", ".bash_profile", ".profile") if os.path.isfile(f"{home}/{n}")]

    def stop_sshd(self, host: Host) -> None:
        """Stop the listening sshd only (existing connections keep their session processes)."""
        if host.sshd is not None and host.sshd.poll() is None:
            host.sshd.terminate()
            host.sshd.wait(10)

    def restart_sshd(self, host: Host) -> None:
        self.stop_sshd(host)
        self.start_sshd(host)

    def session_pids(self, host: Host) -> list[int]:
        """The per-connection sshd processes (children of the listening sshd)."""
        if host.sshd is None:
            return []
        out = _run("ps", "-o", "pid=", "--ppid", str(host.sshd.pid), check=False).stdout
        return [int(p) for p in out.split()]

    def drop_connections(self, host: Host) -> list[int]:
        """Kill every SSH connection to ``host`` (its sshd session processes): the client sees
        the connection drop, as when a host's network blips or sshd is restarted hard."""
        pids = self.session_pids(host)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def go_dark(self, host: Host) -> None:
        """The host's network goes silently dark: its link goes down inside its namespace.
        Nothing is refused or reset — packets are simply lost, as when a switch port or a
        cable fails; sshd and the servers keep running. `light_up` undoes it."""
        host.exec("ip", "link", "set", host.ifname, "down")

    def light_up(self, host: Host) -> None:
        host.exec("ip", "link", "set", host.ifname, "up")
        # the link answers again once the carrier is back on both ends
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if "LOWER_UP" in host.exec("ip", "link", "show", host.ifname).stdout:
                return
            time.sleep(0.05)

    def sshd_log(self, host: Host) -> str:
        try:
            return (self.root / host.name / "sshd.log").read_text(errors="replace")
        except OSError:
            return ""

    def add_silent_host(self, name: str) -> tuple[Host, subprocess.Popen]:
        """A namespace whose port 22 accepts TCP connections and never says anything (a hung
        host): an SSH client must give up after its connect timeout."""
        host = self.add_host(name, start=False)
        silent = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "python3", "-c",
             "import socket,time\n"
             f"s=socket.socket(); s.bind(({host.address!r}, {host.port})); s.listen(50)\n"
             "conns=[]\n"
             "while True: conns.append(s.accept())\n"],
            start_new_session=True,
        )
        host.sshd = silent  # killed with the namespace's processes at close
        time.sleep(0.3)
        return host, silent

    # ------------------------------------------------------------------ backend settings
    def host_entry(self, name: str, **extra) -> dict:
        """An entry of an ssh backend's ``hosts`` for lab host ``name`` (its jump host too)."""
        host = self.hosts[name]
        entry = {"name": name, "address": host.address}
        if host.gateway is not None:
            entry["jump"] = {"address": host.gateway.address}
        entry.update(extra)
        return entry

    def backend_settings(self, hosts: list, state_dir: Path, session_root: str, **extra) -> dict:
        """Raw settings of an ssh backend on this lab: the root account with the lab's key and
        known_hosts, ledger and notebooks under ``state_dir``, timeouts short enough for tests."""
        raw = {
            "hosts": hosts,
            "username": "root",
            "client_keys": [str(self.client_key)],
            "known_hosts": str(self.known_hosts),
            "session_root": session_root,
            "ledger_dir": str(state_dir / "ledger"),
            "notebook_dir": str(state_dir / "nb" / "{username}"),
            "interrupt_timeout": 3,
            "term_timeout": 3,
            "kill_timeout": 3,
            "start_wait": 15,
            "connect_timeout": 3,
        }
        raw.update(extra)
        return raw

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        """Kill every process in every namespace (by PID), delete the namespaces, the temp dir."""
        for host in list(self.hosts.values()):
            if host.sshd is not None and host.sshd.poll() is None:
                host.sshd.kill()
        for _ in range(3):
            pids = []
            for ns in self._netns:
                pids += [int(p) for p in _run("ip", "netns", "pids", ns, check=False).stdout.split()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        for host in self.hosts.values():
            if host.sshd is not None:
                try:
                    host.sshd.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for ns in reversed(self._netns):
            _run("ip", "netns", "del", ns, check=False)
        self._netns.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "SSHLab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
