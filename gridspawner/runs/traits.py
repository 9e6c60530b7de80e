"""The admin's notebook-run settings (``c.GridSpawner.*``), with their help texts: a mixin of
`GridSpawner`, like `gridspawner.usage.traits.UsageSettings`. `runs_settings()` hands the
values to the service (`gridspawner.service.settings.hand_over`), which runs the runs."""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, Int, Unicode
from traitlets.config import Configurable

from .s3files import s3_store_config


class RunsSettings(Configurable):
    """Notebook runs (`gridspawner.runs`), configured as ``c.GridSpawner.<name>``."""

    notebook_runs = Bool(
        False,
        help="""
        Let users run notebooks as batch jobs (papermill) with the choices of the spawn form,
        through the gridspawner service (``enable_service``; usage records must be on: the
        runs and their queue live in the usage database). The service's executor places,
        queues, polls and finishes them on the same backends as servers. See
        docs/admin/notebook-runs.md.
        """,
    ).tag(config=True)

    runs_dir = Unicode(
        "",
        help="""
        The run store: a directory (made 0700) with one directory per run holding the
        submitted notebook, the executed one and the log tail. Empty (the default):
        ``gridspawner-runs`` beside an SQLite usage database, else in the hub's working
        directory. Deleting a run deletes its directory. Not used when `runs_store_url` is set.
        """,
    ).tag(config=True)

    runs_store_url = Unicode(
        "",
        help="""
        The run store in S3 instead of a directory: ``s3://bucket`` or
        ``s3://bucket/prefix``, e.g. ``"s3://hub-runs/notebook-runs"``. Each run's submitted
        notebook, executed notebook and log become private objects
        ``<prefix>/<run id>/input.ipynb``, ``output.ipynb`` and ``log`` (written without an ACL:
        the bucket's default, private); deleting a run deletes them. The service's
        credentials need ``s3:GetObject``, ``s3:PutObject`` and ``s3:DeleteObject`` on
        ``bucket/prefix/*`` and ``s3:ListBucket`` on the bucket for the prefix. Empty (the
        default): the directory `runs_dir`. See docs/admin/notebook-runs.md.
        """,
    ).tag(config=True)

    runs_store_endpoint_url = Unicode(
        "",
        help="""
        The S3 endpoint of `runs_store_url` for a non-AWS store (MinIO, Ceph, a campus S3),
        e.g. ``"https://s3.example.edu"``; path-style addressing is used then. Empty: AWS.
        """,
    ).tag(config=True)

    runs_store_region = Unicode(
        "",
        help="The region of the `runs_store_url` bucket, e.g. ``\"eu-west-1\"``; empty: boto3's default.",
    ).tag(config=True)

    runs_store_access_key_env = Unicode(
        "",
        help="""
        The name of an environment variable of the hub holding the access key id for
        `runs_store_url` (with `runs_store_secret_key_env`), e.g. ``"RUNS_S3_KEY_ID"``. The
        hub passes the variable on to the service's environment; the key itself never
        appears in the configuration, logs or database. Empty (the default): boto3's default
        credential chain (``AWS_*`` variables, shared credential files, instance or pod
        roles). A named variable that is not set is a start-up error.
        """,
    ).tag(config=True)

    runs_store_secret_key_env = Unicode(
        "",
        help="The name of the environment variable holding the secret key for `runs_store_access_key_env`.",
    ).tag(config=True)

    runs_store_session_token_env = Unicode(
        "",
        help="Optional: the name of an environment variable holding a session token for the keys above.",
    ).tag(config=True)

    runs_store_timeout = Float(
        10.0,
        help="""
        Seconds each S3 request of the run store may take to connect, and to read an answer
        (botocore's connect and read timeouts). An operation gives up after
        `runs_store_attempts` × 2 × this + 5 s at the latest; a run whose files cannot be
        read or written then fails with a message naming the run store.
        """,
    ).tag(config=True)

    runs_store_attempts = Int(
        3,
        help="How many times in all one S3 request of the run store is tried (1: no retry), from 1 to 10.",
    ).tag(config=True)

    runs_per_user = Int(
        10,
        help="""
        The most runs one user may have queued or running at once (0: none may submit);
        a submit over it is refused with a 400 naming ``runs``.
        """,
    ).tag(config=True)

    runs_per_group = Dict(
        {},
        help="""
        Group name → the most runs the group's members may have queued or running at once
        together, e.g. ``{"students": 20}``. A user in several listed groups is held to each.
        """,
    ).tag(config=True)

    runs_queue_retry = Float(
        2.0,
        help="""
        Seconds between two tries to start the oldest queued run of a backend while nothing
        fits (doubling up to `runs_queue_retry_max` while nothing fits). A GPU freed by a run of
        the service starts the next run at once, and so does one freed by an interactive
        server the hub stops (the hub tells the service: `gridspawner.runs.nudge`); one freed
        otherwise is found by the next try. Each try probes the backend's hosts.
        """,
    ).tag(config=True)

    runs_queue_retry_max = Float(
        30.0,
        help="""
        The longest wait between two tries of a backend whose queue cannot start: the wait
        after `runs_queue_retry` doubles with every try that finds no room, up to this, so a
        long queue costs next to nothing while it waits (a run of the service that ends still
        starts the next at once, as does an interactive server the hub stops). A GPU freed
        otherwise (a server that ended by itself) is found within this.
        """,
    ).tag(config=True)

    runs_poll_interval = Float(
        5.0,
        help="""
        Seconds between two checks of a running run while no run waits for its backend; while
        one waits, the runs of that backend are checked every 0.25 s, so a GPU a run frees
        goes to the next run within a second.
        """,
    ).tag(config=True)

    runs_max_notebook_mb = Int(
        16,
        help="The largest notebook (MB) a user may submit; a larger one is a 400 naming ``notebook``.",
    ).tag(config=True)

    runs_kernel = Unicode(
        "",
        help="""
        The Jupyter kernel papermill runs notebooks with (``--kernel``); empty: the kernel the
        notebook names in its metadata. The run's image (or prefix) must have it, with
        papermill and ipykernel.
        """,
    ).tag(config=True)

    def check_runs_store(self) -> None:
        """Check the run store settings when runs are on: CatalogError naming the bad key."""
        if self.notebook_runs:
            s3_store_config(self.runs_settings())

    def runs_settings(self) -> dict[str, Any]:
        """The runs traits' values, as the service takes them (`RunsConfig`)."""
        return {
            "runs_dir": self.runs_dir,
            "runs_store_url": self.runs_store_url,
            "runs_store_endpoint_url": self.runs_store_endpoint_url,
            "runs_store_region": self.runs_store_region,
            "runs_store_access_key_env": self.runs_store_access_key_env,
            "runs_store_secret_key_env": self.runs_store_secret_key_env,
            "runs_store_session_token_env": self.runs_store_session_token_env,
            "runs_store_timeout": self.runs_store_timeout,
            "runs_store_attempts": self.runs_store_attempts,
            "runs_per_user": self.runs_per_user,
            "runs_per_group": dict(self.runs_per_group),
            "runs_queue_retry": self.runs_queue_retry,
            "runs_queue_retry_max": self.runs_queue_retry_max,
            "runs_poll_interval": self.runs_poll_interval,
            "runs_max_notebook_mb": self.runs_max_notebook_mb,
            "runs_kernel": self.runs_kernel,
        }
