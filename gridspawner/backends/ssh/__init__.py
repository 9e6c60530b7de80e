"""``kind: ssh`` — servers on remote GPU hosts reached over SSH.

- ``settings``  the backend's and the images' validated settings (hosts, accounts, keys,
                known_hosts, jump hosts, runtimes, hub API tunnel, grace period);
- ``runtimes``  pure builders of the server command under none / apptainer / podman / docker;
- ``backend``   `SSHBackend`: the host backend (same scripts, GPU placement and on-host
                ledger as ``kind: local``) over `host.ssh_transport.SSHTransport`.
"""

from .backend import SSHBackend

__all__ = ["SSHBackend"]
