"""The HTML view of an executed notebook (``runs/ID/html``), served by the gridspawner
service behind a real hub (tests/hubtools), over HTTP through the proxy with the user's hub
token. The run is a row written straight into the gridspawner_runs table with an executed
notebook in the run store (``--cells`` code cells, each with a stream output of 40 lines, an
HTML table and every tenth a small PNG), as the executor leaves them.

Measured in the same run, medians of ``--rounds``:

- baseline: converting that notebook with nbconvert, what every view cost before the view
  was kept (`runs_view.notebook_html`, in this process);
- the first view (one sample: converted, then kept);
- a view again (kept: no reading, no conversion);
- a revalidation (``If-None-Match`` with the view's ETag → 304, no body).

Each printed with its ratio to the baseline.

    python bench/bench_run_html.py [--cells 200] [--rounds 15]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hubtools import Hub, default_grid_config, free_port  # noqa: E402

SERVICE = "/services/gridspawner/"
RUN_ID = "0123456789abcdef"
# a 1×1 PNG: the outputs' images (their size does not matter to nbconvert's work here)
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")).decode()


def executed_notebook(cells: int) -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i in range(cells):
        outputs = [nbformat.v4.new_output("stream", name="stdout", text="".join(f"step {i}.{n} loss {1 / (n + 1):.4f}\n"
                                                                                for n in range(40))),
                   nbformat.v4.new_output("display_data", data={"text/html": "<table>" + "".join(
                       f"<tr><td>{r}</td><td>{r * i}</td></tr>" for r in range(10)) + "</table>"})]
        if i % 10 == 0:
            outputs.append(nbformat.v4.new_output("display_data", data={"image/png": PNG}))
        nb.cells.append(nbformat.v4.new_code_cell(f"for n in range(40):\n    print(f'step {i}.{{n}}')", outputs=outputs,
                                                  execution_count=i + 1))
    return nbformat.writes(nb).encode()


def add_run(hub: Hub, user: str, store: Path, notebook: bytes) -> None:
    from sqlalchemy import create_engine, insert

    from gridspawner.usage.models import RUNS

    t = time.time() - 600
    engine = create_engine(f"sqlite:///{hub.workdir / 'gridspawner-usage.sqlite'}")
    try:
        with engine.begin() as conn:
            conn.execute(insert(RUNS), [{
                "id": RUN_ID, "username": user, "name": "big", "status": "succeeded", "backend": "local",
                "backend_kind": "local", "profile": "", "image": "lab", "options": "{}", "parameters": "{}",
                "bindings": "{}", "warnings": "[]", "groups": "[]", "gpus": 0, "gpu_memory_gb": 0, "gpu_model": "",
                "host": "localhost", "max_runtime": None, "submitted_at": t, "started_at": t + 5,
                "finished_at": t + 300, "updated_at": t + 300, "cancel_requested": 0, "error": None, "log_tail": "",
            }])
    finally:
        engine.dispose()
    (store / RUN_ID).mkdir(parents=True, mode=0o700)
    (store / RUN_ID / "output.ipynb").write_bytes(notebook)


def median(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from gridspawner.service.runs_view import notebook_html

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    notebook = executed_notebook(args.cells)
    extra = f"from gridspawner.service.settings import enable_service\nenable_service(c, port={free_port()})\n"
    with tempfile.TemporaryDirectory(prefix="bench-run-html-") as tmp:
        store = Path(tmp) / "run-store"
        grid = default_grid_config(Path(tmp))
        grid.update({"notebook_runs": True, "runs_dir": str(store)})
        with Hub(grid, workdir=tmp, extra_config=extra) as hub:
            hub.create_user("ada")
            s = requests.Session()
            s.headers["Authorization"] = "token " + hub.api("POST", "/users/ada/tokens", json={}).json()["token"]
            deadline = time.monotonic() + 90
            while s.get(f"{hub.url}{SERVICE}static/runs.js", allow_redirects=False).status_code != 200:
                assert time.monotonic() < deadline, "the service did not come up"
                time.sleep(0.5)
            add_run(hub, "ada", store, notebook)
            url = f"{hub.url}{SERVICE}runs/{RUN_ID}/html"
            notebook_html(notebook, "warm-up")  # nbconvert's templates loaded, as in a running service
            base = median(lambda: notebook_html(notebook, "big"), max(3, args.rounds // 3))
            t0 = time.perf_counter()
            first = s.get(url, timeout=120)
            first_s = time.perf_counter() - t0
            assert first.status_code == 200 and "step 1.39" in first.text, (first.status_code, first.text[:300])
            etag = first.headers["Etag"]

            def again() -> None:
                r = s.get(url, timeout=60)
                assert r.status_code == 200 and len(r.content) == len(first.content)

            def revalidate() -> None:
                r = s.get(url, headers={"If-None-Match": etag}, timeout=60)
                assert r.status_code == 304 and not r.content

            kept = median(again, args.rounds)
            cheap = median(revalidate, args.rounds)
    size = len(first.content) / 2**20
    print(f"HTML view of a {args.cells}-cell executed notebook ({len(notebook) / 2**20:.1f} MiB; {size:.1f} MiB of HTML):")
    print(f"  baseline, converting it (every view before): median {base * 1000:.0f} ms")
    print(f"  first view (converted, then kept): {first_s * 1000:.0f} ms ({first_s / base:.2f}× the baseline)")
    print(f"  viewed again (kept): median {kept * 1000:.1f} ms ({kept / base:.3f}× the baseline)")
    print(f"  revalidated (304): median {cheap * 1000:.1f} ms ({cheap / base:.3f}× the baseline)")


if __name__ == "__main__":
    main()
