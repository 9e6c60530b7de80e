"""PURE builders of the sh fragments that mount, copy and unmount data on a host.

The fragments are pieces of the host backend's scripts (`backends.host.scripts`), which
travel on stdin of ``/bin/sh -s``: a credential written here goes from the script text into
a file through a quoted here-doc, so it never appears in an argv, an environment or a log.
**Never log a fragment that carries secrets.**

Layout inside the 0700 session directory ``$S``::

    $S/.mounts/          0700: per-mount config / credential files (0600), logs, caches
    <data_dir>/<target>  the mount points / copy destinations (data_dir defaults to $S/data)

Every value is ``shlex.quote``d; paths are additionally restricted to a safe character set
(`ValueError` otherwise), because FUSE ``-o`` options and rclone's config file give
commas, ``$`` and newlines meanings of their own.

Mounts run as the server's user (FUSE through the setuid ``fusermount3``): no root, no
``allow_other``. The unmount fragment finds the mounts under the data directory in
``/proc/self/mountinfo`` (so it also cleans up after a crash or for a dead session whose
mount list is unknown), unmounts them (lazily if busy), removes ``$S/.mounts`` and sets
``gs_mounts_left`` to what is still mounted: **never ``rm -rf`` a session directory while
``gs_mounts_left`` is non-empty** — that would delete the bucket's contents.

Writes not uploaded yet: rclone's VFS cache uploads a written file a few seconds after it is
closed (``--vfs-write-back``) and marks it ``"Dirty": true`` in its metadata
(``<cache>/vfsMeta/…``) from the first write until the upload is done. The unmount fragment
first waits (bounded by its ``flush_wait``) until no live mount has such a file, and moves
the cache of a mount that still has one out of the session directory (to
``<session root>/unsaved/<session>-<time>``, printed as ``@@unsaved``) instead of deleting it.
s3fs and sshfs send a file to the server before its ``close()`` returns: nothing to wait for.

STS (session) credentials of a live rclone S3 mount are not written into rclone's config:
rclone reads them through the AWS SDK's ``credential_process`` (``cat $S/.mounts/<i>.json``),
which the SDK runs again whenever the ``Expiration`` written in that file has passed — so
`renew_fragment` can replace them while the mount runs.
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
from typing import Mapping, Sequence

from ..vocabulary import BUCKET, BUCKET_LENGTH, CONTROL, HTTP_URL, LOGIN, MOUNT_TARGET, REGION
from .resolved import ResolvedMount, S3Secret, S3Source, SSHSecret, SSHSource
# the sh functions every fragment starts with, and the report of what an unmount kept
from .hostsh import MOUNT_FUNCS as _MOUNT_FUNCS
from .hostsh import UNSAVED_REPORT

q = shlex.quote

#: exit status of a launch script whose mount step failed (scripts.py uses 3-13)
EXIT_MOUNT = 14
MOUNTS_DIR = ".mounts"
TOOLS = ("rclone", "s3fs", "sshfs")

_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+@=~-]*")
_PREFIX = re.compile(r"([A-Za-z0-9_@+=,~-][A-Za-z0-9._@+=,~-]*/)*")
_HOST = re.compile(r"[A-Za-z0-9.:-]{1,253}")


# --------------------------------------------------------------------------- checks


def _path(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE_PATH.fullmatch(value) or "/../" in value + "/" or "//" in value:
        raise ValueError(f"unsafe {what} for mounts: {value!r}")
    return value.rstrip("/") or "/"


def _line(value: str, what: str) -> str:
    if not isinstance(value, str) or CONTROL.search(value):
        raise ValueError(f"{what} must be one line without control characters")
    return value


def _check(m: ResolvedMount) -> None:
    if not MOUNT_TARGET.fullmatch(m.target) or m.target in (".", ".."):
        raise ValueError(f"unsafe mount target {m.target!r}")
    if m.mode not in ("mount", "copy"):
        raise ValueError(f"unknown mount mode {m.mode!r}")
    s = m.source
    if isinstance(s, S3Source):
        if not isinstance(m.secret, S3Secret):
            raise ValueError("an S3 mount needs an S3Secret")
        if not BUCKET.fullmatch(s.bucket) or not BUCKET_LENGTH[0] <= len(s.bucket) <= BUCKET_LENGTH[1]:
            raise ValueError(f"unsafe bucket {s.bucket!r}")
        if not _PREFIX.fullmatch(s.prefix) or "/../" in "/" + s.prefix or "/./" in "/" + s.prefix:
            raise ValueError(f"unsafe prefix {s.prefix!r}")
        if not HTTP_URL.fullmatch(s.url) or not REGION.fullmatch(s.region) or not s.provider.isalnum():
            raise ValueError("unsafe endpoint settings")
        for v in (m.secret.access_key, m.secret.secret_key, m.secret.session_token or ""):
            if not re.fullmatch(r"[A-Za-z0-9/+=._~-]*", v):
                raise ValueError("S3 credentials may only contain letters, digits and / + = . _ ~ -")
    elif isinstance(s, SSHSource):
        if not isinstance(m.secret, SSHSecret) or (m.secret.password is None) == (m.secret.private_key is None):
            raise ValueError("an SSH mount needs exactly one of password / private_key")
        if not _HOST.fullmatch(s.address) or not LOGIN.fullmatch(s.user) or not (0 < int(s.port) < 65536):
            raise ValueError("unsafe SSH storage settings")
        _path(s.path, "SSH storage path")
        if m.secret.password is not None:
            _line(m.secret.password, "an SSH password")
    else:
        raise ValueError(f"unknown mount source {type(s).__name__}")


def _heredoc(path: str, content: str, *, append: bool = False) -> str:
    """Write ``content`` to ``path`` (mode 0600 by the umask) from the script text itself."""
    tag = "GRIDSPAWNER_EOF"
    lines = content.split("\n")
    while tag in lines:
        tag += "_"
    if not content.endswith("\n"):
        content += "\n"
    return f"(umask 077; cat {'>>' if append else '>'}{path} <<'{tag}'\n{content}{tag}\n)"


def _preamble(session_dir: str, data_dir: str | None) -> tuple[str, str]:
    sdir = _path(session_dir, "session directory")
    ddir = _path(data_dir, "data directory") if data_dir else sdir + "/data"
    if ddir == sdir or not ddir.startswith("/"):
        raise ValueError("the data directory must be a directory of its own")
    return sdir, ddir


def data_dir_of(session_dir: str, data_dir: str | None = None) -> str:
    """The directory the targets live in."""
    return _preamble(session_dir, data_dir)[1]


# --------------------------------------------------------------------------- rclone


def _rclone_config(m: ResolvedMount, cdir: str, remote: str) -> tuple[str, str]:
    """(sh that writes the config file, the config file's path)."""
    conf = f"{cdir}/{m.index}.conf"
    s = m.source
    if isinstance(s, S3Source):
        sec = m.secret
        lines = [f"[{remote}]", "type = s3", f"provider = {s.provider}"]
        out = ""
        if sec.session_token and m.mode == "mount":
            # renewable: the AWS SDK inside rclone reads them from the credential file
            # (again whenever its Expiration has passed), see `renew_fragment`
            json_path, aws_path = credential_paths(cdir, m.index)
            out += _heredoc(q(json_path), credential_process_json(sec)) + "\n"
            out += _heredoc(q(aws_path), f"[default]\ncredential_process = cat {json_path}") + "\n"
            lines += ["env_auth = true", f"shared_credentials_file = {aws_path}"]
        else:
            lines += ["env_auth = false", f"access_key_id = {sec.access_key}", f"secret_access_key = {sec.secret_key}"]
            if sec.session_token:
                lines.append(f"session_token = {sec.session_token}")
        lines += [
            f"endpoint = {s.url}",
            f"region = {s.region}",
            f"force_path_style = {'true' if s.path_style else 'false'}",
            "no_check_bucket = true",
        ]
        return out + _heredoc(q(conf), "\n".join(lines)) + "\n", conf
    sec = m.secret
    kh = f"{cdir}/{m.index}.known_hosts"
    lines = [
        f"[{remote}]",
        "type = sftp",
        f"host = {s.address}",
        f"port = {int(s.port)}",
        f"user = {s.user}",
        f"known_hosts_file = {kh}",
        "shell_type = none",
        "disable_hashcheck = true",
    ]
    out = _heredoc(q(kh), s.known_hosts) + "\n"
    if sec.private_key is not None:
        key = f"{cdir}/{m.index}.key"
        lines.append(f"key_file = {key}")
        out += _heredoc(q(key), sec.private_key.strip("\n")) + "\n"
        out += _heredoc(q(conf), "\n".join(lines)) + "\n"
    else:
        pw = f"{cdir}/{m.index}.pass"
        out += _heredoc(q(pw), sec.password) + "\n"
        out += _heredoc(q(conf), "\n".join(lines)) + "\n"
        # rclone wants the password obscured; printf is a builtin, so it stays out of argv
        out += f"gs_p=$(rclone obscure - <{q(pw)}) && printf 'pass = %s\\n' \"$gs_p\" >>{q(conf)} && rm -f {q(pw)}; gs_p=\n"
    return out, conf


#: seconds after the hub's planned renewal at which rclone reads the credential file again
#: (if the renewal is late, it reads it on every request until the new credentials are there)
REREAD_AFTER_RENEWAL = 10


def credential_paths(cdir: str, index: int) -> tuple[str, str]:
    """(the credential JSON, the AWS shared config file naming it) of a renewable S3 mount."""
    return f"{cdir}/{int(index)}.json", f"{cdir}/{int(index)}.aws"


def credential_process_json(secret: S3Secret) -> str:
    """The ``credential_process`` output (AWS SDK format, version 1) for ``secret``. Its
    ``Expiration`` is when the SDK reads the file again: shortly after the hub's planned
    renewal, never after the credentials' own expiry. CONTAINS SECRETS."""
    out = {"Version": 1, "AccessKeyId": secret.access_key, "SecretAccessKey": secret.secret_key,
           "SessionToken": secret.session_token or ""}
    times = [t for t in (secret.expires_at, (secret.renew_at + REREAD_AFTER_RENEWAL) if secret.renew_at else None) if t]
    if times:
        when = datetime.datetime.fromtimestamp(min(times), datetime.timezone.utc)
        out["Expiration"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(out)


def renew_fragment(session_dir: str, secrets: Mapping[int, S3Secret]) -> str:
    """Replace the credentials of the live renewable S3 mounts ``index → secret`` (atomically:
    a new file moved over the old one). Prints ``@@renewed <index>`` per mount whose
    credential file was replaced and ``@@not-renewed <index>`` where there is none (the mount
    is gone, or is not renewable). CONTAINS SECRETS: never log it."""
    sdir = _path(session_dir, "session directory")
    cdir = f"{sdir}/{MOUNTS_DIR}"
    out = []
    for index, secret in sorted(secrets.items()):
        i = int(index)
        for v in (secret.access_key, secret.secret_key, secret.session_token or ""):
            if not re.fullmatch(r"[A-Za-z0-9/+=._~-]*", v):
                raise ValueError("S3 credentials may only contain letters, digits and / + = . _ ~ -")
        target, _ = credential_paths(cdir, i)
        tmp = f"{cdir}/.{i}.json.new"
        out.append(
            f"if [ -f {q(target)} ]; then\n"
            f"{_heredoc(q(tmp), credential_process_json(secret))} && mv -f {q(tmp)} {q(target)}"
            f' && echo "@@renewed {i}" || {{ rm -f {q(tmp)}; echo "@@not-renewed {i}"; }}\n'
            f'else\n  echo "@@not-renewed {i}"\nfi\n'
        )
    return "".join(out)


def _remote_path(m: ResolvedMount, remote: str) -> str:
    s = m.source
    if isinstance(s, S3Source):
        return f"{remote}:{s.bucket}/{s.prefix}".rstrip("/")
    return f"{remote}:{s.path}"


def _rclone_mount(m: ResolvedMount, cdir: str, target: str, wait: float) -> str:
    remote = f"m{m.index}"
    write, conf = _rclone_config(m, cdir, remote)
    args = [
        "rclone", "mount", _remote_path(m, remote), target,
        "--config", conf,
        "--cache-dir", f"{cdir}/{m.index}.cache",
        "--log-file", f"{cdir}/{m.index}.log",
        "--dir-perms", "0700", "--file-perms", "0600",
        "--vfs-cache-mode", "off" if m.read_only else "writes",
        "--daemon", "--daemon-wait", f"{max(1, int(wait))}s",
    ]
    if m.read_only:
        args.append("--read-only")
    return write + " ".join(q(a) for a in args)


def _rclone_copy(m: ResolvedMount, cdir: str, target: str) -> str:
    remote = f"m{m.index}"
    write, conf = _rclone_config(m, cdir, remote)
    args = [
        "rclone", "copy", _remote_path(m, remote), target,
        "--config", conf,
        "--log-file", f"{cdir}/{m.index}.log",
        "--stats", "0", "--retries", "2", "--low-level-retries", "3",
    ]
    return write + " ".join(q(a) for a in args)


# --------------------------------------------------------------------------- s3fs / sshfs


def _s3fs_mount(m: ResolvedMount, cdir: str, target: str) -> str:
    s, sec = m.source, m.secret
    if sec.session_token:
        raise ValueError("s3fs cannot read STS session credentials from its passwd file; use rclone")
    pw = f"{cdir}/{m.index}.passwd"
    write = _heredoc(q(pw), f"{sec.access_key}:{sec.secret_key}") + "\n"
    src = s.bucket + (":/" + s.prefix.rstrip("/") if s.prefix else "")
    opts = [f"passwd_file={pw}", f"url={s.url}", f"endpoint={s.region}", f"logfile={cdir}/{m.index}.log", "umask=077"]
    if s.path_style:
        opts.append("use_path_request_style")
    if m.read_only:
        opts.append("ro")
    args = ["s3fs", src, target]
    for o in opts:
        args += ["-o", o]
    return write + " ".join(q(a) for a in args)


def _sshfs_mount(m: ResolvedMount, cdir: str, target: str) -> str:
    s, sec = m.source, m.secret
    kh = f"{cdir}/{m.index}.known_hosts"
    write = _heredoc(q(kh), s.known_hosts) + "\n"
    opts = [
        f"UserKnownHostsFile={kh}",
        "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=yes",
        "ServerAliveInterval=15",
        "reconnect",
    ]
    stdin = ""
    if sec.private_key is not None:
        key = f"{cdir}/{m.index}.key"
        write += _heredoc(q(key), sec.private_key.strip("\n")) + "\n"
        opts += [f"IdentityFile={key}", "IdentitiesOnly=yes", "BatchMode=yes", "PasswordAuthentication=no"]
    else:
        pw = f"{cdir}/{m.index}.pass"
        write += _heredoc(q(pw), sec.password) + "\n"
        opts += ["password_stdin", "PubkeyAuthentication=no", "PreferredAuthentications=password"]
        stdin = f" <{q(pw)}"
    if m.read_only:
        opts.append("ro")
    host = f"[{s.address}]" if ":" in s.address else s.address
    args = ["sshfs", "-F", "/dev/null", "-p", str(int(s.port))]
    for o in opts:
        args += ["-o", o]
    args += [f"{s.user}@{host}:{s.path}", target]
    return write + " ".join(q(a) for a in args) + stdin


# --------------------------------------------------------------------------- fragments


def _in_clean_env(cmd: str, redirect: str) -> str:
    """The file-writing lines as they are, the tool's command line in a subshell without the
    host's AWS_* settings."""
    head, _, last = cmd.rpartition("\n")
    return (head + "\n" if head else "") + f"(gs_clean_env; {last}){redirect}"


def mount_fragment(
    session_dir: str,
    mounts: Sequence[ResolvedMount],
    *,
    tool: str = "rclone",
    data_dir: str | None = None,
    wait: float = 30,
) -> str:
    """Mount / copy every mount into ``<data_dir>/<target>``, in order.

    Runs after the session directory exists (0700) and before the server starts. On a
    failure it prints ``@@mount-failed <index>`` and the tool's log tail on stderr, undoes
    the mounts made so far and exits `EXIT_MOUNT`. Prints ``@@mounted <index>`` for each
    mount that is ready. ``tool``: the FUSE tool for mode ``mount`` — ``s3fs`` applies to S3
    mounts, ``sshfs`` to SSH mounts, anything else uses rclone; ``copy`` always uses rclone.
    Credential files of copies are removed as soon as the copy is done; those of live
    mounts stay (0600) until `unmount_fragment` (a FUSE tool may reconnect).
    CONTAINS SECRETS: never log it."""
    if tool not in TOOLS:
        raise ValueError(f"unknown mount tool {tool!r}")
    sdir, ddir = _preamble(session_dir, data_dir)
    cdir = f"{sdir}/{MOUNTS_DIR}"
    out = [
        _MOUNT_FUNCS,
        f"S={q(sdir)}\nD={q(ddir)}\nC={q(cdir)}\n",
        'mkdir -p -m 700 "$C" "$D" && chmod 700 "$C" || { echo "@@mount-failed -1"; exit %d; }\n' % EXIT_MOUNT,
        "gs_mount_fail() {\n"
        '  echo "@@mount-failed $1"\n'
        '  [ -f "$C/$1.log" ] && tail -n 20 "$C/$1.log" >&2\n'
        "  gs_unmount_all\n"
        f"  exit {EXIT_MOUNT}\n"
        "}\n",
    ]
    ticks = max(1, int(wait * 10))
    for m in mounts:
        _check(m)
        target = f"{ddir}/{m.target}"
        i = int(m.index)
        out.append(f"# mount {i}: {m.mode} -> {m.target}\n")
        out.append(f"mkdir -p -m 700 {q(target)} || gs_mount_fail {i}\n")
        if m.mode == "copy":
            out.append(_in_clean_env(_rclone_copy(m, cdir, target), "") + f" || gs_mount_fail {i}\n")
            out.append(f"rm -f {q(cdir)}/{i}.*\n")
        else:
            if isinstance(m.source, S3Source) and tool == "s3fs":
                cmd = _s3fs_mount(m, cdir, target)
            elif isinstance(m.source, SSHSource) and tool == "sshfs":
                cmd = _sshfs_mount(m, cdir, target)
            else:
                cmd = _rclone_mount(m, cdir, target, wait)
            out.append(_in_clean_env(cmd, f" >>{q(cdir)}/{i}.log 2>&1") + f" || gs_mount_fail {i}\n")
            out.append(f"gs_wait_mounted {q(target)} {ticks} || gs_mount_fail {i}\n")
        out.append(f'echo "@@mounted {i}"\n')
    return "".join(out)


def unmount_fragment(session_dir: str, *, data_dir: str | None = None, flush_wait: float = 0) -> str:
    """Unmount everything under the data directory (lazily when busy) and delete the
    credential directory ``$S/.mounts``. Safe to run any number of times, for a running,
    stopped, crashed or unknown (dead) session.

    First waits up to ``flush_wait`` seconds while a live rclone mount still has cached
    writes to upload; a cache that still holds some after the unmount is moved to
    ``$gs_unsaved_dir`` (``<session root>/unsaved/<session>-<time>``), never deleted.
    Sets ``gs_mounts_left`` (empty when all is unmounted), ``gs_unsaved_dir`` (empty when
    everything was uploaded) and ``gs_keep_session`` (non-empty when unsaved writes could
    not be moved out of ``$S``); prints ``@@unmounted`` or ``@@mounts-busy <paths>``, and
    ``@@unsaved <dir>`` + ``@@unsaved-file <remote path>`` lines. The caller must not
    ``rm -rf`` the session directory unless both ``gs_mounts_left`` and ``gs_keep_session``
    are empty."""
    sdir, ddir = _preamble(session_dir, data_dir)
    return (
        _MOUNT_FUNCS
        + f"S={q(sdir)}\nD={q(ddir)}\nC={q(sdir + '/' + MOUNTS_DIR)}\n"
        + f"gs_unmount_all {max(0, int(flush_wait * 2))}\n"
        + 'if [ -z "$gs_mounts_left" ]; then echo "@@unmounted"; else echo "@@mounts-busy$gs_mounts_left"; fi\n'
        + UNSAVED_REPORT
    )


def wrap(fragment: str) -> str:
    """A fragment as a whole script for ``sh -s`` (tests; the backend embeds fragments)."""
    return "{\n" + fragment.rstrip("\n") + "\n} </dev/null\n"
