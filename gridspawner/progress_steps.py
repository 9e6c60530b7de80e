"""The spawn page's progress: the steps of a start, each with its share of the bar, in words
for users. Pure: no I/O.

Backends and the spawn's preparation report what they do as plain messages
(``LaunchContext.progress``; the hub log keeps them as they are). This module is the one
place that knows which step each message belongs to and how a user should read it: the
table `RULES` maps a message (a regular expression on its start) to a step and to the
user's words — process ids, ports and internal names left out. A message no rule knows
stays in the current step, shown as it is (without process ids).

The steps, in order, and their share of the bar (percent):

- ``check``   0–10   checking the choices and the data mounts' access,
- ``place``  10–35   finding a host (or node) with the GPUs, and which ones,
- ``data``   35–60   mounting or copying each data mount (the share split per mount),
- ``start``  60–85   starting the server (on Kubernetes: pulling the image),
- ``wait``   85–99   waiting until Jupyter answers.

The bar only moves forward; within a step each further message moves it part of the way
that is left, so a step never overruns its share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Pattern


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    start: int
    end: int


STEPS: tuple[Step, ...] = (
    Step("check", "Checking your choices", 0, 10),
    Step("place", "Finding GPUs", 10, 35),
    Step("data", "Preparing your data", 35, 60),
    Step("start", "Starting your server", 60, 85),
    Step("wait", "Waiting for Jupyter", 85, 99),
)
_KEYS = [s.key for s in STEPS]

Words = Callable[[re.Match, "StepTracker"], str]


def _gpus_words(described: str) -> str:
    # gpu.describe: "GPUs 0,1 — 2× NVIDIA A100 80 GB" → "2 × NVIDIA A100 80 GB" (no indices)
    what = described.split(" — ", 1)[1] if " — " in described else described
    return re.sub(r"(\d+)× ", r"\1 × ", what)


def _node_of(message: str) -> str:
    # the Scheduled event: "Successfully assigned NAMESPACE/POD to NODE"
    m = re.search(r" to (\S+)$", message)
    return m.group(1) if m else ""


#: (pattern on the message's start, step, the user's words); the first match wins
RULES: tuple[tuple[Pattern[str], str, Words], ...] = tuple(
    (re.compile(p), step, words) for p, step, words in (
        (r"Checking (\d+) data mounts?", "check", lambda m, t: f"Checking access to {m.group(1)} data "
                                                               f"mount{'s' if m.group(1) != '1' else ''}"),
        (r"the server will be stopped at (.+?) UTC, before", "check",
         lambda m, t: f"Your server will be stopped at {m.group(1)} UTC, before the temporary S3 credentials "
                      "of its data mounts expire"),
        (r"probing (\d+) hosts?", "place", lambda m, t: f"Looking for free GPUs on {t.where_words()}"),
        (r"probing GPUs on (.+)", "place", lambda m, t: f"Looking for free GPUs on {t.place(m.group(1))}"),
        (r"placing: ([^,]+), no GPU", "place", lambda m, t: f"Your server goes to {t.place(m.group(1))}"),
        (r"placing: ([^,]+), (.+)", "place",
         lambda m, t: f"Your server goes to {t.place(m.group(1))}, with {_gpus_words(m.group(2))}"),
        (r"(.+): not enforced on (.+?) \(", "place",
         lambda m, t: f"{m.group(1)[:1].upper()}{m.group(1)[1:]}: not enforced on {t.place(m.group(2))} "
                      "(the server may use the whole machine)"),
        (r"Requesting a server from the cluster", "place", lambda m, t: f"Asking {t.where_words()} for a server"),
        (r"Waiting for a node with (.+)", "place", lambda m, t: f"Waiting for a node with {m.group(1)}"),
        (r"Assigned to a node(?:: (.*))?", "place",
         lambda m, t: f"Your server goes to node {_node_of(m.group(1) or '')}".rstrip() if _node_of(m.group(1) or "")
         else "Your server has a node"),
        (r"The cluster is adding a node for you", "place", lambda m, t: "The cluster is adding a node for you"),
        (r"Preparing (\d+) data mounts?", "data", lambda m, t: f"Preparing {m.group(1)} data "
                                                               f"mount{'s' if m.group(1) != '1' else ''}"),
        (r"copying data: (.+)", "data", lambda m, t: f"Copying {m.group(1)}"),
        (r"mounting data: (.+)", "data", lambda m, t: f"Mounting {m.group(1)}"),
        (r"Storage attached", "data", lambda m, t: "Storage attached"),
        (r"Created (your|a new) home volume", "data", lambda m, t: m.group(0)),
        (r"stopping a leftover server of this session", "start",
         lambda m, t: "Stopping a leftover server of this session"),
        (r"starting server", "start", lambda m, t: "Starting the server"),
        (r"server process \d+ started", "start", lambda m, t: "The server has started"),
        (r"data ready in (\S+)", "start", lambda m, t: f"Your data is in {m.group(1)}"),
        (r"Pulling the image(?:: Pulling image \"?([^\"]+)\"?)?", "start",
         lambda m, t: f"Downloading the image {m.group(1)}" if m.group(1) else "Downloading the image"),
        (r"Image ready(?:: (.*))?", "start", lambda m, t: _pulled_words(m.group(1) or "")),
        (r"Container created", "start", lambda m, t: "Container created"),
        (r"Server starting", "wait", lambda m, t: "The server is starting"),
        (r"server is listening", "wait", lambda m, t: "The server is up; connecting"),
        (r"server is still starting", "wait", lambda m, t: "The server is still starting"),
        (r"hub API reachable on (.+?) through", "wait", lambda m, t: f"Connected to {t.place(m.group(1))}"),
    )
)


def _pulled_words(message: str) -> str:
    # kubelet's Pulled event: 'Successfully pulled image "x" in 2.1s (2.1s including waiting).
    # Image size: 123456789 bytes.' or 'Container image "x" already present on machine'
    if "already present" in message:
        return "The image is already on the node"
    size = re.search(r"Image size: (\d+) bytes", message)
    took = re.search(r" in ([\d.]+m?s)\b", message)
    parts = ["Image downloaded"]
    if size:
        parts.append(f"{int(size.group(1)) / 1e9:.1f} GB")
    if took:
        parts.append(f"in {took.group(1)}")
    return " ".join(parts[:1]) + (f" ({', '.join(parts[1:])})" if parts[1:] else "")


_PROCESS_ID = re.compile(r"\s*\(?\b(process|pid) \d+\)?", re.I)


@dataclass
class StepTracker:
    """Turns one start's messages into the spawn page's events, in order.

    ``backend_name``: the backend's display name; ``local_host``: the host name a ``local``
    backend reports for the hub's own machine (shown as the display name instead);
    ``mounts``: how many data mounts the start prepares (the data step's share is split
    among them)."""

    backend_name: str = ""
    local_host: str | None = None
    mounts: int = 0
    _step: int = 0
    _in_step: int = 0
    _data_done: int = 0
    _percent: int = 0

    def describe(self, request: Any, backend_name: str, backend: Any) -> None:
        """What this start is (known once its options are validated): the backend's display
        name, the host name a ``local`` backend reports for this machine, the mounts."""
        self.backend_name = backend_name
        if getattr(request, "backend_kind", "") == "local":
            self.local_host = getattr(getattr(backend, "settings", None), "host_name", None)
        self.mounts = len(getattr(request, "mounts", ()) or ())

    def place(self, host: str) -> str:
        if self.local_host is not None and host == self.local_host and self.backend_name:
            return self.backend_name
        return host

    def where_words(self) -> str:
        return self.backend_name or "the hosts"

    def event(self, message: str) -> dict:
        """The JupyterHub progress event for ``message``: ``progress`` (percent, never less
        than the previous event's) and ``message`` (the step's title and the user's words)."""
        step_key, words = None, None
        for pattern, key, to_words in RULES:
            m = pattern.match(message)
            if m:
                step_key, words = key, to_words(m, self)
                break
        if words is None:
            words = _PROCESS_ID.sub("", message).strip() or message
        index = self._step if step_key is None else _KEYS.index(step_key)
        if index > self._step:
            self._step, self._in_step = index, 0
        step = STEPS[self._step]
        self._in_step += 1
        if step.key == "data" and self.mounts and step_key == "data" and re.match(r"(copying|mounting) data", message):
            self._data_done += 1
            share = min(1.0, self._data_done / self.mounts)
        else:
            share = 1 - 1 / (self._in_step + 1)  # ½, ⅔, ¾ … of the step
        percent = int(step.start + (step.end - step.start) * share)
        self._percent = max(self._percent, percent)
        return {"progress": self._percent, "message": f"{step.title}: {words}"}
