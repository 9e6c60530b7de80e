"""Sphinx configuration for the gridspawner docs.

Build: ``.venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html``.
The configuration reference (``reference/config.md``) is generated from the traits of
``GridSpawner`` on every build, so it cannot drift from the code, and every configuration
example in the pages is validated like a hub would validate it (``check_examples.py``): a
broken example is a warning, so the ``-W`` build fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(DOCS.parent))

import gen_config_reference  # noqa: E402

gen_config_reference.main()

import gen_field_docs  # noqa: E402

# the tables of the spawn-time choices (REST keys, preset keys), from the field registry
gen_field_docs.main()

# The Helm chart's values reference (docs/admin/helm-values.inc, included by the Helm page),
# generated from helm/gridspawner/values.schema.json when that generator is present.
if (DOCS / "gen_helm_values.py").exists():
    import gen_helm_values  # noqa: E402

    gen_helm_values.main()

import gridspawner  # noqa: E402

project = "gridspawner"
author = "gridspawner contributors"
copyright = "gridspawner contributors"
release = gridspawner.__version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "README.md"]

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
    }
except ImportError:  # the docs still build with Sphinx's built-in theme
    html_theme = "alabaster"
    html_theme_options = {}

html_title = f"gridspawner {release}"
html_static_path = ["_static"]


def _check_examples(app) -> None:
    from sphinx.util import logging

    import check_examples

    log = logging.getLogger("gridspawner.docs")
    for problem in check_examples.check_all():
        log.warning(problem)


def setup(app):
    app.connect("builder-inited", _check_examples)
    return {"parallel_read_safe": True}
