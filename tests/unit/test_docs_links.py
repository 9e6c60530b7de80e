"""Every relative link in README.md and the docs pages points at a file in the repository
(read on GitHub or in a clone, a link to a generated or ignored file is dead), and the
committed configuration reference is what the traits' help texts generate now."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE = re.compile(r"^```(?!\{).*?^```", re.MULTILINE | re.DOTALL)
_FIGURE = re.compile(r"^```\{(?:figure|image)\}\s+(\S+)", re.MULTILINE)


def _tracked() -> set[Path]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    return {REPO / p for p in out.decode().split("\0") if p}


def _targets(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    prose = _CODE.sub("", text)  # a fenced block shows code (a diff, a config), not links
    return _LINK.findall(prose) + _FIGURE.findall(text)


@pytest.mark.parametrize("page", [p for p in PAGES if "_build" not in p.parts], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_tracked_files(page):
    tracked = _tracked()
    tracked_dirs = {d for p in tracked for d in p.parents}
    dead = []
    for target in _targets(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor in the same page
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if path not in tracked and path not in tracked_dirs:
            dead.append(target)
    assert not dead, f"{page.relative_to(REPO)} links to files the repository does not hold: {dead}"


def test_the_committed_configuration_reference_is_current():
    sys.path.insert(0, str(REPO / "docs"))
    import gen_config_reference

    committed = gen_config_reference.OUTPUT.read_text(encoding="utf-8")
    assert committed == gen_config_reference.render(), (
        "docs/reference/config.md is out of date: run `.venv/bin/python docs/gen_config_reference.py` "
        "(or `make docs`) and commit it"
    )
