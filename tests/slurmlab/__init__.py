"""A real Slurm cluster for tests: Debian 12's slurm-wlm 22.05.8 + munge 0.5.15 (+ slurmdbd on
MariaDB 10.11), in network namespaces built by tests/sshhosts' SSHLab, started by the test
and torn down by PID. ``SlurmLab().start()`` (or ``with SlurmLab() as lab``), the session
fixture ``slurm_lab`` (tests/conftest.py), or ``python -m tests.slurmlab`` to try it by hand.
Install with scripts/install-slurm-test-deps.sh (called by scripts/install-test-deps.sh).

Layout (addresses on 198.51.100.0/24, allocated per run like the SSH lab's):

- **login** — a namespace reachable from the root namespace (an SSHLab direct host) with
  sshd; it is also the head node: munged, slurmctld (``SlurmctldHost=login(ADDRESS)``),
  slurmdbd and its MariaDB (on the namespace's own 127.0.0.1:3306, nothing on this machine's
  ports). It forwards between the compute nodes.
- **gpu1** (2x "NVIDIA A100-SXM4-80GB", gres type ``a100``, features ``a100,a100_80g``) and
  **gpu2** (2x "Tesla T4", type ``t4``, features ``t4,t4_16g``), 4 CPUs and 8 GiB declared
  each — namespaces *behind* the login node (SSHLab ``behind=``: 198.51.100.128/25, no route
  from the root namespace), each with its own sshd and its own slurmd (``NodeName`` =
  ``NodeHostname`` = gpuN, ``NodeAddr`` = the namespace's address, and the hostname gpuN in
  the slurmd's own UTS namespace, so a job's ``hostname`` is its node's). Compute nodes
  route through the login node. Chosen so that the Slurm backend can do what users of a
  cluster do: SSH to the login node, then to the job's node with the login node as jump
  host (its address is ``NodeAddr`` in ``scontrol show node``), and open a
  direct-streamlocal channel to the server's unix socket there
  (test_slurmlab.py::test_a_server_in_a_job_is_reached_through_the_login_node).
- Partitions ``gpu`` (default, no time limit) and ``debug`` (MaxTime 30 min), both on both
  nodes. Accounting: Slurm account ``research``; QoS ``normal`` (default) and ``short``
  (MaxWall 10 min, ``DenyOnLimit``: a job over it is refused at submit);
  ``AccountingStorageEnforce=associations,limits,qos``. ``MinJobAge`` (``min_job_age``,
  default 300 s): how long finished jobs stay at least in ``squeue -t all``/``scontrol``;
  slurmctld purges them in a periodic pass (with 2 s a job left squeue about 9 s after it
  ended here). sacct keeps them for good.
- An unprivileged account ``lab.user`` (``useradd -m``; ``lab.add_user`` for more) submits
  through the login node over SSH with the lab's client key; host keys are verified against
  the lab's known_hosts (``lab.ssh_argv``, ``lab.run``, ``lab.sbatch``). Every namespace
  shares this machine's filesystem, so the account's home is the same path on every node
  (a cluster's shared home): ``slurm-JOB.out`` lands in ``lab.home()``.
- Slurm's files live in the lab's temp dir (``lab.etc``: slurm.conf, gres.conf, cgroup.conf,
  slurmdbd.conf 0600); every sshd sets ``SLURM_CONF`` and a ``PATH`` starting with
  ``lab.bin`` (``SetEnv``), so ``sbatch``/``squeue``/``nvidia-smi`` work in an SSH command
  and in jobs (which inherit the submitter's environment) with nothing in /etc/slurm.
- munge: one munged for the cluster (key 0400 in a 0700 dir; socket dir 0755); its socket is
  a file, so every namespace reaches it (``AuthInfo=socket=...``).
- GPUs: ``GresTypes=gpu``; gres.conf ``NodeName=gpuN Name=gpu Type=T File=...`` naming
  character devices the lab makes with mknod (major 195, minor = the card's number on its
  node) under ``nodes/gpuN/dev``. Where cgroup v1 freezer + devices are mounted (this
  project's machines), ``ProctrackType=proctrack/cgroup``, ``TaskPlugin=task/cgroup``,
  ``ConstrainDevices=yes``: a job may open only its own card's device file (the others: EPERM),
  ``CUDA_VISIBLE_DEVICES`` is ``0`` (the visible cards are renumbered, as on production
  clusters), ``SLURM_JOB_GPUS`` and ``scontrol -d show job`` (``GRES=gpu:a100:1(IDX:1)``)
  keep the node's index. Each slurmd gets its own cgroups: node_cgroups.sh makes
  ``/sys/fs/cgroup/{freezer,devices}/slurmlab-CLUSTER-NODE``, the root of a cgroup namespace
  mounted privately at ``CgroupMountpoint``, so labs running at once never share a cgroup
  directory; ``close()`` removes them. ``SlurmLab(constrain_devices=False)``:
  proctrack/linuxproc, task/none, every card openable, ``CUDA_VISIBLE_DEVICES`` = the index.
- ``nvidia-smi`` (``lab.bin``; node_nvidia_smi.py over tests/fixtures/fake_nvidia_smi)
  answers with the cards of the node it runs on (told apart by the network namespace) and
  hides the cards the job's devices cgroup forbids, keeping each card's UUID
  (``lab.card_uuid(node, index)``). Over SSH on a compute node (outside any job) it lists all
  of the node's cards; on the login node none.

Start-up (measured here, 2 cores, other tests running): about 4.5-8 s with accounting
(namespaces + sshds 0.5 s, munged 0.1 s, MariaDB 0.7 s, slurmdbd creating its tables and the
sacctmgr calls 2-3 s, slurmctld 1 s, nodes idle at once), 0.6-1 s without
(``SlurmLab(accounting=False)``: no sacct, QoS or accounts). Teardown (``close()``): each
daemon TERM then KILL by PID, every process left in the namespaces (jobs, slurmstepd)
killed by PID, the namespaces, the accounts and their homes, the temp dir, the cgroups.

What does not work here, or works only with a change, and why (Slurm 22.05.8):

- ``ip netns exec`` mounts a fresh /sys, hiding /sys/fs/cgroup, and slurmd refuses to start
  ("No filesystem mounted on /sys/fs/cgroup", "Unable to initialize cgroup plugin") even with
  proctrack/linuxproc + task/none: the daemons enter the namespace with ``nsenter --net``.
- slurmctld and slurmdbd refuse to run on a host whose name is not ``SlurmctldHost``'s /
  ``DbdHost`` ("This host not configured to run SlurmDBD ((vm or vm) != login ...)"): each
  runs in a UTS namespace named ``login``.
- The connection to slurmdbd ignores ``AuthInfo=socket=``: sacctmgr failed with "Failed to
  access /run/munge/munge.socket.2" until ``AccountingStoragePass`` named the lab's socket.
- A ``useradd`` account without a password is locked, and sshd (``UsePAM no``) refuses it
  ("account is locked"): the lab sets the password field to ``*``.
- Time limits are whole minutes, enforced by slurmctld's check every 30 s: ``--time=1`` ends
  a job (TIMEOUT, reason TimeLimit, "CANCELLED ... DUE TO TIME LIMIT" in its output) 60-90 s
  after it started; no setting shortens that.
- sacct needs slurmdbd and so a MySQL/MariaDB: 22.05 has no accounting_storage/filetxt, and
  jobcomp/filetxt writes a file sacct does not read. Right after a job ends sacct may not
  know it yet, then show it for a few seconds with an empty Partition and QOS "Unknown".
- ``squeue --json`` ignores ``-j``/``-u``/``-t`` (prints every job slurmctld still holds,
  finished ones too; ``lab.job`` filters it); ``scontrol`` has no ``--json`` before 23.02.
- A request no node can satisfy (``--gres=gpu:t4:3``, an unknown type) is refused at submit
  ("Requested node configuration is not available") but still uses a job id: that job shows
  in ``squeue -t all`` as FAILED, reason BadConstraints, until MinJobAge.
- mpi/pmix cannot load (no libpmix): slurmd logs errors at start; ``srun --mpi=pmix`` would
  fail. Nothing here uses MPI.
- No pam_slurm_adopt (sshd runs without PAM): any lab account may SSH to any compute node,
  and such sessions are not put into a job's cgroup.
- Cores and memory are not constrained (every node shares this machine's 2 cores):
  ``SlurmdParameters=config_overrides`` lets the nodes declare more than the machine has.
- Unix sockets are files, and the namespaces share one filesystem: a job's socket on gpu2
  can be connected to from any namespace. A test that must prove a tunnel reached the
  compute node checks something else (the server's network namespace, as
  test_a_server_in_a_job_is_reached_through_the_login_node does).
- On a machine with only cgroup v2 (many production hosts, not this project's machines) the
  lab falls back to ``constrain_devices=False``; Slurm's cgroup/v2 plugin (systemd or
  ``IgnoreSystemd=yes``, eBPF device control) was not tried, and whether slurmd's
  autodetected cgroup plugin starts there at all is untested.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # sibling test packages (sshhosts)

from .conf import GPU, NodeSpec, PartitionSpec  # noqa: E402
from .lab import SlurmLab, SubmitRefused, available  # noqa: E402

__all__ = ["GPU", "NodeSpec", "PartitionSpec", "SlurmLab", "SubmitRefused", "available"]
