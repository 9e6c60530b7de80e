"""The admin's catalog settings: every `c.GridSpawner.*` trait that describes what users may
choose (backends, images, GPU choices, policies, profiles, storage).

A mixin of `GridSpawner`, kept apart so the spawner module stays about JupyterHub glue.
`raw_catalog()` hands the values to `catalog.build_catalog`, which validates them.
"""

from __future__ import annotations

from typing import Any

from traitlets import Dict, Float, Int, List, Union, Unicode
from traitlets.config import Configurable


class CatalogSettings(Configurable):
    """Catalog traits, configured as ``c.GridSpawner.<name>``."""

    backends = Dict(
        help="""
        The places servers can run, by name. Each value is a dict with ``kind`` (``local``:
        this machine; ``ssh``: remote hosts; ``kubernetes``: a cluster; ``slurm``: batch jobs
        on a Slurm cluster, submitted through its login node), optional
        ``display_name`` and ``description`` shown in the form, and the kind's own settings
        (see the admin guide for each kind).

        Example::

            c.GridSpawner.backends = {
                "here": {"kind": "local", "display_name": "Hub machine"},
            }
        """,
    ).tag(config=True)

    images = Dict(
        help="""
        The images or environments users choose from, by key. Each value has
        ``display_name``, optional ``description``, and one entry per backend kind saying what
        to run there, e.g. ``{"local": {"cmd": ["jupyterhub-singleuser"], "env": {...}}}``.
        An image is offered on a backend only when it has an entry for that backend's kind.
        """,
    ).tag(config=True)

    max_gpus = Int(
        8,
        help="The most GPUs any single server may ask for, whatever a group policy says.",
    ).tag(config=True)

    gpu_memory_classes = List(
        [0, 16, 24, 40, 80],
        help="""
        The minimum-VRAM-per-GPU choices offered, in GB; 0 means "any GPU" and is always
        offered. A card counts as N GB when it reports at least
        ``N * 1024 * (1 - gpu_memory_tolerance)`` MiB.
        """,
    ).tag(config=True)

    gpu_memory_tolerance = Float(
        0.07,
        help="""
        How much less VRAM than the nominal size a card may report and still match a class
        (a fraction). GPUs report a few percent less than their marketed size: an "A10 24 GB"
        reports 23028 MiB, a "T4 16 GB" 15360 MiB. The default 0.07 accepts those while a
        16 GB card never matches 24 GB.
        """,
    ).tag(config=True)

    cpu_choices = List(
        [],
        help="CPU counts users may pick (e.g. ``[1, 2, 4, 8]``). Empty: no CPU field; the backend's default applies.",
    ).tag(config=True)

    memory_choices = List(
        [],
        help="Memory sizes in GB users may pick (e.g. ``[4, 8, 16]``). Empty: no memory field.",
    ).tag(config=True)

    group_policy = Dict(
        help="""
        What members of a JupyterHub group may choose, by group name. Each value may set
        ``backends`` and ``images`` (lists of names, or ``"*"`` for all), ``max_gpus`` and
        ``free_choice`` (``False``: members may only start the profiles offered to them) and
        ``image_refs``: patterns of the container image references members may type instead
        of choosing an image (custom images, e.g. ``["registry.example.edu/*"]``; fnmatch
        syntax, ``*`` also matches ``/``; default none). A reference runs on kubernetes
        backends and on ssh backends whose every host has a container runtime; see
        docs/admin/policy.md. A user in several listed groups gets the union of their
        policies; a user in none of them gets `default_policy`.

        Example (a course that may use one GPU, only through its profile)::

            c.GridSpawner.group_policy = {
                "ml101": {"backends": ["gpu-lab"], "images": ["pytorch"],
                          "max_gpus": 1, "free_choice": False},
            }
        """,
    ).tag(config=True)

    default_policy = Dict(
        {"backends": "*", "images": "*", "free_choice": True},
        help="""
        The policy for users in none of the groups named in `group_policy` (same keys).
        The default lets them choose any backend and image, up to `max_gpus` GPUs; set e.g.
        ``{"free_choice": False}`` to offer them profiles only.
        """,
    ).tag(config=True)

    profiles = Dict(
        help="""
        Named presets shown first in the form, by key. Each value may have ``display_name``,
        ``description``, ``groups`` (JupyterHub groups that see it; empty or missing: everyone),
        ``values`` (any of backend, image, gpus, gpu_memory, cpu, memory), ``changeable``
        (the fields from ``values`` the user may still change), ``max_gpus`` (a cap when
        ``gpus`` is changeable) and ``max_runtime`` (e.g. ``"4h"``: the server is stopped after
        that long, so a forgotten GPU server does not run for a week).

        Example::

            c.GridSpawner.profiles = {
                "ml-course": {
                    "display_name": "ML course: 1 T4, PyTorch",
                    "groups": ["ml101"],
                    "values": {"backend": "gpu-lab", "image": "pytorch", "gpus": 1, "gpu_memory": 16},
                    "max_runtime": "4h",
                },
            }
        """,
    ).tag(config=True)

    default_options = Dict(
        help="""
        Starting values for the form and for REST requests that omit a field: any of
        backend, image, gpus, gpu_memory, cpu, memory. Unset: the first backend and image
        the user may use, no GPU.
        """,
    ).tag(config=True)

    max_runtime = Union(
        [Float(), Unicode()],
        default_value=0.0,
        help="""
        Stop every server after this long (seconds, or a string such as ``"12h"``, ``"3d"``);
        0 means no limit. A profile's own ``max_runtime`` takes precedence.
        """,
    ).tag(config=True)

    stop_warnings = List(
        ["30m", "5m"],
        help="""
        When, before the hub stops a server at its maximum run time, gridspawner's JupyterLab
        extension warns the user (a notification, on top of the time left it always shows in
        the status bar): a list of durations (seconds, or strings such as ``"30m"``, ``"1h"``).
        An empty list: no notifications. The hub's home page (where gridspawner's pages are
        enabled: ``gridspawner.pages.enable(c)``) shows its warning from the longest one on. The server reads them from its
        ``GRIDSPAWNER_STOP_WARNINGS`` environment variable (seconds, longest first); images
        without the extension (gridspawner-lab: see the admin guide) ignore it.

        Example::

            c.GridSpawner.stop_warnings = ["1h", "15m", "2m"]
        """,
    ).tag(config=True)

    storage = Dict(
        help="""
        Data mounts users may add to their server: S3 buckets/prefixes and directories on
        SSH storage servers, mounted (FUSE on hosts, CSI on Kubernetes) or copied in before
        the server starts. Empty (the default): data mounts are disabled and a request with
        ``mounts`` is refused with "data mounts are not enabled on this hub".

        Keys: ``s3`` (endpoint name → ``url``, ``region``, ``buckets`` (globs or ``"re:"``
        regexes, ``{username}`` allowed), ``user_prefix``, ``credentials`` (``keys`` typed by
        the user and/or ``sts``: per-user credentials the hub asks STS for, scoped to the
        prefix), ``sts`` (``role_arn``, the admin keys' variable names, ``duration``,
        ``renew_before``: the hub renews them for servers running on hosts; on Kubernetes a
        server is stopped before they expire)), ``ssh`` (host name → ``address``, ``port``, ``known_hosts``,
        ``paths``, ``user``, ``auth``: ``key`` (hub-managed per-user key) and/or
        ``password``), ``access`` (group → which endpoints/hosts it may use, ``"*"`` = every
        user), ``max_mounts`` (default 4), ``tool`` (the FUSE program for
        mode ``mount`` on hosts: ``rclone`` for both types, ``s3fs`` for S3 or ``sshfs`` for
        SSH mounts — the other type then uses rclone),
        ``check_timeout`` (seconds, default 10), ``key_dir`` (where the hub keeps the
        per-user SSH keys) and ``kubernetes`` (``copy_image``, ``csi`` driver templates).
        Admin S3 keys are given as the NAMES of environment variables, never the keys.
        See the admin guide "Data mounts" for every key.

        Example::

            c.GridSpawner.storage = {
                "s3": {
                    "campus": {
                        "url": "https://s3.example.edu",
                        "buckets": ["lab-*"],
                        "user_prefix": "{username}/",
                        "credentials": ["keys"],
                    },
                },
                "access": {"*": {"s3": ["campus"]}},
            }
        """,
    ).tag(config=True)

    capacity_refresh_interval = Float(
        15.0,
        help="Seconds between background capacity probes of every backend (the form shows the cached result).",
    ).tag(config=True)

    def raw_catalog(self) -> dict[str, Any]:
        """The catalog traits' values, as `catalog.build_catalog` takes them."""
        return {
            "backends": self.backends,
            "images": self.images,
            "max_gpus": self.max_gpus,
            "gpu_memory_classes": self.gpu_memory_classes,
            "cpu_choices": self.cpu_choices,
            "memory_choices": self.memory_choices,
            "group_policy": self.group_policy,
            "default_policy": self.default_policy,
            "profiles": self.profiles,
            "default_options": self.default_options,
            "gpu_memory_tolerance": self.gpu_memory_tolerance,
            "max_runtime": self.max_runtime,
            "storage": self.storage,
        }
