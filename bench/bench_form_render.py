"""Benchmark: render the spawn form for a big catalog.

20 backends × 30 images, 3 profiles, a cached capacity snapshot for 50 hosts (8 GPUs each,
some busy, some unreachable). Prints median and p95 in ms and the ratio to the 20 ms target.

    python bench/bench_form_render.py [--runs 300]

Exits 0 (it reports; it does not judge). No backend module is needed: the catalog is built
directly from its dataclasses.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gridspawner.backends.base import Capacity, HostCapacity  # noqa: E402
from gridspawner.catalog import BackendConfig, Catalog, ImageConfig, Policy, Profile  # noqa: E402
from gridspawner.form import parse_form, render_form  # noqa: E402
from gridspawner.gpu import GPU  # noqa: E402

TARGET_MS = 20.0
N_BACKENDS, N_IMAGES, N_HOSTS = 20, 30, 50


def big_catalog() -> Catalog:
    backends = {
        f"b{i:02d}": BackendConfig(f"b{i:02d}", "local", f"Backend {i}", f"Rack {i}, 8-GPU hosts", None)
        for i in range(N_BACKENDS)
    }
    images = {
        f"img{i:02d}": ImageConfig(f"img{i:02d}", f"Image {i}", f"Environment number {i}", {"local": None})
        for i in range(N_IMAGES)
    }
    profiles = {
        f"p{i}": Profile(
            f"p{i}", f"Profile {i}", "A preset", frozenset(),
            {"backend": f"b{i:02d}", "image": f"img{i:02d}", "gpus": i + 1, "gpu_memory": 40},
            frozenset({"gpus"}), None, 3600.0 * (i + 1),
        )
        for i in range(3)
    }
    return Catalog(
        backends=backends,
        images=images,
        max_gpus=8,
        gpu_memory_classes=(0, 16, 24, 40, 48, 80),
        cpu_choices=(1, 2, 4, 8, 16, 32),
        memory_choices=(4, 8, 16, 32, 64, 128),
        group_policy={},
        default_policy=Policy(None, None, 8, True),
        profiles=profiles,
        defaults={},
        gpu_memory_tolerance=0.07,
    )


def big_capacity() -> dict[str, Capacity]:
    now = time.time()
    hosts: dict[str, list[HostCapacity]] = {f"b{i:02d}": [] for i in range(N_BACKENDS)}
    sizes = (16384, 24576, 49152, 81920)
    for h in range(N_HOSTS):
        mib = sizes[h % len(sizes)]
        cards = tuple(GPU(i, f"h{h}-g{i}", "GPU", mib) for i in range(8))
        free = frozenset(g.uuid for g in cards[: (h * 3) % 9])
        error = "ssh: connection refused" if h % 17 == 5 else None
        hosts[f"b{h % N_BACKENDS:02d}"].append(HostCapacity(f"host{h}", cards, free, error))
    return {name: Capacity(name, tuple(hs), updated=now) for name, hs in hosts.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args(argv)

    catalog, capacity = big_catalog(), big_capacity()
    values = {"backend": "b03", "image": "img07", "gpus": 4, "gpu_memory": 40, "cpu": 8}
    errors = {"gpus": "no host has 4 free GPUs with ≥ 40 GB", "surprise": "unknown option"}

    def once() -> str:
        return render_form(catalog=catalog, groups=["staff"], capacity=capacity, values=values, errors=errors)

    html = once()
    for _ in range(20):  # warm up
        once()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        once()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    median = statistics.median(times)
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]

    t0 = time.perf_counter()
    for _ in range(1000):
        parse_form({"_xsrf": ["x"], "profile": [""], "backend": ["b03"], "image": ["img07"], "gpus": ["4"], "gpu_memory": ["40"]})
    parse_us = (time.perf_counter() - t0) * 1000

    print(f"form render: {N_BACKENDS} backends x {N_IMAGES} images, {N_HOSTS} hosts, {len(html) / 1024:.0f} KiB of HTML")
    print(f"  runs={args.runs} median={median:.2f} ms p95={p95:.2f} ms min={times[0]:.2f} ms")
    print(f"  ratio to the {TARGET_MS:g} ms target: median {median / TARGET_MS:.3f}, p95 {p95 / TARGET_MS:.3f}"
          f" ({'within' if median <= TARGET_MS else 'OVER'} target)")
    print(f"parse_form: {parse_us:.1f} us per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
