# The gridspawner demo: a whole hub on this one machine. Run it with `make demo`, open
# http://127.0.0.1:8000, log in with any user name and any password, and the spawn form
# appears. Not for production: the dummy authenticator lets anybody in.
#
# All state (database, cookie secret, session directories, GPU ledger) lives in .demo/
# (git-ignored); delete that folder to start afresh.
import shutil
from pathlib import Path

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

HERE = Path(__file__).resolve().parent
STATE = HERE / ".demo"
STATE.mkdir(mode=0o700, exist_ok=True)

# ------------------------------------------------------------------ the hub
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")

# Anybody may log in with any password (JupyterHub 5+ requires saying so: allow_all).
# Log in as "admin" to see the admin page.
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"admin"}

# ------------------------------------------------------------------ gridspawner
c.JupyterHub.spawner_class = "grid"
c.Spawner.default_url = "/lab"

# GPUs: a machine with NVIDIA drivers uses the real nvidia-smi. Elsewhere (a laptop, CI, this
# demo's usual home) the fake nvidia-smi from the test suite stands in, announcing four GPUs
# of mixed VRAM (2 × 80 GB, 1 × 40 GB, 1 × 16 GB), so the form shows capacity and GPU
# placement can be tried. Servers then get fake GPU UUIDs in CUDA_VISIBLE_DEVICES.
if shutil.which("nvidia-smi"):
    NVIDIA_SMI = ["nvidia-smi"]
    LEDGER = "/tmp/gridspawner-ledger"  # the host's ledger, shared with any other hub here
else:
    # The fake reads its inventory from FAKE_NVIDIA_SMI_GPUS ("NAME,MIB;…"). Host scripts
    # run with a minimal environment, so the variable travels on the command itself.
    FAKE_GPUS = ";".join(
        [
            "NVIDIA A100-SXM4-80GB,81920",
            "NVIDIA A100-PCIE-40GB,40960",
            "Tesla T4,15360",
            "NVIDIA A100-SXM4-80GB,81920",
        ]
    )
    NVIDIA_SMI = ["env", f"FAKE_NVIDIA_SMI_GPUS={FAKE_GPUS}", str(HERE / "tests" / "fixtures" / "fake_nvidia_smi")]
    LEDGER = str(STATE / "ledger")  # fake GPUs: keep their claims out of the host's ledger

HERE_BACKEND = {
    "kind": "local",
    "display_name": "This machine",
    "description": "Runs next to the hub; fine for trying things out.",
    "ledger_dir": LEDGER,
    "nvidia_smi": NVIDIA_SMI,
    "notebook_dir": str(STATE / "home" / "{username}"),
    # Every server runs as the hub's own account here. A production hub running as root
    # would run each server as its user's own Unix account (the default, run_as: "user"),
    # but this demo's dummy authenticator lets anybody in under any name, and making a Unix
    # account for every name typed into a demo's login page (create_accounts) is not
    # something a demo should do to a machine. The hub warns about it in its log. Run as
    # root (as on these test machines), the local backend adds --allow-root itself.
    "run_as": "hub",
}
# Each server listens on a unix socket in a private directory under session_root; socket
# paths must stay short (about 100 bytes), so a checkout deep in the file system falls back
# to the backend's default (/tmp/gridspawner-UID).
if len(str(STATE / "sessions")) <= 40:
    HERE_BACKEND["session_root"] = str(STATE / "sessions")
c.GridSpawner.backends = {"here": HERE_BACKEND}

c.GridSpawner.images = {
    "lab": {
        "display_name": "JupyterLab (hub's Python)",
        "description": "The Python environment the hub itself runs in.",
        "local": {},
    },
    "minimal": {
        "display_name": "Minimal: file browser, no extra kernels",
        "description": "Same Python, opens the file browser, quiet pip and no Python bytecode files.",
        "local": {
            "env": {"PYTHONDONTWRITEBYTECODE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        },
    },
}

c.GridSpawner.gpu_memory_classes = [0, 16, 24, 40, 80]
c.GridSpawner.max_gpus = 4

c.GridSpawner.profiles = {
    "cpu": {
        "display_name": "CPU only",
        "description": "A quick JupyterLab without a GPU.",
        "values": {"backend": "here", "image": "lab", "gpus": 0},
        "changeable": ["image"],
    },
    "one-gpu": {
        "display_name": "One GPU, 8 hours",
        "description": "A GPU with at least 16 GB; choose a bigger one if you need it.",
        "values": {"backend": "here", "image": "lab", "gpus": 1, "gpu_memory": 16},
        "changeable": ["gpus", "gpu_memory", "image"],
        "max_gpus": 2,
        "max_runtime": "8h",
    },
}

c.GridSpawner.default_options = {"backend": "here", "image": "lab", "gpus": 0}

# The hub's home page shows each server's host, GPUs, environment, data and stop time (and
# warns before a maximum-run-time stop); the admin page lists every running server so.
import gridspawner.pages  # noqa: E402

gridspawner.pages.enable(c)
