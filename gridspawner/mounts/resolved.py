"""A spawn's data mounts as backends receive them (`gridspawner.backends.base.LaunchContext.
mounts`): the source resolved from the storage settings, and the credentials that work for
it. They carry SECRETS and live in memory only; their reprs hide them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class S3Source:
    url: str
    bucket: str
    prefix: str = ""  # "" or ending in "/"
    region: str = "us-east-1"
    provider: str = "Other"
    path_style: bool = True


@dataclass(frozen=True)
class S3Secret:
    access_key: str
    secret_key: str
    session_token: str | None = None
    #: temporary (STS) credentials: when they expire, and when the hub means to replace them
    #: (epoch seconds; None: never). Not secret; only the first three fields are.
    expires_at: float | None = None
    renew_at: float | None = None

    def __repr__(self) -> str:  # a secret never reaches a log through repr()
        return "S3Secret(<hidden>)"


@dataclass(frozen=True)
class SSHSource:
    address: str
    user: str
    path: str
    port: int = 22
    known_hosts: str = ""  # known_hosts lines for this host (public, written to $S/.mounts)


@dataclass(frozen=True)
class SSHSecret:
    password: str | None = None
    private_key: str | None = None  # OpenSSH private key text (the hub-managed key)

    def __repr__(self) -> str:
        return "SSHSecret(<hidden>)"


@dataclass(frozen=True)
class ResolvedMount:
    """One data mount resolved for one launch: its source, the secret that works for it,
    where (``target`` under the data directory) and how. ``index`` is its position in the
    request's ``mounts``. Host scripts (`hostcmd`) and Kubernetes objects (`k8s`) are
    built from it."""

    index: int
    target: str
    mode: str  # "mount" | "copy"
    read_only: bool
    source: S3Source | SSHSource
    secret: S3Secret | SSHSecret
