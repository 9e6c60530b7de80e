"""gridspawner.pages.enable: what it puts into a hub's config, and that the demo enables it
(the Helm chart's config is checked behind a real hub in tests/helm/test_chart_hub.py)."""

from __future__ import annotations

from pathlib import Path

from traitlets.config import Config, PyFileConfigLoader

from gridspawner import pages

ROOT = Path(__file__).resolve().parents[2]


def test_enable_adds_the_templates_after_the_admins_own_and_keeps_their_vars():
    c = Config()
    c.JupyterHub.template_paths = ["/etc/jupyterhub/templates"]
    c.JupyterHub.template_vars = {"campus": "Uni"}
    pages.enable(c)
    pages.enable(c)  # twice: no duplicate
    assert c.JupyterHub.template_paths == ["/etc/jupyterhub/templates", pages.TEMPLATE_DIR]
    assert c.JupyterHub.template_vars == {"campus": "Uni", "gridspawner": pages.template_vars}
    assert {p.name for p in Path(pages.TEMPLATE_DIR).iterdir()} >= {"home.html", "admin.html", "spawn_pending.html", "gridspawner-servers.html"}


def test_enable_on_a_fresh_config():
    c = Config()
    pages.enable(c)
    assert c.JupyterHub.template_paths == [pages.TEMPLATE_DIR]


def test_the_demo_enables_the_pages():
    config = PyFileConfigLoader("jupyterhub_config.py", path=str(ROOT)).load_config()
    assert pages.TEMPLATE_DIR in config.JupyterHub.template_paths
    assert config.JupyterHub.template_vars["gridspawner"] is pages.template_vars


def test_pages_without_a_user_or_servers_are_empty():
    assert pages.ServerPages(None).mine == []
    assert pages.ServerPages(None).readable({}) == []  # no read:servers scope: nothing


class _Named:
    def __init__(self, name, groups=()):
        self.name = name
        self.groups = [_Named(g) for g in groups]


def test_the_admin_page_follows_the_read_servers_filters():
    ada = _Named("ada", groups=["ml101"])
    assert pages._may_read(True, ada, "")  # JupyterHub's Scope.ALL (not a dict)
    assert pages._may_read({"user": {"ada"}}, ada, "big")
    assert pages._may_read({"group": {"ml101"}}, ada, "")
    assert pages._may_read({"server": {"ada/big"}}, ada, "big")
    assert not pages._may_read({"server": {"ada/big"}}, ada, "")
    assert not pages._may_read({"user": {"bob"}, "group": {"other"}}, ada, "")
    assert not pages._may_read(None, ada, "")
