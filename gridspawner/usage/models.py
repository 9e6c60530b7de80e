"""The usage database's tables (SQLAlchemy 2). gridspawner's own tables only, every name
prefixed ``gridspawner_``, versioned by Alembic in ``gridspawner_alembic_version`` — so the
records may even share a database with JupyterHub without touching its tables.

Times are epoch seconds (UTC) in double precision: sums of durations are plain arithmetic in
every SQL dialect, and calendar periods are computed in Python (`periods`).

A change here needs a migration: ``gridspawner/usage/migrations/versions`` (a test compares
the migrated schema with these models).
"""

from __future__ import annotations

from sqlalchemy import Double, Float, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: stable constraint and index names on every dialect (Alembic compares them)
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

#: the Alembic version table (never JupyterHub's ``alembic_version``)
VERSION_TABLE = "gridspawner_alembic_version"

#: the index that covers the sums over a period (see UsageRecord.__table_args__)
SUMS_INDEX = "ix_gridspawner_usage_records_sums"
#: the same in user order: the sums per user read it in order, with no sort (migration 0002)
USER_SUMS_INDEX = "ix_gridspawner_usage_records_user_sums"

#: what a record is of
KINDS = ("server", "run")

#: why a server stopped (see docs/admin/usage.md for each)
STOP_REASONS = (
    "user",         # its owner stopped it (home page, REST with their token)
    "admin",        # someone else with the right to: an admin, or a service such as a culler
    "max_runtime",  # its maximum run time ended
    "idle",         # it was idle (no Jupyter activity, no GPU use) for the idle timeout
    "quota",        # its user's (or group's) GPU quota ran out, after the grace period
    "failure",      # it failed (the backend reported an error exit)
    "ended",        # it ended by itself (exited, its pod completed or was deleted outside the hub)
    "hub_lost",     # the hub lost track of it (could not re-attach; no longer in the hub's database)
    "hub",          # stopped through the hub, which cannot tell by whom (e.g. the hub's shutdown)
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UsageRecord(Base):
    """One server (or, with issue 12, one notebook run): who, where, what, from when to when."""

    __tablename__ = "gridspawner_usage_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    #: the notebook run's id (kind "run"); None for servers
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    username: Mapped[str] = mapped_column(String(255))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    backend: Mapped[str] = mapped_column(String(255))
    backend_kind: Mapped[str] = mapped_column(String(32))
    #: the host (ssh, local) or node (kubernetes); "" when not known
    host: Mapped[str] = mapped_column(String(255), default="")
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    #: nvidia-smi's model name; several models joined with " + "; "" when not known
    gpu_model: Mapped[str] = mapped_column(String(255), default="")
    #: nominal GB per GPU (the smallest of them); the request's minimum when not known
    gpu_memory_gb: Mapped[int] = mapped_column(Integer, default=0)
    cpu: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_gb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image: Mapped[str] = mapped_column(String(255), default="")
    profile: Mapped[str] = mapped_column(String(255), default="")
    #: the price of an hour when it started (`pricing.Prices.rate_of`), in ``currency``
    price_per_hour: Mapped[float] = mapped_column(Double, default=0.0)
    currency: Mapped[str] = mapped_column(String(16), default="")
    started_at: Mapped[float] = mapped_column(Double)
    #: None while it runs
    stopped_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    #: the last time the hub knew it was running (the end of a server the hub lost)
    last_seen_at: Mapped[float] = mapped_column(Double)
    stop_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: who asked for the stop (a user or ``service:NAME``), where known
    stopped_by: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (
        Index(None, "username", "started_at"),
        Index(None, "started_at"),
        Index(None, "stopped_at"),
        # covers the sums over a period (totals, per user, per day/week/month): the database
        # reads this narrow index instead of the wide rows (admin pages over many records)
        Index(SUMS_INDEX, "started_at", "stopped_at", "gpus", "price_per_hour", "username"),
        Index(USER_SUMS_INDEX, "username", "started_at", "stopped_at", "gpus", "price_per_hour"),
        # the admin page's filter menus: the distinct values, one index seek each (migration 0002)
        Index(None, "backend"),
        Index(None, "gpu_model"),
    )


class UsageGroup(Base):
    """The JupyterHub groups the record's user was in when it started."""

    __tablename__ = "gridspawner_usage_groups"

    record_id: Mapped[int] = mapped_column(ForeignKey(UsageRecord.id, ondelete="CASCADE"), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255), primary_key=True)

    __table_args__ = (Index(None, "group_name", "record_id"),)


RECORDS = UsageRecord.__table__
GROUPS = UsageGroup.__table__


#: a notebook run's states (`gridspawner.runs`); the first three are active
RUN_STATES = ("queued", "preparing", "running", "succeeded", "failed", "cancelled", "timed_out")


class RunRow(Base):
    """One notebook run (`gridspawner.runs`): what was asked (options without secrets,
    parameters), where it is in its life, where it ran and how it ended. The rows in state
    ``queued`` are the queue (oldest ``submitted_at`` first, per backend). JSON columns are
    Text; ``launch_state`` is the backend's `Launch.state` (no secret)."""

    __tablename__ = "gridspawner_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(255))
    backend_kind: Mapped[str] = mapped_column(String(32), default="")
    profile: Mapped[str] = mapped_column(String(255), default="")
    image: Mapped[str] = mapped_column(String(255), default="")
    #: JSON: the spawn options (no secret), the parameters, parameter → mount bindings,
    #: the submit's warnings, the user's groups at submit time
    options: Mapped[str] = mapped_column(Text, default="{}")
    parameters: Mapped[str] = mapped_column(Text, default="{}")
    bindings: Mapped[str] = mapped_column(Text, default="{}")
    warnings: Mapped[str] = mapped_column(Text, default="[]")
    groups: Mapped[str] = mapped_column(Text, default="[]")
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_memory_gb: Mapped[int] = mapped_column(Integer, default=0)
    gpu_model: Mapped[str] = mapped_column(String(255), default="")
    host: Mapped[str] = mapped_column(String(255), default="")
    #: seconds the run may take once running (the profile's or the hub's maximum run time)
    max_runtime: Mapped[float | None] = mapped_column(Double, nullable=True)
    submitted_at: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    #: changed on every update (``?since=`` reads it)
    updated_at: Mapped[float] = mapped_column(Double)
    #: 1 once someone asked to cancel an active run (the executor stops it)
    cancel_requested: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    launch_state: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: JSON {cell_index, ename, evalue, message} of a run that did not succeed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_tail: Mapped[str] = mapped_column(Text, default="")
    #: what an active run waits for or what comes next ("waiting: 2 of 2 GPUs at once in
    #: use", "will be stopped at 14:05 UTC: …"); "" when nothing
    message: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: its usage record (`UsageRecord.id`), once it ran
    record_id: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        Index(None, "username", "submitted_at"),
        Index(None, "status", "backend", "submitted_at"),
        Index(None, "updated_at"),
    )


RUNS = RunRow.__table__
