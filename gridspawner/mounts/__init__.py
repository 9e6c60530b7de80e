"""Data mounts: S3 buckets/prefixes and directories on SSH storage servers, mounted (FUSE on
hosts, CSI on Kubernetes) or copied into a server's data directory.

- `config`: the admin's ``c.GridSpawner.storage`` → frozen `StorageConfig` (start-up errors
  name the key); its parts in `config_s3`, `config_ssh`, `config_access`, `config_fields`.
- `specs`: ``user_options["mounts"]`` → `MountSpec` values (no secrets) + secrets kept apart.
- `s3check`, `sshcheck`: submit-time checks that turn into field errors.
- `sts`: per-user, prefix-scoped S3 credentials from admin credentials.
- `keys`: hub-managed per-user SSH key pairs.
- `hostcmd`, `k8s`: PURE builders of host sh fragments and Kubernetes objects.
"""
