"""Pure builders of the Slurm lab's configuration files (no I/O: text from values).

`ClusterLayout` says everything the files depend on: where the lab's directories are, the
controller's address, the compute nodes (name, address, CPUs, memory, GPUs by type, features)
and the partitions. `slurm_conf`, `gres_conf`, `cgroup_conf`, `slurmdbd_conf` turn it into the
files Slurm 22.05 reads; `gpu_map` into what the lab's nvidia-smi reports on each node.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

SLURMCTLD_PORT = 6817
SLURMD_PORT = 6818
SLURMDBD_PORT = 6819
MARIADB_PORT = 3306  # inside the login node's namespace only (its own loopback)


@dataclass(frozen=True)
class GPU:
    """One kind of card on a node: Slurm's gres type, and what the fake nvidia-smi reports."""

    type: str  # gres type: --gres=gpu:TYPE:N
    model: str  # nvidia-smi's "name" column
    mib: int  # nvidia-smi's memory.total (MiB)
    count: int


@dataclass(frozen=True)
class NodeSpec:
    """A compute node. ``name`` is Slurm's NodeName (and NodeHostname: the hostname its jobs
    see); the address is the namespace's, given when the lab has made it."""

    name: str
    gpus: tuple[GPU, ...] = ()
    cpus: int = 4
    memory_mib: int = 8192
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class PartitionSpec:
    name: str
    nodes: tuple[str, ...]
    default: bool = False
    max_minutes: int | None = None  # MaxTime; None: UNLIMITED


@dataclass(frozen=True)
class ClusterLayout:
    cluster: str  # ClusterName: lower case, unique per lab (slurmdbd keys its tables on it)
    etc: Path  # slurm.conf, gres.conf, slurmdbd.conf
    state: Path  # slurmctld's StateSaveLocation, logs, pid
    nodes_dir: Path  # per node: spool, log, pid, fake device nodes, GPU inventory
    munge_socket: Path
    controller_address: str  # the login node's address (slurmctld, slurmdbd listen there)
    addresses: dict[str, str]  # node name -> the namespace address its slurmd listens on
    nodes: tuple[NodeSpec, ...]
    partitions: tuple[PartitionSpec, ...]
    accounting: bool = True
    # task/cgroup + proctrack/cgroup (cgroup v1) with ConstrainDevices: a job opens only its
    # own GPUs' device files; else proctrack/linuxproc, task/none, every device open
    constrain_devices: bool = True
    cgroup_mountpoint: Path | None = None  # each slurmd's private cgroup mount (node_cgroups.sh)
    min_job_age: int = 300  # seconds a finished job stays in squeue / scontrol
    extra: tuple[str, ...] = field(default=())  # more slurm.conf lines

    def node_dir(self, node: str) -> Path:
        return self.nodes_dir / node

    def device_files(self, node: NodeSpec) -> list[tuple[GPU, Path]]:
        """The fake /dev/nvidiaN of each GPU on ``node``, numbered across its types in order
        (as the driver numbers the cards of one machine)."""
        out, n = [], 0
        for gpu in node.gpus:
            for _ in range(gpu.count):
                out.append((gpu, self.node_dir(node.name) / "dev" / f"nvidia{n}"))
                n += 1
        return out


def gres_line(node: NodeSpec) -> str:
    """slurm.conf's ``Gres=`` value: ``gpu:a100:2,gpu:t4:1`` (empty: no GPUs)."""
    return ",".join(f"gpu:{g.type}:{g.count}" for g in node.gpus)


def slurm_conf(layout: ClusterLayout) -> str:
    lines = [
        f"ClusterName={layout.cluster}",
        f"SlurmctldHost=login({layout.controller_address})",
        f"SlurmctldPort={SLURMCTLD_PORT}",
        f"SlurmdPort={SLURMD_PORT}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={layout.munge_socket}",
        # the daemons run as root (slurmd must); slurmctld may too in a throw-away cluster
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={layout.state / 'statesave'}",
        f"SlurmctldPidFile={layout.state / 'slurmctld.pid'}",
        f"SlurmctldLogFile={layout.state / 'slurmctld.log'}",
        f"SlurmdSpoolDir={layout.nodes_dir}/%n/spool",
        f"SlurmdPidFile={layout.nodes_dir}/%n/slurmd.pid",
        f"SlurmdLogFile={layout.nodes_dir}/%n/slurmd.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        *(
            ["ProctrackType=proctrack/cgroup", "TaskPlugin=task/cgroup"]
            if layout.constrain_devices
            else ["ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none"]
        ),
        "JobAcctGatherType=jobacct_gather/linux",
        "JobAcctGatherFrequency=30",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU_Memory",
        "DefMemPerCPU=256",
        "GresTypes=gpu",
        # the nodes declare more CPUs/memory than one machine shared by all of them has
        "SlurmdParameters=config_overrides",
        "SchedulerType=sched/backfill",
        # a pending job's estimated start (squeue --start) comes from the backfill pass
        "SchedulerParameters=bf_interval=1",
        "EnforcePartLimits=ALL",  # a request no partition can run is refused at submit
        f"MinJobAge={layout.min_job_age}",
        "KillWait=2",
        "InactiveLimit=0",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=60",
        "MessageTimeout=10",
        "ReturnToService=2",
        "TreeWidth=65533",  # slurmctld talks to every slurmd itself (no slurmd fan-out)
    ]
    if layout.accounting:
        lines += [
            "AccountingStorageType=accounting_storage/slurmdbd",
            f"AccountingStorageHost={layout.controller_address}",
            f"AccountingStoragePort={SLURMDBD_PORT}",
            # which munged the commands and slurmctld use towards slurmdbd (AuthInfo's
            # socket= is not used on that connection)
            f"AccountingStoragePass={layout.munge_socket}",
            "AccountingStorageEnforce=associations,limits,qos",
            "AccountingStorageTRES=gres/gpu," + ",".join(sorted({f"gres/gpu:{g.type}" for n in layout.nodes for g in n.gpus})),
            "JobCompType=jobcomp/none",
        ]
    else:
        lines += ["AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none"]
    lines += list(layout.extra)
    for node in layout.nodes:
        words = [
            f"NodeName={node.name}",
            f"NodeAddr={layout.addresses[node.name]}",
            f"NodeHostname={node.name}",
            f"CPUs={node.cpus}",
            f"RealMemory={node.memory_mib}",
        ]
        if node.gpus:
            words.append(f"Gres={gres_line(node)}")
        if node.features:
            words.append(f"Feature={','.join(node.features)}")
        lines.append(" ".join([*words, "State=UNKNOWN"]))
    for part in layout.partitions:
        words = [
            f"PartitionName={part.name}",
            f"Nodes={','.join(part.nodes)}",
            f"Default={'YES' if part.default else 'NO'}",
            f"MaxTime={part.max_minutes if part.max_minutes is not None else 'UNLIMITED'}",
            "State=UP",
        ]
        lines.append(" ".join(words))
    return "\n".join(lines) + "\n"


def gres_conf(layout: ClusterLayout) -> str:
    """One gres.conf for the whole cluster (every slurmd reads the same file, as on a cluster
    with a shared /etc/slurm): a ``NodeName=`` line per GPU type per node, its device files."""
    lines = ["AutoDetect=off"]
    for node in layout.nodes:
        by_type: dict[str, list[Path]] = {}
        for gpu, path in layout.device_files(node):
            by_type.setdefault(gpu.type, []).append(path)
        for gtype, paths in by_type.items():
            files = ",".join(str(p) for p in paths)
            lines.append(f"NodeName={node.name} Name=gpu Type={gtype} File={files}")
    return "\n".join(lines) + "\n"


def slurmdbd_conf(layout: ClusterLayout, db_user: str, db_password: str) -> str:
    return "\n".join(
        [
            "AuthType=auth/munge",
            f"AuthInfo=socket={layout.munge_socket}",
            "DbdHost=login",
            f"DbdAddr={layout.controller_address}",
            f"DbdPort={SLURMDBD_PORT}",
            "SlurmUser=root",
            "DebugLevel=info",
            f"LogFile={layout.state / 'slurmdbd.log'}",
            f"PidFile={layout.state / 'slurmdbd.pid'}",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={MARIADB_PORT}",
            f"StorageUser={db_user}",
            f"StoragePass={db_password}",
            "StorageLoc=slurm_acct_db",
            "",
        ]
    )


def cgroup_conf(layout: ClusterLayout) -> str:
    """cgroup v1 at each slurmd's private mount of its own freezer and devices hierarchies;
    only devices are constrained (cores and memory are shared by every node of the lab)."""
    return "\n".join(
        [
            "CgroupPlugin=cgroup/v1",
            f"CgroupMountpoint={layout.cgroup_mountpoint}",
            "ConstrainDevices=yes",
            "ConstrainCores=no",
            "ConstrainRAMSpace=no",
            "ConstrainSwapSpace=no",
            "",
        ]
    )


def card_uuid(cluster: str, node: str, index: int) -> str:
    """A stable, unique UUID for a lab card, in nvidia-smi's form."""
    h = hashlib.sha256(f"{cluster}:{node}:{index}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def gpu_map(layout: ClusterLayout, netns_links: dict[str, str]) -> dict:
    """gpus.json for the lab's nvidia-smi (node_nvidia_smi.py): a node's network-namespace
    link text (``net:[INODE]``, from ``netns_links``: node name -> link) -> its cards in driver
    order, each with its device file, nvidia-smi name, MiB and UUID."""
    return {
        netns_links[node.name]: {
            "node": node.name,
            "gpus": [
                {"device": str(path), "name": gpu.model, "mib": gpu.mib, "uuid": card_uuid(layout.cluster, node.name, i)}
                for i, (gpu, path) in enumerate(layout.device_files(node))
            ],
        }
        for node in layout.nodes
    }
