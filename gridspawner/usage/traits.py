"""The admin's usage, price and quota settings (``c.GridSpawner.*``), with their help texts.

A mixin of `GridSpawner`, like `gridspawner.traits.CatalogSettings`; `usage_settings()`
hands the raw values to `gridspawner.usage.config.build_usage_config`, which validates them
(at hub start-up, together with the catalog: one error message names every bad key).
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, Int, Unicode, Union
from traitlets.config import Configurable


class UsageSettings(Configurable):
    """Usage records, prices and GPU quotas, configured as ``c.GridSpawner.<name>``."""

    record_usage = Bool(
        True,
        help="""
        Keep a usage record of every server (who, where, which GPUs, from when to when, why
        it stopped) in gridspawner's usage database (`usage_db_url`). Needed by quotas and
        by the usage pages. ``False``: nothing is recorded and no quota can be set.
        """,
    ).tag(config=True)

    usage_db_url = Unicode(
        "",
        help="""
        The SQLAlchemy URL of the usage database, e.g.
        ``postgresql://gridspawner:PASSWORD@db.example.edu/usage`` (the driver must be
        installed in the hub's environment: psycopg2 for PostgreSQL, pymysql for MySQL).
        Empty (the default): beside the hub's own database — a SQLite file
        ``gridspawner-usage.sqlite`` in the directory of the hub's SQLite file (the hub's
        working directory for a relative or in-memory one), or, when the hub's ``db_url``
        is PostgreSQL or MySQL, that same database. gridspawner only ever uses its own
        tables there (named ``gridspawner_*``, versioned in ``gridspawner_alembic_version``)
        and upgrades them when the hub starts. The environment variable
        ``GRIDSPAWNER_USAGE_DB_URL``, when set, takes precedence (so a password can come
        from a secret instead of this file).
        """,
    ).tag(config=True)

    usage_timezone = Unicode(
        "UTC",
        help="""
        The time zone of the calendar that quotas and usage pages count in (an IANA name such
        as ``Europe/Paris``): a day starts at its midnight, a week on its Monday, a month on
        its 1st.
        """,
    ).tag(config=True)

    prices = Dict(
        help="""
        What an hour of a server costs, shown to users (an estimate as they choose, their
        usage page) and to admins (usage per user, group, backend, GPU model). Keys:
        ``currency`` (a short text), ``gpu_models`` (GPU model as nvidia-smi names it, or a
        glob such as ``"*A100*"``, matched without regard to case, first match in your
        order → price per GPU-hour), ``gpu_memory`` (memory class in GB → price per GPU-hour;
        a card gets the largest class at most its size), ``gpu_hour`` (any other GPU),
        ``cpu_hour`` (per CPU the user chose) and ``memory_gb_hour`` (per GB of memory the
        user chose). A GPU's price is the first of model, memory class, ``gpu_hour`` that is
        set. Each record keeps the price of its start. Empty: no prices, costs are not shown.

        Example::

            c.GridSpawner.prices = {
                "currency": "EUR",
                "gpu_models": {"*A100*80GB*": 2.50, "Tesla T4": 0.35},
                "gpu_memory": {16: 0.35, 40: 1.20, 80: 2.00},
                "gpu_hour": 0.50,
                "cpu_hour": 0.02,
                "memory_gb_hour": 0.004,
            }
        """,
    ).tag(config=True)

    default_quota = Dict(
        help="""
        GPU limits for users in none of the groups of `group_quotas`: any of
        ``gpu_hours_per_day``, ``gpu_hours_per_week``, ``gpu_hours_per_month`` (GPU-hours =
        GPUs × hours, counted in the calendar of `usage_timezone`) and ``gpus_at_once`` (GPUs
        all of a user's running servers may hold together). Empty: no limit. A request over
        a limit is refused with a field error saying the numbers; a running server whose
        user runs out of GPU-hours is stopped `quota_grace` later, with warnings first.

        Example::

            c.GridSpawner.default_quota = {"gpu_hours_per_month": 20, "gpus_at_once": 1}
        """,
    ).tag(config=True)

    group_quotas = Dict(
        help="""
        GPU limits by JupyterHub group: the keys of `default_quota` for each member, plus
        limits for the whole group together: ``group_gpu_hours_per_day``,
        ``group_gpu_hours_per_week``, ``group_gpu_hours_per_month`` and
        ``group_gpus_at_once``. A user in several listed groups gets the most generous
        member limits (a limit applies only if every one of those groups sets it); every
        group-wide limit of each of their groups applies.

        Example (each student 10 GPU-hours a week, the course 400 a month, 8 GPUs at once)::

            c.GridSpawner.group_quotas = {
                "ml101": {"gpu_hours_per_week": 10, "gpus_at_once": 1,
                          "group_gpu_hours_per_month": 400, "group_gpus_at_once": 8},
            }
        """,
    ).tag(config=True)

    user_quotas = Dict(
        help="""
        Per-user exceptions, by user name: any key of `default_quota`; each key given here
        replaces what the user's groups (or `default_quota`) say, the others still apply.

        Example::

            c.GridSpawner.user_quotas = {"thesis-student": {"gpu_hours_per_week": 60}}
        """,
    ).tag(config=True)

    quota_grace = Union(
        [Float(), Unicode()],
        default_value="15m",
        help="""
        How long a GPU server may keep running after its user's (or group's) GPU-hours ran
        out (seconds, or a string such as ``"15m"``), so work can be saved. Users are warned
        before the stop at the times of `stop_warnings` (in JupyterLab with the gridspawner-lab
        extension, on every backend kind; on the hub's home page).
        """,
    ).tag(config=True)

    quota_check_interval = Float(
        60.0,
        help="""
        Seconds between two checks of the running servers against the quotas and the idle
        policy (the check also marks the servers the hub knows as seen, for the record of a
        server the hub loses).
        """,
    ).tag(config=True)

    idle_timeout = Union(
        [Float(), Unicode()],
        default_value=0,
        help="""
        Stop a server that has been idle this long (seconds, or a string such as ``"2h"``;
        0, the default: never): no Jupyter activity (kernels, terminals, connections, as
        JupyterHub's activity tracking reports it) AND no use of its GPUs (utilisation of at
        least `idle_gpu_threshold` % by the server's own processes). A server whose GPUs
        are busy is kept even with no browser open. Servers without GPUs follow Jupyter
        activity alone. Users are warned before the stop (home page; JupyterLab with the
        gridspawner-lab extension) at the largest of `stop_warnings`; the usage record says
        ``idle``. `idle_timeout_per_backend` and `idle_timeout_per_profile` override it.
        """,
    ).tag(config=True)

    idle_timeout_per_backend = Dict(
        help="""
        Idle timeouts by backend name, overriding `idle_timeout` (0: never). Example::

            c.GridSpawner.idle_timeout_per_backend = {"gpu-cluster": "30m", "local": 0}
        """,
    ).tag(config=True)

    idle_timeout_per_profile = Dict(
        help="""
        Idle timeouts by profile name, overriding the backend's and `idle_timeout` (0:
        never). Example::

            c.GridSpawner.idle_timeout_per_profile = {"course-gpu": "20m", "thesis": "4h"}
        """,
    ).tag(config=True)

    idle_gpu_threshold = Int(
        5,
        help="""
        GPU utilisation (%) from which a server's GPU counts as used, when one of the
        server's processes runs on it (a notebook that merely holds GPU memory is idle).
        """,
    ).tag(config=True)

    idle_when_gpu_use_unknown = Unicode(
        "keep",
        help="""
        What the idle policy does with a GPU server whose GPU use cannot be read (a host
        whose nvidia-smi cannot report per-process use; Kubernetes without
        `gpu_metrics_prometheus_url` or when Prometheus does not answer): ``"keep"`` (the
        default: never stopped for idleness while unknown) or ``"activity"`` (judged by
        Jupyter activity alone, as jupyterhub-idle-culler does).
        """,
    ).tag(config=True)

    gpu_metrics_prometheus_url = Unicode(
        "",
        help="""
        Kubernetes backends: the URL of a Prometheus that scrapes NVIDIA's DCGM exporter
        (e.g. ``http://prometheus-server.monitoring.svc``), queried for
        ``DCGM_FI_DEV_GPU_UTIL`` with the ``pod`` and ``namespace`` labels of each GPU
        server (the exporter's per-pod labels, ``kubernetes.podLabels`` or its pod-resources
        mapping, must be on). One query per check round (`quota_check_interval`), bounded by
        `gpu_metrics_timeout`. Empty: GPU use on Kubernetes is unknown (see
        `idle_when_gpu_use_unknown`).
        """,
    ).tag(config=True)

    gpu_metrics_timeout = Float(
        10.0,
        help="Seconds a query to `gpu_metrics_prometheus_url` may take; a slower answer counts as unknown GPU use.",
    ).tag(config=True)

    def usage_settings(self) -> dict[str, Any]:
        """The usage traits' values, as `gridspawner.usage.config.build_usage_config` takes them."""
        return {
            "record_usage": self.record_usage,
            "usage_db_url": self.usage_db_url,
            "usage_timezone": self.usage_timezone,
            "prices": self.prices,
            "default_quota": self.default_quota,
            "group_quotas": self.group_quotas,
            "user_quotas": self.user_quotas,
            "quota_grace": self.quota_grace,
            "quota_check_interval": self.quota_check_interval,
            "idle_timeout": self.idle_timeout,
            "idle_timeout_per_backend": self.idle_timeout_per_backend,
            "idle_timeout_per_profile": self.idle_timeout_per_profile,
            "idle_gpu_threshold": self.idle_gpu_threshold,
            "idle_when_gpu_use_unknown": self.idle_when_gpu_use_unknown,
            "gpu_metrics_prometheus_url": self.gpu_metrics_prometheus_url,
            "gpu_metrics_timeout": self.gpu_metrics_timeout,
            "stop_warnings": getattr(self, "stop_warnings", ()),
        }
