"""The host backend: servers started by POSIX sh scripts on a machine reached through a transport.

- ``scripts``   pure builders of the sh scripts (probe, claim, launch, wait, poll, stop) and
                parsers of what they print — unit-tested without running anything;
- ``inventory`` what a probe found: the GPUs and the ledger's entries;
- ``transport`` the `Transport` seam (run a script on ``sh -s``, forward a TCP port to a unix
                socket) and `LocalTransport` (the hub's own machine);
- ``relay``     the in-process TCP → unix-socket relay LocalTransport forwards with;
- ``settings``  frozen, validated settings of a host backend and of an image on it;
- ``backend``   `HostBackend`: GPU placement, the on-host ledger, launch/poll/stop/restore,
                talking only to a Transport (the ssh kind adds an SSH transport).
"""
