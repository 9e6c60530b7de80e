"""Check that the configuration examples in the docs are valid gridspawner configurations.

Run by docs/conf.py on every build (a broken example is a Sphinx warning, so the ``-W``
build fails), and runnable on its own:

    .venv/bin/python docs/check_examples.py

Every fenced ``python`` block that assigns ``c.GridSpawner.*`` is executed into a traitlets
``Config`` and validated exactly as the hub does at start-up. A block that sets both
``backends`` and ``images`` is checked on its own; a fragment is checked on top of the first
complete example of its page (or, without one, on top of the page's earlier blocks).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SKIP = {"reference/config.md"}  # generated from the traits' help strings


_ASSIGNS = {name: re.compile(rf"^c\.GridSpawner\.{name}\s*=", re.M) for name in ("backends", "images")}


def _complete(code: str) -> bool:
    """Whether ``code`` assigns both catalogs whole (so it stands on its own)."""
    return all(pattern.search(code) for pattern in _ASSIGNS.values())


def _validate(code: str) -> str | None:
    """None if ``code`` is a valid configuration, else the error message."""
    from traitlets.config import Config

    from gridspawner import GridSpawner
    from gridspawner.catalog import CatalogError

    c = Config()
    try:
        exec(compile(code, "<docs example>", "exec"), {"c": c, "get_config": lambda: c})
        GridSpawner(config=c).check_config()
    except CatalogError as e:
        return str(e)
    except Exception as e:  # a syntax error or a wrong type in the example itself
        return f"{type(e).__name__}: {e}"
    return None


def check_page(path: Path) -> list[str]:
    """Problems found in one Markdown page, as 'page:line: message'."""
    text = path.read_text(encoding="utf-8")
    blocks = [(text[: m.start()].count("\n") + 2, m.group(1)) for m in _BLOCK.finditer(text)]
    blocks = [(line, code) for line, code in blocks if "c.GridSpawner." in code]
    base = next((code for _, code in blocks if _complete(code)), None)
    problems, earlier = [], []
    for line, code in blocks:
        if _complete(code):
            full = code
        elif base is not None:
            full = base + "\n" + code
        else:
            full = "\n".join([*earlier, code])
        earlier.append(code)
        if not _complete(full):
            continue  # nothing to validate yet (a fragment before any backend/image)
        error = _validate(full)
        if error:
            problems.append(f"{path.relative_to(DOCS)}:{line}: invalid example: {error}")
    return problems


def check_all() -> list[str]:
    sys.path.insert(0, str(DOCS.parent))
    problems = []
    for page in sorted(DOCS.rglob("*.md")):
        rel = page.relative_to(DOCS).as_posix()
        if rel in SKIP or rel.startswith("_build/"):
            continue
        problems += check_page(page)
    return problems


if __name__ == "__main__":
    found = check_all()
    print("\n".join(found) or "all configuration examples are valid")
    sys.exit(1 if found else 0)
