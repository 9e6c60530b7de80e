"""Steps several browser tests take."""

from __future__ import annotations


def log_in(page, hub, username: str) -> None:
    """The dummy authenticator's login form; ends on a hub page."""
    page.goto(f"{hub.url}/hub/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "any-password")
    page.click("[type=submit]")
    page.wait_for_url("**/hub/**")


def open_spawn_page(page, hub, username: str) -> None:
    """Log in and open the spawn form (where the hub did not already land)."""
    log_in(page, hub, username)
    if "/hub/spawn" not in page.url:
        page.goto(f"{hub.url}/hub/spawn")
