"""The form script words no capacity reason itself: the server sends each one, in
`Capacity.fits`' words (the same words a refused launch is explained with)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bs4 import BeautifulSoup

import gridspawner.form
from gridspawner.backends.base import Capacity, HostCapacity
from gridspawner.catalog import build_catalog
from gridspawner.form import render_form
from gridspawner.gpu import GPU


def test_the_script_gets_every_capacity_reason_in_capacity_fits_words():
    cat = build_catalog(backends={"lab": {"kind": "local", "display_name": "Lab machine"}},
                        images={"scipy": {"local": {}}}, max_gpus=3)
    cards = tuple(GPU(i, f"GPU-{i}", "NVIDIA A100-SXM4-80GB" if i < 2 else "Tesla T4", 81920 if i < 2 else 15360)
                  for i in range(3))
    cap = {"lab": Capacity("lab", (HostCapacity("lab", cards, frozenset(g.uuid for g in cards)),), updated=time.time())}
    page = render_form(catalog=cat, groups=[], capacity=cap, values=None, errors={}, username="ada", ssh_public_key=None)
    data = json.loads(BeautifulSoup(page, "html.parser").find("script", id="gs-form-data").string)
    tol = cat.gpu_memory_tolerance
    expected = {f"{n}-{ci}": cap["lab"].fits(n, gb, tol)[1]
                for ci, gb in enumerate(cat.gpu_memory_classes) for n in range(1, 4)
                if not cap["lab"].fits(n, gb, tol)[0]}
    assert data["backends"]["lab"]["reasons"] == expected
    assert expected["3-4"] == "no host has 3 free GPUs with ≥ 80 GB (at most 2 free now)"
    js = (Path(gridspawner.form.__file__).parent / "static" / "form.js").read_text()
    assert "no host has" not in js and "free now" not in js
