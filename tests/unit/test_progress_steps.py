"""The spawn page's progress: each backend message becomes a step of the start, with its
share of the bar, in the user's words (no process ids, the backend's display name for the
hub's own machine)."""

from __future__ import annotations

from types import SimpleNamespace

from gridspawner.progress_steps import STEPS, StepTracker

# what the local backend and the spawn's preparation say for a start with two data mounts
# (messages as tests/integration/test_local_backend.py sees them)
HOST_MESSAGES = [
    "Checking 2 data mounts",
    "probing GPUs on localhost",
    "placing: localhost, GPUs 0,3 — 2× NVIDIA A100-SXM4-80GB 80 GB",
    "mounting data: s3 campus:lab-data/ada/run1 → data/run1 (read-only)",
    "copying data: ssh store:/srv/ada → data/home",
    "starting server",
    "server process 28869 started",
    "data ready in data",
    "server is listening",
]


def local_tracker(mounts=2) -> StepTracker:
    t = StepTracker()
    request = SimpleNamespace(backend_kind="local", mounts=[object()] * mounts)
    t.describe(request, "This machine", SimpleNamespace(settings=SimpleNamespace(host_name="localhost")))
    return t


def test_a_host_start_in_steps_and_users_words():
    t = local_tracker()
    events = [t.event(m) for m in HOST_MESSAGES]
    messages = [e["message"] for e in events]
    assert messages == [
        "Checking your choices: Checking access to 2 data mounts",
        "Finding GPUs: Looking for free GPUs on This machine",
        "Finding GPUs: Your server goes to This machine, with 2 × NVIDIA A100-SXM4-80GB 80 GB",
        "Preparing your data: Mounting s3 campus:lab-data/ada/run1 → data/run1 (read-only)",
        "Preparing your data: Copying ssh store:/srv/ada → data/home",
        "Starting your server: Starting the server",
        "Starting your server: The server has started",
        "Starting your server: Your data is in data",
        "Waiting for Jupyter: The server is up; connecting",
    ]
    assert not any("28869" in m or "localhost" in m for m in messages)
    bar = [e["progress"] for e in events]
    assert bar == sorted(bar) and bar[-1] < 100
    # each step within its share; the two mounts split the data step
    assert 0 <= bar[0] < 10 and 10 <= bar[1] < 35 and 10 <= bar[2] < 35
    assert bar[3] == 47 and bar[4] == 60  # 35 + 25 × ½, then the whole share
    assert 60 <= bar[5] <= 85 and 85 <= bar[8] <= 99


def test_a_kubernetes_start_names_the_node_and_the_image_download():
    t = StepTracker()
    t.describe(SimpleNamespace(backend_kind="kubernetes", mounts=[]), "GPU cluster", None)
    messages = [t.event(m)["message"] for m in [
        "Requesting a server from the cluster",
        "Waiting for a node with 1 GPU with ≥ 40 GB",
        "Assigned to a node: Successfully assigned default/jupyter-ada to a100-2",
        'Pulling the image: Pulling image "quay.io/jupyter/pytorch-notebook:cuda12"',
        'Image ready: Successfully pulled image "quay.io/jupyter/pytorch-notebook:cuda12" in 41.2s '
        "(41.2s including waiting). Image size: 6442450944 bytes.",
        "Container created",
        "Server starting",
    ]]
    assert messages == [
        "Finding GPUs: Asking GPU cluster for a server",
        "Finding GPUs: Waiting for a node with 1 GPU with ≥ 40 GB",
        "Finding GPUs: Your server goes to node a100-2",
        "Starting your server: Downloading the image quay.io/jupyter/pytorch-notebook:cuda12",
        "Starting your server: Image downloaded (6.4 GB, in 41.2s)",
        "Starting your server: Container created",
        "Waiting for Jupyter: The server is starting",
    ]


def test_unknown_messages_stay_in_the_step_without_process_ids():
    t = local_tracker(0)
    t.event("probing GPUs on gpu7")
    e = t.event("stopping something odd (process 4242)")
    assert e["message"] == "Finding GPUs: stopping something odd"
    assert t.event("probing GPUs on gpu7")["message"] == "Finding GPUs: Looking for free GPUs on gpu7"


def test_the_bar_never_goes_back_and_never_overruns_a_step():
    t = local_tracker(0)
    t.event("starting server")
    before = t.event("server process 1 started")["progress"]
    after = t.event("probing GPUs on localhost")["progress"]  # a late message of an earlier step
    assert after >= before
    for _ in range(50):
        assert t.event("something else")["progress"] < STEPS[3].end
