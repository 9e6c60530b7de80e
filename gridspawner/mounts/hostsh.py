"""The sh functions of the host mount fragments (`gridspawner.mounts.hostcmd`): mount state,
unmounting, waiting for rclone's uploads and keeping what it could not upload. Plain text,
no values in it: the fragments set ``$S`` (session directory), ``$D`` (data directory) and
``$C`` (``$S/.mounts``) before calling them."""

#: sh functions for mount state. ``gs_mounted DIR``: DIR is a mount point (exact match on
#: /proc/self/mountinfo's 5th field; our paths need no escaping). ``gs_mounts_under DIR``:
#: the mount points below DIR, deepest first. ``gs_unmount DIR``: unmount, lazily if busy.
MOUNT_FUNCS = r"""gs_mounted() {
  awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo 2>/dev/null
}
gs_mounts_under() {
  awk -v p="$1/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo 2>/dev/null | sort -r
}
gs_unmount() {
  gs_mounted "$1" || return 0
  fusermount3 -u "$1" 2>/dev/null || fusermount -u "$1" 2>/dev/null || umount "$1" 2>/dev/null
  gs_mounted "$1" || return 0
  fusermount3 -uz "$1" 2>/dev/null || fusermount -uz "$1" 2>/dev/null || umount -l "$1" 2>/dev/null
  ! gs_mounted "$1"
}
gs_unsaved_meta() {
  for gs_c in "$C"/*.cache/vfsMeta; do
    [ -d "$gs_c" ] && grep -rlE '"Dirty": *true' "$gs_c" 2>/dev/null
  done
}
gs_flush() {
  # up to $1 half-seconds, while a mount is still live to upload them: wait for cached writes
  gs_n=${1:-0}
  while [ -n "$(gs_unsaved_meta)" ] && [ -n "$(gs_mounts_under "$D")" ]; do
    [ "$gs_n" -gt 0 ] || return 1
    sleep 0.5 2>/dev/null || sleep 1
    gs_n=$((gs_n - 1))
  done
  return 0
}
gs_keep_unsaved() {
  # caches that still hold writes not uploaded leave $C (deleted next) for $gs_unsaved_dir
  gs_unsaved_dir=""
  gs_keep_session=""
  for gs_c in "$C"/*.cache; do
    [ -d "$gs_c/vfsMeta" ] || continue
    grep -rqE '"Dirty": *true' "$gs_c/vfsMeta" 2>/dev/null || continue
    if [ -z "$gs_unsaved_dir" ]; then
      gs_unsaved_dir="${S%/*}/unsaved/${S##*/}-$(date +%Y%m%d%H%M%S)"
      (umask 077; mkdir -p "$gs_unsaved_dir") && chmod 700 "${S%/*}/unsaved"
    fi
    mv "$gs_c" "$gs_unsaved_dir/" 2>/dev/null || { gs_unsaved_dir="$C"; gs_keep_session=1; return; }
  done
}
gs_unsaved_files() {
  # the remote paths (remote/bucket/prefix/file) of the writes kept in $gs_unsaved_dir
  for gs_c in "$gs_unsaved_dir"/*.cache/vfsMeta; do
    [ -d "$gs_c" ] && grep -rlE '"Dirty": *true' "$gs_c" 2>/dev/null | sed "s|^$gs_c/||"
  done
}
gs_unmount_all() {
  gs_flush "${1:-0}"
  gs_mounts_left=""
  for m in $(gs_mounts_under "$D"); do
    gs_unmount "$m" || gs_mounts_left="$gs_mounts_left $m"
  done
  gs_keep_unsaved
  [ -n "$gs_keep_session" ] || rm -rf "$C"
}
gs_clean_env() {
  # the host's AWS_* settings must not steer a tool (AWS_CA_BUNDLE even breaks rclone 1.60)
  unset AWS_CA_BUNDLE AWS_PROFILE AWS_DEFAULT_PROFILE AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE \
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWSACCESSKEYID AWSSECRETACCESSKEY \
    AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE RCLONE_CONFIG
}
gs_wait_mounted() {
  n=$2
  while ! gs_mounted "$1"; do
    [ "$n" -gt 0 ] || return 1
    sleep 0.1 2>/dev/null || sleep 1
    n=$((n - 1))
  done
}
"""


#: sh lines printing what `unmount_fragment` kept: ``@@unsaved <dir>`` and one
#: ``@@unsaved-file <remote path>`` per write not uploaded (at most 50)
UNSAVED_REPORT = (
    'if [ -n "$gs_unsaved_dir" ]; then\n'
    '  echo "@@unsaved $gs_unsaved_dir"\n'
    '  gs_unsaved_files | head -n 50 | sed "s/^/@@unsaved-file /"\n'
    "fi\n"
)
