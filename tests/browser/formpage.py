"""The spawn form rendered into a static page styled like JupyterHub's spawn page, for the
tests of the form's script in Chromium (tests/browser/test_form_script_browser.py): a demo catalog
and a fixed capacity snapshot, no hub. Screenshots for the docs come from a real hub
instead (tools/doc_screenshots.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gridspawner.backends.base import Capacity, HostCapacity  # noqa: E402
from gridspawner.catalog import BackendConfig, Catalog, ImageConfig, Policy, Profile  # noqa: E402
from gridspawner.form import render_form  # noqa: E402
from gridspawner.gpu import GPU  # noqa: E402


def demo_catalog() -> Catalog:
    backends = {
        "gpu-cluster": BackendConfig("gpu-cluster", "kubernetes", "GPU cluster", "Kubernetes, A100 and H100 nodes", None),
        "lab-hosts": BackendConfig("lab-hosts", "ssh", "Lab workstations", "Four RTX A6000 machines in room 2.14", None),
        "hub": BackendConfig("hub", "local", "This machine", "Small CPU jobs on the hub itself", None,
                             resource_limits="none"),
    }
    images = {
        "pytorch": ImageConfig("pytorch", "PyTorch 2.3 (CUDA 12.1)", "PyTorch, torchvision, JupyterLab 4",
                               {"kubernetes": None, "ssh": None}),
        "tensorflow": ImageConfig("tensorflow", "TensorFlow 2.16", "TensorFlow with CUDA 12",
                                  {"kubernetes": None, "ssh": None}),
        "scipy": ImageConfig("scipy", "Scientific Python", "numpy, pandas, scikit-learn, matplotlib",
                             {"kubernetes": None, "ssh": None, "local": None}),
    }
    everyone = Policy(backends=None, images=None, max_gpus=4, free_choice=True)
    profiles = {
        "course": Profile("course", "ML course (1 GPU)", "For the ML101 exercises: one GPU with PyTorch.",
                          frozenset(), {"backend": "gpu-cluster", "image": "pytorch", "gpus": 1, "gpu_memory": 16},
                          frozenset(), None, 4 * 3600),
        "explore": Profile("explore", "Data exploration", "CPU only, on this machine. Good for notebooks and plots.",
                           frozenset(), {"backend": "hub", "image": "scipy", "gpus": 0},
                           frozenset({"image"}), None, None),
    }
    return Catalog(
        backends=backends, images=images, max_gpus=4, gpu_memory_classes=(0, 16, 24, 40, 80),
        cpu_choices=(2, 4, 8, 16), memory_choices=(8, 16, 32, 64), group_policy={},
        default_policy=everyone, profiles=profiles, defaults={"backend": "gpu-cluster", "image": "pytorch"},
        gpu_memory_tolerance=0.07, max_runtime=None,
    )


def demo_storage():
    """Data mounts for the demo: one S3 endpoint (STS or own keys), one SSH server."""
    from gridspawner.mounts.config import parse_storage

    return parse_storage({
        "key_dir": "/srv/jupyterhub/ssh-keys",
        "s3": {"campus": {"display_name": "Campus S3", "url": "https://s3.example.edu", "buckets": ["lab-*"],
                          "user_prefix": "{username}/", "credentials": ["sts", "keys"],
                          "sts": {"role_arn": "arn:aws:iam::123456789012:role/jupyter-users"}}},
        "ssh": {"nas": {"display_name": "Group NAS", "address": "nas.example.edu",
                        "known_hosts": "/etc/gridspawner/storage_known_hosts",
                        "paths": ["/export/home/{username}", "/export/home/{username}/*"], "auth": ["key", "password"]}},
    })


DEMO_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOv0yW3JmZ0c2V4YW1wbGVrZXlmb3Jkb2NzMDEyMzQ1Njc4 gridspawner:alice"
#: the mounts demo: a read-only S3 mount with temporary keys, an SSH copy (with an error
#: from the submit-time check next to its path), and an empty row
DEMO_MOUNTS = [
    {"type": "s3", "endpoint": "campus", "bucket": "lab-imaging", "prefix": "alice/run1/", "target": "run1",
     "mode": "mount", "read_only": True, "credentials": "sts"},
    {"type": "ssh", "host": "nas", "path": "/export/home/alice/project", "target": "project", "mode": "copy",
     "read_only": False, "auth": "key"},
]
DEMO_MOUNT_ERRORS = {"mounts[1].path": "path not found"}


def demo_capacity() -> dict[str, Capacity]:
    now = time.time()
    a100 = tuple(GPU(i, f"a{i}", "NVIDIA A100-SXM4-80GB", 81920) for i in range(4))
    h100 = tuple(GPU(i, f"h{i}", "NVIDIA H100 80GB HBM3", 81559) for i in range(4))
    a6000 = [tuple(GPU(i, f"w{n}-{i}", "NVIDIA RTX A6000", 49140) for i in range(2)) for n in range(4)]
    return {
        # 3 of 8 free in total; at most 2 together on one node
        "gpu-cluster": Capacity("gpu-cluster", (
            HostCapacity("node-a", a100, frozenset({"a1", "a3"})),
            HostCapacity("node-h", h100, frozenset({"h2"})),
        ), updated=now),
        "lab-hosts": Capacity("lab-hosts", tuple(
            HostCapacity(f"ws{n}", g, frozenset(x.uuid for x in g[: n % 2])) for n, g in enumerate(a6000)
        ), updated=now),
        "hub": Capacity("hub", (HostCapacity("hub", ()),), updated=now),
    }


PAGE = """<!DOCTYPE html>
<html lang="en" data-bs-theme="{theme}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Server Options — JupyterHub (gridspawner preview)</title>
<link rel="stylesheet" href="{css}">
</head>
<body>
<nav class="navbar navbar-expand-sm bg-body-tertiary mb-4">
  <div class="container-fluid">
    <span id="jupyterhub-logo" class="navbar-brand"><a href="#"><img src="{logo}" alt="JupyterHub logo" class="jpy-logo" title="Home"></a></span>
    <ul class="navbar-nav me-auto mb-0">
      <li class="nav-item"><a class="nav-link" href="#">Home</a></li>
      <li class="nav-item"><a class="nav-link" href="#">Token</a></li>
    </ul>
    <ul class="nav navbar-nav me-2 align-items-center">
      <li class="nav-item"><span class="navbar-text me-2">ada</span></li>
      <li class="nav-item"><a class="btn btn-sm btn-outline-dark" href="#">Logout</a></li>
    </ul>
  </div>
</nav>
<div id="main" class="container">
  <div class="container">
    <div class="row text-center"><h1>Server Options</h1></div>
    <div class="row justify-content-center">
      <div class="col-md-8">
        <form enctype="multipart/form-data" id="spawn_form" action="#" method="post" role="form">
{form}
          <br>
          <div class="feedback-container">
            <button type="submit" class="btn btn-jupyter form-control">Start</button>
          </div>
        </form>
      </div>
    </div>
  </div>
</div>
</body>
</html>
"""


def static_dir() -> Path:
    try:
        from jupyterhub._data import DATA_FILES_PATH

        path = Path(DATA_FILES_PATH) / "static"
        if path.is_dir():
            return path
    except ImportError:
        pass
    return Path(sys.prefix) / "share" / "jupyterhub" / "static"


def build_page(values=None, errors=None, theme: str = "light", mounts: bool = False) -> str:
    import dataclasses

    static = static_dir()
    catalog = demo_catalog()
    if mounts:
        catalog = dataclasses.replace(catalog, storage=demo_storage())
    form = render_form(
        catalog=catalog,
        groups=["students"],
        capacity=demo_capacity(),
        values=values,
        errors=errors,
        username="alice",
        ssh_public_key=DEMO_PUBLIC_KEY if mounts else None,
    )
    return PAGE.format(
        theme=theme,
        css=(static / "css" / "style.min.css").as_uri(),
        logo=(static / "images" / "jupyterhub-80.png").as_uri(),
        form=form,
    )
