"""The admin's crash-recovery settings (``c.GridSpawner.hub_id``, ``orphan_grace``,
``reconcile_interval``): a mixin of `GridSpawner`; the work is in `gridspawner.reconcile`."""

from __future__ import annotations

from traitlets import Float, Unicode
from traitlets.config import Configurable


class CrashRecoverySettings(Configurable):
    """Traits configured as ``c.GridSpawner.<name>``."""

    hub_id = Unicode(
        "",
        help="""
        A name for this hub that stays the same across restarts and upgrades, written into
        every GPU claim, session directory and pod gridspawner makes. After a crash the hub
        takes back (stops, frees) only what carries its own name, so several hubs may share
        the same hosts, accounts and GPU ledgers. 1 to 200 characters: letters, digits and
        ``. _ : / @ + -``.

        Empty (the default): read from the file ``gridspawner_hub_id`` next to JupyterHub's
        SQLite database (made with a random name on the first start), or derived from the
        database URL (without its password) for other databases. Set it when two hubs use
        databases whose URLs read the same, or when the database file moves. Changing it
        makes the hub forget what it left before: servers it knows keep running, but
        orphans of the old name are no longer reclaimed. The Helm chart sets
        ``<namespace>/<release>``.

        Example::

            c.GridSpawner.hub_id = "physics-gpu-hub"
        """,
    ).tag(config=True)

    orphan_grace = Float(
        300.0,
        min=0.0,
        help="""
        Seconds an orphan must have been left alone before the hub reclaims it: a server
        process, session directory or GPU claim on a host, or a pod, that carries this
        hub's name but belongs to no server the hub knows (a launch cut short by a crash,
        a stop the hub never finished). Anything that changed more recently is left alone,
        so a launch still in flight — in another process of the same hub, e.g. during a
        rolling upgrade — is never touched. Keep it longer than the slowest launch step
        between a server's start and the hub saving it (a backend's ``start_wait`` plus its
        ``connect_timeout``; on Kubernetes the time a pod may take to become ready).
        Servers the hub knows are never reclaimed, whatever their age; a GPU whose process
        still runs is never freed.
        """,
    ).tag(config=True)

    reconcile_interval = Float(
        60.0,
        min=0.0,
        help="""
        Seconds between two looks for orphans (the first is made when the hub starts). On
        hosts it reads the ledger and session directories from the capacity probe the hub
        makes anyway (no extra SSH connection); on Kubernetes the pods from the pod watch's
        cache (no extra list request). 0: look once, at hub start-up, only.
        """,
    ).tag(config=True)
