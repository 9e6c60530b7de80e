"""The host backend: servers started by POSIX sh scripts on a machine reached through a transport.

- ``scripts``   the shared pieces of the sh scripts, the cleanup and stop scripts and the
                parser of what every script prints; ``launch_scripts`` (a server's launch,
                the session set-up batch jobs share) and ``probe_scripts`` (GPU probe, wait,
                poll) — pure builders, unit-tested without running anything;
- ``ledger``    the on-host GPU ledger's rules, its shared sh code and the probe's listing;
                ``ledger_claim`` (claiming), ``ledger_hold`` (take-over, hold, release, freeing
                dead claims), ``ledger_problems`` (what an unsafe ledger means to an admin);
- ``inventory`` what a probe found: the GPUs and the ledger's entries;
- ``transport`` the `Transport` seam (run a script on ``sh -s``, forward a TCP port to a unix
                socket) and `LocalTransport` (the hub's own machine);
- ``relay``     the in-process TCP → unix-socket relay LocalTransport forwards with;
- ``settings``  frozen, validated settings of a host backend and of an image on it;
- ``backend``   `HostBackend`: what every step shares (hooks, scripts at a login, probe,
                capacity), talking only to a Transport (the ssh kind adds an SSH transport),
                with its rooms mixed in: ``launching`` (placement, GPU claims, launch),
                ``running`` (restore, poll, stop, credential renewal), ``reconcile`` (crash
                recovery) and ``batch`` (notebook runs).
"""
