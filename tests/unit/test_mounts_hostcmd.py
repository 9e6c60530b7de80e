"""Exact output of the host mount fragments (pure builders)."""

from __future__ import annotations

import json
import time

import pytest

from gridspawner.mounts import hostcmd as h

S = "/tmp/s/alice-1"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"

GOLDEN_RCLONE_S3_RO = '''S=/tmp/s/alice-1
D=/tmp/s/alice-1/data
C=/tmp/s/alice-1/.mounts
mkdir -p -m 700 "$C" "$D" && chmod 700 "$C" || { echo "@@mount-failed -1"; exit 14; }
gs_mount_fail() {
  echo "@@mount-failed $1"
  [ -f "$C/$1.log" ] && tail -n 20 "$C/$1.log" >&2
  gs_unmount_all
  exit 14
}
# mount 0: mount -> d
mkdir -p -m 700 /tmp/s/alice-1/data/d || gs_mount_fail 0
(umask 077; cat >/tmp/s/alice-1/.mounts/0.conf <<'GRIDSPAWNER_EOF'
[m0]
type = s3
provider = Other
env_auth = false
access_key_id = AK
secret_access_key = SK
endpoint = http://127.0.0.1:9000
region = us-east-1
force_path_style = true
no_check_bucket = true
GRIDSPAWNER_EOF
)
(gs_clean_env; rclone mount m0:lab-data/alice /tmp/s/alice-1/data/d --config /tmp/s/alice-1/.mounts/0.conf --cache-dir /tmp/s/alice-1/.mounts/0.cache --log-file /tmp/s/alice-1/.mounts/0.log --dir-perms 0700 --file-perms 0600 --vfs-cache-mode off --daemon --daemon-wait 30s --read-only) >>/tmp/s/alice-1/.mounts/0.log 2>&1 || gs_mount_fail 0
gs_wait_mounted /tmp/s/alice-1/data/d 300 || gs_mount_fail 0
echo "@@mounted 0"
'''


def s3(index=0, target="d", mode="mount", read_only=False, prefix="alice/", token=None):
    return h.ResolvedMount(index, target, mode, read_only, h.S3Source("http://127.0.0.1:9000", "lab-data", prefix), h.S3Secret("AK", "SK", token))


def ssh(index=0, target="n", mode="mount", read_only=False, password=None, key=None, port=22):
    return h.ResolvedMount(index, target, mode, read_only, h.SSHSource("nas.example.edu", "alice", "/export/alice", port, "nas.example.edu ssh-ed25519 AAAA"),
                       h.SSHSecret(password=password, private_key=key))


def lines(frag: str) -> list[str]:
    return [ln for ln in frag[len(h._MOUNT_FUNCS):].splitlines()]


def test_rclone_s3_read_only_exact():
    frag = h.mount_fragment(S, [s3(read_only=True)])
    assert frag.startswith(h._MOUNT_FUNCS)
    assert frag[len(h._MOUNT_FUNCS):] == GOLDEN_RCLONE_S3_RO


def test_rclone_s3_writable_with_session_token():
    out = lines(h.mount_fragment(S, [s3(token="TOKEN")]))
    cmd = next(ln for ln in out if ln.startswith("(gs_clean_env; rclone mount"))
    assert "--vfs-cache-mode writes" in cmd and "--read-only" not in cmd
    # renewable: rclone's AWS SDK reads the STS credentials from a file the hub can replace
    assert "session_token = TOKEN" not in out and "access_key_id = AK" not in out
    assert "env_auth = true" in out and f"shared_credentials_file = {S}/.mounts/0.aws" in out
    aws = out.index(f"(umask 077; cat >{S}/.mounts/0.aws <<'GRIDSPAWNER_EOF'")
    assert out[aws + 1:aws + 3] == ["[default]", f"credential_process = cat {S}/.mounts/0.json"]
    cred = out.index(f"(umask 077; cat >{S}/.mounts/0.json <<'GRIDSPAWNER_EOF'")
    assert json.loads(out[cred + 1]) == {"Version": 1, "AccessKeyId": "AK", "SecretAccessKey": "SK", "SessionToken": "TOKEN"}


def test_rclone_s3_copy_with_session_token_keeps_them_in_its_config():
    out = lines(h.mount_fragment(S, [s3(token="TOKEN", mode="copy")]))
    assert "session_token = TOKEN" in out and "env_auth = false" in out
    assert not any(".json" in ln for ln in out)


def test_credential_file_expires_shortly_after_the_planned_renewal_never_after_expiry():
    renew = 1_900_000_000.0
    sec = h.S3Secret("AK", "SK", "T", expires_at=renew + 3600, renew_at=renew)
    doc = json.loads(h.credential_process_json(sec))
    assert doc["Expiration"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(renew + h.REREAD_AFTER_RENEWAL))
    sec = h.S3Secret("AK", "SK", "T", expires_at=renew + 3, renew_at=renew)
    assert json.loads(h.credential_process_json(sec))["Expiration"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(renew + 3))


def test_renew_fragment_replaces_only_existing_credential_files_atomically():
    frag = h.renew_fragment(S, {2: h.S3Secret("AK2", "SK2", "T2")})
    assert frag.startswith(f"if [ -f {S}/.mounts/2.json ]; then\n(umask 077; cat >{S}/.mounts/.2.json.new <<")
    assert f"&& mv -f {S}/.mounts/.2.json.new {S}/.mounts/2.json" in frag
    assert '"@@renewed 2"' in frag and '"@@not-renewed 2"' in frag
    with pytest.raises(ValueError):
        h.renew_fragment(S, {0: h.S3Secret("AK", "S'K", "T")})


def test_s3fs_exact():
    out = lines(h.mount_fragment(S, [s3(index=1, target="b", prefix="")], tool="s3fs"))
    assert "(umask 077; cat >/tmp/s/alice-1/.mounts/1.passwd <<'GRIDSPAWNER_EOF'" in out
    assert out[out.index("(umask 077; cat >/tmp/s/alice-1/.mounts/1.passwd <<'GRIDSPAWNER_EOF'") + 1] == "AK:SK"
    assert (
        "(gs_clean_env; s3fs lab-data /tmp/s/alice-1/data/b -o passwd_file=/tmp/s/alice-1/.mounts/1.passwd"
        " -o url=http://127.0.0.1:9000 -o endpoint=us-east-1 -o logfile=/tmp/s/alice-1/.mounts/1.log -o umask=077"
        " -o use_path_request_style) >>/tmp/s/alice-1/.mounts/1.log 2>&1 || gs_mount_fail 1"
    ) in out


def test_s3fs_with_prefix_and_sts_refused():
    out = "\n".join(lines(h.mount_fragment(S, [s3(read_only=True)], tool="s3fs")))
    assert "s3fs lab-data:/alice " in out and "-o ro" in out
    with pytest.raises(ValueError, match="session"):
        h.mount_fragment(S, [s3(token="T")], tool="s3fs")


def test_sshfs_password_exact():
    out = lines(h.mount_fragment(S, [ssh(index=2, read_only=True, password="pw", port=2222)], tool="sshfs"))
    assert (
        "(gs_clean_env; sshfs -F /dev/null -p 2222 -o UserKnownHostsFile=/tmp/s/alice-1/.mounts/2.known_hosts"
        " -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o ServerAliveInterval=15 -o reconnect"
        " -o password_stdin -o PubkeyAuthentication=no -o PreferredAuthentications=password -o ro"
        " alice@nas.example.edu:/export/alice /tmp/s/alice-1/data/n </tmp/s/alice-1/.mounts/2.pass)"
        " >>/tmp/s/alice-1/.mounts/2.log 2>&1 || gs_mount_fail 2"
    ) in out
    assert "pw" in out  # inside the here-doc only
    assert not any("pw" in ln for ln in out if "sshfs" in ln)


def test_sshfs_key_exact():
    out = lines(h.mount_fragment(S, [ssh(index=3, target="k", key=KEY)], tool="sshfs"))
    assert (
        "(gs_clean_env; sshfs -F /dev/null -p 22 -o UserKnownHostsFile=/tmp/s/alice-1/.mounts/3.known_hosts"
        " -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o ServerAliveInterval=15 -o reconnect"
        " -o IdentityFile=/tmp/s/alice-1/.mounts/3.key -o IdentitiesOnly=yes -o BatchMode=yes -o PasswordAuthentication=no"
        " alice@nas.example.edu:/export/alice /tmp/s/alice-1/data/k) >>/tmp/s/alice-1/.mounts/3.log 2>&1 || gs_mount_fail 3"
    ) in out
    i = out.index("(umask 077; cat >/tmp/s/alice-1/.mounts/3.key <<'GRIDSPAWNER_EOF'")
    assert out[i + 1 : i + 5] == ["-----BEGIN OPENSSH PRIVATE KEY-----", "abc", "-----END OPENSSH PRIVATE KEY-----", "GRIDSPAWNER_EOF"]


def test_rclone_sftp_password_copy_exact():
    out = lines(h.mount_fragment(S, [ssh(index=4, target="c", mode="copy", password="pw")]))
    assert (
        "gs_p=$(rclone obscure - </tmp/s/alice-1/.mounts/4.pass) && printf 'pass = %s\\n' \"$gs_p\""
        " >>/tmp/s/alice-1/.mounts/4.conf && rm -f /tmp/s/alice-1/.mounts/4.pass; gs_p="
    ) in out
    assert (
        "(gs_clean_env; rclone copy m4:/export/alice /tmp/s/alice-1/data/c --config /tmp/s/alice-1/.mounts/4.conf"
        " --log-file /tmp/s/alice-1/.mounts/4.log --stats 0 --retries 2 --low-level-retries 3) || gs_mount_fail 4"
    ) in out
    assert out[out.index("(gs_clean_env; rclone copy m4:/export/alice /tmp/s/alice-1/data/c --config /tmp/s/alice-1/.mounts/4.conf"
                         " --log-file /tmp/s/alice-1/.mounts/4.log --stats 0 --retries 2 --low-level-retries 3) || gs_mount_fail 4") + 1] == "rm -f /tmp/s/alice-1/.mounts/4.*"


def test_unmount_exact():
    assert h.unmount_fragment(S) == h._MOUNT_FUNCS + (
        "S=/tmp/s/alice-1\nD=/tmp/s/alice-1/data\nC=/tmp/s/alice-1/.mounts\n"
        "gs_unmount_all 0\n"
        'if [ -z "$gs_mounts_left" ]; then echo "@@unmounted"; else echo "@@mounts-busy$gs_mounts_left"; fi\n'
        + h.UNSAVED_REPORT
    )
    assert "D=/srv/d" in h.unmount_fragment(S, data_dir="/srv/d")
    assert "\ngs_unmount_all 120\n" in h.unmount_fragment(S, flush_wait=60)  # in half seconds


def test_heredoc_delimiter_never_collides():
    # a value line equal to the delimiter cannot end the here-doc early (and secrets with
    # newlines are refused before that anyway)
    out = h._heredoc("/f", "a\nGRIDSPAWNER_EOF\nb")
    assert out.splitlines()[0].endswith("<<'GRIDSPAWNER_EOF_'") and out.splitlines()[-2] == "GRIDSPAWNER_EOF_"


@pytest.mark.parametrize(
    "session,mount",
    [
        ("/tmp/s $(x)", s3()),
        ("relative/dir", s3()),
        ("/tmp/a,b", s3()),
        ("/tmp/../etc", s3()),
        (S, s3(target="../x")),
        (S, s3(target="a b")),
        (S, s3(prefix="../bob/")),
        (S, s3(prefix="a b/")),
        (S, h.ResolvedMount(0, "d", "mount", False, h.S3Source("http://x", "Bad_Bucket"), h.S3Secret("a", "b"))),
        (S, h.ResolvedMount(0, "d", "mount", False, h.S3Source("http://x;id", "lab-data"), h.S3Secret("a", "b"))),
        (S, h.ResolvedMount(0, "d", "mount", False, h.S3Source("http://x", "lab-data"), h.S3Secret("a\nb", "b"))),
        (S, ssh(password="two\nlines")),
        (S, ssh()),  # neither password nor key
        (S, ssh(password="x", key=KEY)),
        (S, h.ResolvedMount(0, "d", "mount", False, h.SSHSource("h", "alice", "/a'b"), h.SSHSecret(password="x"))),
        (S, h.ResolvedMount(0, "d", "mount", False, h.SSHSource("h", "Alice;id", "/a"), h.SSHSecret(password="x"))),
        (S, h.ResolvedMount(0, "d", "sync", False, h.S3Source("http://x", "lab-data"), h.S3Secret("a", "b"))),
    ],
)
def test_unsafe_values_refused(session, mount):
    with pytest.raises(ValueError):
        h.mount_fragment(session, [mount])


def test_secret_repr_hidden():
    assert "SK" not in repr(s3()) and "pw" not in repr(ssh(password="pw"))


@pytest.mark.parametrize("tool,s3_cmd,ssh_cmd", [
    ("rclone", "rclone mount", "rclone mount"),
    ("sshfs", "rclone mount", "sshfs "),
    ("s3fs", "s3fs ", "rclone mount"),
])
def test_the_tool_applies_to_its_own_source_type_the_other_uses_rclone(tool, s3_cmd, ssh_cmd):
    out = lines(h.mount_fragment(S, [s3(index=0, target="a"), ssh(index=1, target="b", key=KEY)], tool=tool))
    cmds = [ln for ln in out if ln.startswith("(gs_clean_env; ")]
    assert cmds[0].startswith(f"(gs_clean_env; {s3_cmd}") and " /tmp/s/alice-1/data/a" in cmds[0]
    assert cmds[1].startswith(f"(gs_clean_env; {ssh_cmd}") and " /tmp/s/alice-1/data/b" in cmds[1]
