"""The documentation's screenshots come from a real hub (tools/doc_screenshots.py): the
script still runs against the current product, finds the texts it shows, and writes both
images. (Run it with ``--out docs/_static`` to refresh the committed ones.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


def test_doc_screenshots_are_taken_from_a_real_hub(tmp_path):
    pytest.importorskip("playwright.sync_api")
    spec = importlib.util.spec_from_file_location("doc_screenshots", ROOT / "tools" / "doc_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.take(tmp_path)
    names = ["admin-servers.png", "home-servers.png", "mounts-editor.png", "spawn-form.png", "spawn-progress.png"]
    assert sorted(p.name for p in written) == names
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, path
    committed = {p.name for p in (ROOT / "docs" / "_static").glob("*.png")}
    assert committed >= set(names)
