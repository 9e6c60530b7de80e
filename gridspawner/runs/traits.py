"""The admin's notebook-run settings (``c.GridSpawner.*``), with their help texts: a mixin of
`GridSpawner`, like `gridspawner.usage.traits.UsageSettings`. `runs_settings()` hands the
values to the service (`gridspawner.service.settings.hand_over`), which runs the runs."""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, Float, Int, Unicode
from traitlets.config import Configurable


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
        directory. Deleting a run deletes its directory.
        """,
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
        the service starts the next run at once; one freed by an interactive server is found by
        the next try. Each try probes the backend's hosts.
        """,
    ).tag(config=True)

    runs_queue_retry_max = Float(
        30.0,
        help="""
        The longest wait between two tries of a backend whose queue cannot start: the wait
        after `runs_queue_retry` doubles with every try that finds no room, up to this, so a
        long queue costs next to nothing while it waits (a run of the service that ends still
        starts the next at once). A GPU freed by an interactive server is found within this.
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

    def runs_settings(self) -> dict[str, Any]:
        """The runs traits' values, as the service takes them (`RunsConfig`)."""
        return {
            "runs_dir": self.runs_dir,
            "runs_per_user": self.runs_per_user,
            "runs_per_group": dict(self.runs_per_group),
            "runs_queue_retry": self.runs_queue_retry,
            "runs_queue_retry_max": self.runs_queue_retry_max,
            "runs_poll_interval": self.runs_poll_interval,
            "runs_max_notebook_mb": self.runs_max_notebook_mb,
            "runs_kernel": self.runs_kernel,
        }
