"""The data mounts editor of the spawn form: its view model, built from the storage settings
the user's groups allow and the rows submitted earlier. Secrets are never put in it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..backends import backend_class
from ..catalog_values import Catalog
from .view import Option, duration_text, echo_invalid, value_key

#: how many rows the mounts editor shows without JavaScript (unused rows are skipped)
EMPTY_MOUNT_ROWS = 3
_MOUNT_KEY = re.compile(r"mounts\[([0-9]+)\]\.?(.*)")
_TEXT_KEYS = ("bucket", "prefix", "path", "user", "target")


def is_mount_key(key: str) -> bool:
    return key == "mounts" or key.startswith("mounts[")


@dataclass(slots=True)
class MountRow:
    """One row of the mounts editor. ``values`` never holds a secret."""

    index: int
    values: dict[str, str]
    read_only: bool
    type_opts: list[Option]
    endpoint_opts: list[Option]
    host_opts: list[Option]
    mode_opts: list[Option]
    credentials_opts: list[Option]
    auth_opts: list[Option]
    errors: dict[str, str]
    other_errors: list[tuple[str, str]]

    def name(self, key: str) -> str:
        return f"mounts-{self.index}-{key}"

    def id(self, key: str) -> str:
        return f"gs-mounts-{self.index}-{key}"


@dataclass(slots=True)
class MountsView:
    rows: list[MountRow]
    template: MountRow  # the row the script copies for "Add" (index __i__)
    limit: int
    errors: list[str]  # about the whole list ("mounts", "mounts[i]")
    ssh_public_key: str | None
    user_fixed: bool  # every SSH host fixes the login name: no user input
    has_s3: bool
    has_ssh: bool
    #: what happens to temporary (STS) credentials on backends that cannot renew them
    sts_note: str | None = None


def _opts(choices: list[tuple[str, str, tuple]], value: Any) -> list[Option]:
    key = value_key(value) if value not in (None, "") else None
    opts = [Option(v, label, selected=v == key, data=data) for v, label, data in choices]
    if key is not None:
        echo_invalid(opts, value)
    elif opts:
        opts[0].selected = True
    return opts


def mounts_view(
    catalog: Catalog, groups: list[str], values: Any, errors: Any, username: str = "", ssh_public_key: str | None = None
) -> MountsView | None:
    """The mounts editor, or None when the user may not add any mount."""
    storage = getattr(catalog, "storage", None)
    if storage is None or not storage.enabled:
        return None
    endpoints = storage.s3_for(groups)
    hosts = storage.ssh_for(groups)
    limit = storage.max_mounts_for(groups)
    if not (endpoints or hosts) or limit <= 0:
        return None
    values = values if isinstance(values, Mapping) else {}
    errors = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, Mapping) else {}
    submitted = values.get("mounts")
    rows_in = [r for r in submitted if isinstance(r, Mapping)] if isinstance(submitted, list) else []

    types = ([("s3", "S3", ())] if endpoints else []) + ([("ssh", "SSH", ())] if hosts else [])
    ep_choices = [
        (n, storage.s3[n].display_name, (("credentials", " ".join(storage.s3[n].credentials)),
                                         ("prefix", storage.s3[n].prefix_for(username))))
        for n in endpoints
    ]
    host_choices = [
        (n, storage.ssh[n].display_name, (("auth", " ".join(storage.ssh[n].auth)),
                                           ("user", storage.ssh[n].login_for(username) or "")))
        for n in hosts
    ]
    creds = list(dict.fromkeys(c for n in endpoints for c in storage.s3[n].credentials))
    auths = list(dict.fromkeys(a for n in hosts for a in storage.ssh[n].auth))
    cred_labels = {"sts": "Temporary (hub)", "keys": "My access key"}
    auth_labels = {"key": "The hub's key", "password": "Password"}

    row_errors: dict[int, dict[str, str]] = {}
    list_errors: list[str] = []
    for k, v in errors.items():
        if k == "mounts":
            list_errors.append(v)
            continue
        m = _MOUNT_KEY.fullmatch(k)
        if m:
            row_errors.setdefault(int(m.group(1)), {})[m.group(2)] = v

    def row(i: int, raw: Mapping) -> MountRow:
        vals = {k: value_key(raw.get(k)) for k in _TEXT_KEYS if isinstance(raw.get(k), (str, int, float))}
        mine = row_errors.get(i, {})
        shown_fields = {"type", "endpoint", "host", "bucket", "prefix", "path", "user", "target", "mode",
                        "read_only", "credentials", "auth", "access_key", "secret_key", "password"}
        return MountRow(
            index=i,
            values=vals,
            read_only=raw.get("read_only") is True,
            type_opts=_opts(types, raw.get("type")),
            endpoint_opts=_opts(ep_choices, raw.get("endpoint")),
            host_opts=_opts(host_choices, raw.get("host")),
            mode_opts=_opts([("mount", "Mount", ()), ("copy", "Copy", ())], raw.get("mode")),
            credentials_opts=_opts([(c, cred_labels.get(c, c), ()) for c in creds], raw.get("credentials")),
            auth_opts=_opts([(a, auth_labels.get(a, a), ()) for a in auths], raw.get("auth")),
            errors={k: v for k, v in mine.items() if k in shown_fields},
            other_errors=[(k or "row", v) for k, v in mine.items() if k not in shown_fields],
        )

    rows = [row(i, r) for i, r in enumerate(rows_in)]
    if isinstance(submitted, list) and len(rows_in) != len(submitted):
        list_errors.append("some rows were not objects and are not shown")
    while len(rows) < min(max(EMPTY_MOUNT_ROWS, len(rows_in)), limit) or (not rows and limit):
        rows.append(row(len(rows), {}))
    for i in row_errors:
        if i >= len(rows):
            list_errors.extend(f"mount {i + 1}: {v}" for v in row_errors[i].values())
    template = row(0, {})
    template.index = "__i__"  # type: ignore[assignment]  # the script numbers new rows
    return MountsView(
        rows=rows,
        template=template,
        limit=limit,
        errors=list_errors,
        ssh_public_key=ssh_public_key if hosts else None,
        user_fixed=all(storage.ssh[n].user is not None for n in hosts),
        has_s3=bool(endpoints),
        has_ssh=bool(hosts),
        sts_note=_sts_note(catalog, groups, endpoints),
    )


def _sts_note(catalog: Catalog, groups: list[str], endpoints: list[str]) -> str | None:
    """"Temporary credentials last 12 h: on <backends that cannot renew them> a server with
    such a bucket mounted is stopped before they expire …" — None when it does not apply."""
    durations = sorted({catalog.storage.s3[n].sts.duration for n in endpoints if "sts" in catalog.storage.s3[n].credentials})
    if not durations:
        return None
    policy = catalog.policy_for(groups)
    offered = {n for n in catalog.backends if policy.allows_backend(n)}
    offered |= {p.values.get("backend") for p in catalog.profiles_for(groups) if p.values.get("backend")}
    fixed = [b.display_name for n, b in catalog.backends.items()
             if n in offered and not backend_class(b.kind).renews_credentials]
    if not fixed:
        return None
    lasting = duration_text(durations[0]) if len(durations) == 1 else f"{duration_text(durations[0])} or more"
    return (f"Temporary credentials last {lasting}. On {', '.join(fixed)}, a server with a bucket mounted with "
            "them is stopped shortly before they expire; elsewhere the hub renews them while the server runs.")
