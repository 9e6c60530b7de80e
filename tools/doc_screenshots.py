"""Take the documentation's screenshots from a REAL hub, so they show what the product shows.

    .venv/bin/python tools/doc_screenshots.py                # writes docs/_static/*.png
    .venv/bin/python tools/doc_screenshots.py --out /tmp/shots

Starts what the tests start (tests/hubtools: a real JupyterHub and configurable-http-proxy;
the Kubernetes API emulator for a GPU cluster; moto for S3 and STS), logs in with Debian's
Chromium through Playwright, and

- ``spawn-form.png``: the form of a user whose last start asked the cluster for 3 GPUs
  with at least 40 GB and failed with "No capacity" (its nodes have 2 such GPUs each): the
  form comes back with those values and says that they do not fit right now;
- ``mounts-editor.png``: submits two S3 mounts — one with temporary credentials from the
  hub, one with typed keys and a prefix that does not exist — and shows the Data section
  of the form that comes back, with the check's message next to the prefix;
- ``spawn-progress.png``: the progress page while the course profile's server starts on the
  cluster (the emulator takes a few seconds to "pull" the image);
- ``home-servers.png`` and ``admin-servers.png`` (gridspawner.pages): the user's servers —
  one from the course profile on the cluster (the emulator runs its pod as a local process),
  one on this machine with a bucket copied in — on the hub's home page, with the warning
  before the course profile's stop, and an admin's list of every running server.

Every text in them comes from the hub: the script fails if a text it expects is missing.
Needs the test environment (`make test` installs it) and root, as the tests do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hubtools import Hub  # noqa: E402
from hubtools.hub import local_backend_config  # noqa: E402

CHROMIUM = os.environ.get("GRIDSPAWNER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
USER = "ada"
PULL_SECONDS = 4  # long enough to photograph the progress page while the image "downloads"
ADMIN = "admin"
BUCKET = "lab-imaging"
ADMIN_ENV = {"CAMPUS_S3_ADMIN_KEY": "testing", "CAMPUS_S3_ADMIN_SECRET": "testing"}  # moto's defaults
NODES = [  # two nodes with two 80 GB cards, one with four 24 GB cards
    {"name": "a100-1", "cpu": "64", "memory": "512Gi", "gpus": 2, "gpu_product": "NVIDIA-A100-SXM4-80GB", "gpu_memory": 81920},
    {"name": "a100-2", "cpu": "64", "memory": "512Gi", "gpus": 2, "gpu_product": "NVIDIA-A100-SXM4-80GB", "gpu_memory": 81920},
    {"name": "a10-1", "cpu": "32", "memory": "128Gi", "gpus": 4, "gpu_product": "NVIDIA-A10", "gpu_memory": 23028},
]


def grid_config(workdir: Path, kubeconfig: str, s3_url: str) -> dict:
    return {
        "backends": {
            "cluster": {"kind": "kubernetes", "display_name": "GPU cluster",
                        "description": "Kubernetes: A100 and A10 nodes", "namespace": "default", "kubeconfig": kubeconfig},
            "here": local_backend_config(workdir, display_name="This machine",
                                         description="Small CPU jobs on the hub itself"),
        },
        "images": {
            "pytorch": {"display_name": "PyTorch 2.5 (CUDA 12.4)", "description": "PyTorch, torchvision, JupyterLab 4",
                        # (the emulator runs a pod's command here: the hub's own Python stands in)
                        "kubernetes": {"image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06",
                                       "cmd": [sys.executable, "-m", "jupyterhub.singleuser", "--allow-root"]},
                        "local": {}},
            "scipy": {"display_name": "Scientific Python", "description": "numpy, pandas, scikit-learn, matplotlib",
                      "kubernetes": {"image": "quay.io/jupyter/scipy-notebook:2025-01-06"}, "local": {}},
        },
        "max_gpus": 4,
        "gpu_memory_classes": [0, 16, 24, 40, 80],
        "cpu_choices": [2, 4, 8, 16],
        "memory_choices": [8, 16, 32, 64],
        "profiles": {
            "course": {"display_name": "ML course (1 GPU)", "description": "For the ML101 exercises: one GPU with PyTorch.",
                       "values": {"backend": "cluster", "image": "pytorch", "gpus": 1, "gpu_memory": 16},
                       "max_runtime": "25m"},
            "explore": {"display_name": "Data exploration", "description": "CPU only, on this machine. Good for notebooks and plots.",
                        "values": {"backend": "here", "image": "scipy", "gpus": 0}, "changeable": ["image"]},
        },
        "default_options": {"backend": "cluster", "image": "pytorch"},
        "storage": {
            "s3": {"campus": {"display_name": "Campus S3", "url": s3_url, "buckets": ["lab-*"], "user_prefix": "{username}/",
                              "credentials": ["sts", "keys"],
                              "sts": {"role_arn": "arn:aws:iam::123456789012:role/jupyter-users",
                                      "access_key_env": "CAMPUS_S3_ADMIN_KEY", "secret_key_env": "CAMPUS_S3_ADMIN_SECRET"}}},
        },
    }


def _expect(page, selector: str, text: str) -> None:
    shown = page.locator(selector).first.inner_text()
    if text not in shown:
        raise RuntimeError(f"expected {text!r} in {selector}, the hub shows {shown!r}")


def take(out: Path) -> list[Path]:
    """Start everything, take both screenshots into ``out``, stop everything."""
    from k8s_emulator import EmulatorProcess
    from playwright.sync_api import sync_playwright
    from s3 import S3Server

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gs-shots-"))
    pulls = ["--options", json.dumps({"pull_delay": PULL_SECONDS})]
    with S3Server() as s3, EmulatorProcess(NODES, run_pods=True, extra_args=pulls) as emu:
        s3.client().create_bucket(Bucket=BUCKET)
        s3.client().put_object(Bucket=BUCKET, Key=f"{USER}/run1/scan-001.tif", Body=b"\0" * 64)
        hub = Hub(grid_config(work, emu.kubeconfig_path, s3.url), workdir=work, gpus=None, env=ADMIN_ENV,
                  admin_users=(ADMIN,), extra_config="import gridspawner.pages\ngridspawner.pages.enable(c)\n")
        try:
            hub.start()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                try:
                    page = browser.new_page(viewport={"width": 1100, "height": 1000}, device_scale_factor=1)
                    page.set_default_timeout(60_000)
                    shots = [_form_shot(page, hub, out), _mounts_shot(page, out)]
                    return shots + _pages_shots(browser, hub, out)
                finally:
                    browser.close()
        finally:
            hub.close()


LAST_OPTIONS = {"backend": "cluster", "image": "pytorch", "gpus": 3, "gpu_memory": 40, "cpu": 8, "memory": 32}


def _form_shot(page, hub: Hub, out: Path) -> Path:
    hub.create_user(USER)
    for _ in range(40):  # until the node watch knows the nodes: then no node can ever fit
        r = hub.spawn(USER, LAST_OPTIONS)
        if r.status_code == 503 and "No capacity" in r.text:
            break
        if hub.server(USER) is not None:
            hub.stop_server(USER)
        page.wait_for_timeout(500)
    else:
        raise RuntimeError(f"the cluster was expected to refuse 3 GPUs with 40 GB: {r.status_code} {r.text}")
    page.goto(f"{hub.url}/hub/login")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", "any-password")
    page.click("[type=submit]")
    page.wait_for_url("**/hub/**")
    for _ in range(40):  # the capacity line comes from the background node watch
        page.goto(f"{hub.url}/hub/spawn")
        if "GPUs free" in page.locator("[data-gs-capacity]").first.inner_text():
            break
        page.wait_for_timeout(500)
    if not page.is_checked("input[name=profile][value='']"):
        raise RuntimeError("the form was expected to come back with the custom choice of the last start")
    _expect(page, "[data-gs-capacity]", "8 of 8 GPUs free, up to 80 GB")
    _expect(page, "[data-gs-note]", "Does not fit right now: no host has 3 free GPUs with ≥ 40 GB (at most 2 free now)")
    bottom = page.locator(".gs-fields").bounding_box()
    path = out / "spawn-form.png"
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1100, "height": bottom["y"] + bottom["height"] + 24})
    return path


def _mounts_shot(page, out: Path) -> Path:
    page.select_option("select[name=backend]", "here")  # nothing heavy starts if the checks pass
    page.select_option("select[name=gpus]", "0")
    rows = [
        {"type": "s3", "endpoint": "campus", "bucket": BUCKET, "prefix": f"{USER}/run1/", "target": "run1",
         "mode": "mount", "credentials": "sts"},
        {"type": "s3", "endpoint": "campus", "bucket": BUCKET, "prefix": f"{USER}/run2/", "target": "run2",
         "mode": "copy", "credentials": "keys", "access_key": "AKIAEXAMPLEKEY", "secret_key": "not-a-real-secret"},
    ]
    for i, row in enumerate(rows):
        if not page.locator(f"[name='mounts-{i}-type']").count():
            page.click("[data-gs-add]")
        for key in ("type", "endpoint", "mode", "credentials"):
            if page.locator(f"select[name='mounts-{i}-{key}']").count():  # else the only choice, fixed
                page.select_option(f"select[name='mounts-{i}-{key}']", row[key])
        for key in ("bucket", "prefix", "target", "access_key", "secret_key"):
            if key in row:
                page.fill(f"[name='mounts-{i}-{key}']", row[key])
        page.check(f"[name='mounts-{i}-read_only']")
    page.click("form#spawn_form [type=submit]")
    page.wait_for_selector("#gs-mounts")
    _expect(page, "#gs-mounts-1-prefix-error", "prefix not found")
    path = out / "mounts-editor.png"
    page.locator("#gs-mounts").screenshot(path=str(path))
    return path


def _login(browser, hub: Hub, user: str, path: str, width: int = 1100):
    page = browser.new_page(viewport={"width": width, "height": 700}, device_scale_factor=1)
    page.set_default_timeout(60_000)
    page.goto(f"{hub.url}/hub/login?next=/hub/{path}")  # not into the running server
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "any-password")
    page.click("[type=submit]")
    page.wait_for_url(f"**/hub/{path}")
    return page


def _pages_shots(browser, hub: Hub, out: Path) -> list[Path]:
    if hub.server(USER) is not None:
        hub.stop_server(USER)
    progress = _progress_shot(browser, hub, out)
    hub.spawn_ready(USER, {"profile": "explore", "mounts": [
        {"type": "s3", "endpoint": "campus", "bucket": BUCKET, "prefix": f"{USER}/run1/", "target": "run1",
         "mode": "copy", "read_only": True, "credentials": "sts"}]}, server_name="plots")
    page = _login(browser, hub, USER, "home")
    _expect(page, ".gridspawner-stop-warning", "Your server will be stopped in 2")
    _expect(page, "#gridspawner-servers", "1 × NVIDIA-A10, 24 GB")  # best fit for ≥ 16 GB
    _expect(page, "#gridspawner-servers", f"Campus S3: {BUCKET}/{USER}/run1/ → run1 (read-only, copied)")
    home = out / "home-servers.png"
    page.screenshot(path=str(home), full_page=True)
    page.close()
    hub.create_user(ADMIN, admin=True)
    page = _login(browser, hub, ADMIN, "admin", width=1280)
    _expect(page, "#gridspawner-servers", "ML course (1 GPU)")
    admin = out / "admin-servers.png"
    page.locator(".gridspawner-admin").screenshot(path=str(admin))
    page.close()
    return [progress, home, admin]


def _progress_shot(browser, hub: Hub, out: Path) -> Path:
    """Start the course profile from the form; photograph the progress page mid-way."""
    page = _login(browser, hub, USER, "spawn")
    page.check("input[name=profile][value=course]")
    page.click("form#spawn_form [type=submit]")
    page.wait_for_url(f"**/spawn-pending/{USER}**")
    page.locator("#progress-message", has_text="Downloading the image").wait_for()
    page.locator("details").first.evaluate("d => d.open = true")  # the event log, with every step
    path = out / "spawn-progress.png"
    page.screenshot(path=str(path))
    hub.wait_ready(USER)
    page.close()
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "_static"), help="directory for the PNG files")
    args = ap.parse_args(argv)
    for path in take(Path(args.out)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
