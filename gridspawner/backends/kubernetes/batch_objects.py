"""PURE builders and readers of a notebook run's pod (`Backend.start_batch` on Kubernetes).

A run is a bare pod (not a Job: see docs/admin/kubernetes.md, "Notebook runs") built by
`objects.build_pod` — the same image, GPU scheduling, security contexts, resources, home
volume and data mounts as a server — and then turned into a batch pod here:

- the label ``gridspawner.io/run: <run id>`` (the hub's reconciler and ended-server removal
  leave it alone; its Secrets get ``component: notebook-run-secret``, out of the hub's
  Secret sweep); the server's other labels stay, so the same NetworkPolicies apply; no
  port, no probe;
- ``restartPolicy: Never``, and with a maximum run time an ``activeDeadlineSeconds``, so the
  kubelet ends the pod (reason `DEADLINE_REASON`) even while the runs service is down:
  `deadline_at_create`, tightened once the container started (`deadline_once_started`);
- the container runs `RUN_SCRIPT` with ``/bin/sh -c`` (the image's
  ENTRYPOINT is not used), every element of ``job.argv`` a separate argument ("$@");
- the job's files come in one Secret (with the secret environment values, as a server's
  token Secret), mounted read-only at `FILES_DIR` and copied into the work directory, an
  emptyDir at `WORK_DIR`. A Secret holds at most 1 MiB (`MAX_FILES_BYTES`): bigger files
  are refused before anything is created;
- after ``argv`` ends the script prints each output file base64-encoded between marker lines
  that carry a per-run random nonce, then the exit code; `parse_log` reads them back from the
  pod log (`read_namespaced_pod_log`), so nothing but the API server is needed to bring
  outputs home. The kubelet keeps only the current log file (10 MiB by default,
  ``containerLogMaxSize``): larger outputs come back missing, and the log tail says so.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Mapping

from ..base import BATCH_LOG_TAIL, BatchJob
from .names import CONTAINER, RUN_LABEL, RUN_SECRET_COMPONENT, BuildError, api_time, label_value

#: where the job's files are mounted (read-only) and where it runs (an emptyDir)
FILES_DIR = "/gridspawner/files"
WORK_DIR = "/gridspawner/work"
#: the API server refuses a Secret over 1 MiB (its data, decoded)
MAX_FILES_BYTES = 1024 * 1024
_FILE_KEY = "file.{}"
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}")
#: the pod's ``status.reason`` when the kubelet ended it at its activeDeadlineSeconds
DEADLINE_REASON = "DeadlineExceeded"

#: the container's program: copy the files in, run "$@", print outputs and exit code
RUN_SCRIPT = r"""set -u
marker="@@gridspawner-$1"; shift
for f in "$GRIDSPAWNER_RUN_FILES"/*; do
  [ -f "$f" ] || continue
  cat -- "$f" > "./${f##*/}" || { echo "gridspawner: cannot copy ${f##*/} into the work directory" >&2; exit 125; }
done
"$@"
rc=$?
set -f
IFS=/
for o in $GRIDSPAWNER_RUN_OUTPUTS; do
  [ -f "./$o" ] || continue
  printf '\n%s begin %s\n' "$marker" "$o"
  base64 < "./$o"
  printf '%s end %s\n' "$marker" "$o"
done
printf '\n%s exit %s\n' "$marker" "$rc"
exit $rc
"""


def check_names(job: BatchJob) -> None:
    """Files and outputs are plain file names (no '/', no leading '.' or '-'): BuildError."""
    for name in (*job.files, *job.outputs):
        if not _NAME_RE.fullmatch(name) or name in (".", ".."):
            raise BuildError(f"the run's file name {name!r} is not a plain file name")


def files_size(job: BatchJob) -> int:
    return sum(len(v) for v in job.files.values())


def deadline_at_create(max_runtime: float | None, start_timeout: float, margin: float) -> int | None:
    """The run pod's ``activeDeadlineSeconds`` at creation (None: no maximum run time). The
    kubelet counts it from the pod's ``status.startTime`` — before the image pull — while the
    executor counts the run time from the container's start, which the backend waits for at
    most ``start_timeout``: so this bound holds whatever the start takes."""
    if not max_runtime:
        return None
    return max(1, math.ceil(max_runtime + start_timeout + margin))


def deadline_once_started(max_runtime: float, margin: float, start_time: float, now: float) -> int:
    """The deadline once the container started at ``now`` (pod ``startTime``: ``start_time``):
    what the start took + the maximum run time + ``margin`` (the executor polls and stops the
    run first, then collects its log; the deadline ends it while the service is down)."""
    return max(1, math.ceil(max(0.0, now - start_time) + max_runtime + margin))


def start_time(pod: Mapping) -> float | None:
    """The pod's ``status.startTime`` (epoch seconds), None when it has none."""
    return api_time((pod.get("status") or {}).get("startTime"))


def deadline_exceeded(pod: Mapping | None) -> bool:
    """The kubelet ended the pod at its activeDeadlineSeconds."""
    return bool(pod) and (pod.get("status") or {}).get("reason") == DEADLINE_REASON


def to_batch_pod(pod: dict, job: BatchJob, *, nonce: str, secret: str, deadline: int | None = None) -> dict:
    """Turn a `build_pod` server pod into the run's pod (in place; returned). ``secret``: the
    run's Secret (the files, and the secret env values the pod already refers to);
    ``deadline``: its ``activeDeadlineSeconds`` (`deadline_at_create`)."""
    check_names(job)
    meta, spec = pod["metadata"], pod["spec"]
    # the server's labels stay (``component: singleuser-server``: the chart's and z2jh's
    # single-user NetworkPolicies hold a run's pod as they hold a server's)
    meta["labels"][RUN_LABEL] = label_value(job.run_id)
    container = next(c for c in spec["containers"] if c["name"] == CONTAINER)
    for key in ("ports", "readinessProbe", "args"):
        container.pop(key, None)
    container["command"] = ["/bin/sh", "-c", RUN_SCRIPT, "gridspawner-run", nonce, *job.argv]
    container["workingDir"] = WORK_DIR
    env = [e for e in container.get("env", []) if e["name"] not in ("JUPYTERHUB_SERVICE_URL", *job.env)]
    env += [{"name": k, "value": str(v)} for k, v in sorted(job.env.items())]
    env += [
        {"name": "GRIDSPAWNER_RUN_FILES", "value": FILES_DIR},
        {"name": "GRIDSPAWNER_RUN_OUTPUTS", "value": "/".join(job.outputs)},
    ]
    container["env"] = env
    container["volumeMounts"] = [
        *container.get("volumeMounts", []),
        {"name": "run-files", "mountPath": FILES_DIR, "readOnly": True},
        {"name": "run-work", "mountPath": WORK_DIR},
    ]
    # only the file keys, never the secret env values the same Secret holds
    items = [{"key": _FILE_KEY.format(i), "path": name} for i, name in enumerate(sorted(job.files))]
    files_volume = {"secret": {"secretName": secret, "defaultMode": 0o440, "items": items}} if items else {"emptyDir": {}}
    spec["volumes"] = [*spec.get("volumes", []), {"name": "run-files", **files_volume},
                       {"name": "run-work", "emptyDir": {}}]
    spec["restartPolicy"] = "Never"
    if deadline is not None:
        spec["activeDeadlineSeconds"] = int(deadline)
    return pod


def add_files(secret: dict, job: BatchJob) -> dict:
    """Put the job's files into the run's Secret (built by `build_secret`; in place) and
    label it as a run's. BuildError when they exceed what a Secret holds."""
    size = files_size(job) + sum(len(base64.b64decode(v)) for v in secret.get("data", {}).values())
    if size > MAX_FILES_BYTES:
        raise BuildError(f"the run's files take {size / 1048576:.1f} MiB; a Kubernetes Secret holds at most 1 MiB "
                         "(a smaller notebook: clear its outputs before submitting)")
    data = secret.setdefault("data", {})
    for i, name in enumerate(sorted(job.files)):
        data[_FILE_KEY.format(i)] = base64.b64encode(bytes(job.files[name])).decode()
    label_run(secret, job.run_id)
    return secret


def label_run(secret: dict, run_id: str) -> dict:
    """A Secret of a run: out of the hub's Secret sweep (another ``component``)."""
    labels = secret["metadata"].setdefault("labels", {})
    labels.pop("hub.jupyter.org/network-access-hub", None)
    labels["component"] = RUN_SECRET_COMPONENT
    labels[RUN_LABEL] = label_value(run_id)
    return secret


def parse_log(log: str, nonce: str, outputs: tuple[str, ...] = ()) -> tuple[dict[str, bytes], str, int | None]:
    """(output files, log tail, exit code from the trailer or None) of a run's pod log. The
    tail is the job's own output (the trailer removed), at most `BATCH_LOG_TAIL` bytes; an
    output whose block is cut or undecodable is missing, with a line in the tail saying so."""
    marker = f"@@gridspawner-{nonce} "
    lines = log.split("\n")
    files: dict[str, bytes] = {}
    code: int | None = None
    first = None
    i = 0
    problems = []
    while i < len(lines):
        line = lines[i]
        if not line.startswith(marker):
            i += 1
            continue
        if first is None:
            first = i
        word, _, arg = line[len(marker):].partition(" ")
        if word == "exit":
            try:
                code = int(arg.strip())
            except ValueError:
                pass
            i += 1
        elif word == "begin":
            end = f"{marker}end {arg}"
            j = i + 1
            while j < len(lines) and lines[j] != end:
                j += 1
            if j == len(lines):
                problems.append(f"gridspawner: output {arg} was cut off in the pod log (too large?)")
            elif arg in outputs:
                try:
                    files[arg] = base64.b64decode("".join(lines[i + 1:j]), validate=True)
                except (binascii.Error, ValueError):
                    problems.append(f"gridspawner: output {arg} could not be decoded from the pod log")
            i = j + 1
        else:
            i += 1
    body = "\n".join(lines[:first] if first is not None else lines)
    if first is not None and body.endswith("\n"):
        body = body[:-1]  # the newline the trailer put before its first marker
    tail = body.encode()[-BATCH_LOG_TAIL:].decode(errors="replace")
    if problems:
        tail = (tail + "\n" + "\n".join(problems)).encode()[-BATCH_LOG_TAIL:].decode(errors="replace")
    return files, tail, code


def job_env_problem(env: Mapping[str, str]) -> str | None:
    """A job's env names must be valid environment variable names."""
    for name in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return f"the run's environment variable name {name!r} is not valid"
    return None
