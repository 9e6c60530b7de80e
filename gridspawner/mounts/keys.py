"""Hub-managed per-user SSH key pairs for SSH storage (``auth: key``).

The hub generates an Ed25519 key pair per user under ``c.GridSpawner.storage['key_dir']``
(directory 0700, private key 0600, owned by the hub's account) and shows the public key in
the form, so the user can add it to ``~/.ssh/authorized_keys`` on the storage server. The
private key leaves the hub only inside a launch script on stdin, into a 0600 file in the
session's 0700 directory (see `hostcmd`), or in a per-server Kubernetes Secret.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from ..vocabulary import user_dir_name


class KeyStore:
    """Per-user key pairs in ``directory``. Methods are blocking but fast (small files,
    Ed25519); the ``a*`` variants run them in a thread."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def _paths(self, username: str) -> tuple[Path, Path]:
        d = self.directory / user_dir_name(username)
        return d / "id_ed25519", d / "id_ed25519.pub"

    def _ensure_dir(self, path: Path) -> None:
        for d in (self.directory, path):
            d.mkdir(mode=0o700, exist_ok=True)
            st = d.lstat()
            if not d.is_dir() or d.is_symlink() or st.st_uid != os.getuid():
                raise PermissionError(f"{d} is not a directory owned by the hub's account")
            if st.st_mode & 0o077:
                os.chmod(d, 0o700)

    def ensure(self, username: str) -> str:
        """The user's public key (OpenSSH one-line form), generating the pair if needed."""
        import asyncssh

        priv, pub = self._paths(username)
        self._ensure_dir(priv.parent)
        if priv.exists() and pub.exists():
            return pub.read_text().strip()
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"gridspawner:{username}")
        data = key.export_private_key("openssh")
        tmp = priv.with_suffix(".new")
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, priv)
        pub.write_text(key.export_public_key("openssh").decode().strip() + "\n")
        return pub.read_text().strip()

    def public_key(self, username: str) -> str | None:
        _, pub = self._paths(username)
        try:
            return pub.read_text().strip()
        except FileNotFoundError:
            return None

    def private_key_text(self, username: str) -> str | None:
        """The private key (OpenSSH PEM text) — a SECRET: never log it."""
        priv, _ = self._paths(username)
        try:
            st = priv.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            raise PermissionError(f"{priv} must be a regular file owned by the hub's account")
        if st.st_mode & 0o077:
            # our own file, opened up by someone else (Kubernetes' fsGroup does this to
            # volumes on pod restarts): close it again rather than lock the user out
            os.chmod(priv, 0o600)
        return priv.read_text()

    def private_key(self, username: str):
        """The private key as an asyncssh key object (for `sshcheck`), or None."""
        import asyncssh

        text = self.private_key_text(username)
        return asyncssh.import_private_key(text) if text else None

    def remove(self, username: str) -> None:
        priv, pub = self._paths(username)
        for p in (priv, pub):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    async def aensure(self, username: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self.ensure, username)
