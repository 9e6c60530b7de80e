"""What every handler of the usage service shares, and its templates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..usage.config import UsageConfig
from ..usage.runtime import UsageRuntime

HERE = Path(__file__).parent


@dataclass
class ServiceContext:
    """What every handler shares."""

    config: UsageConfig
    #: the usage runtime of this process (its store, quota standings); it watches nothing
    usage: UsageRuntime
    templates: Environment
    #: the service's URL prefix (``/services/gridspawner/``) and the hub's (``/hub/``)
    prefix: str
    hub_prefix: str
    #: notebook runs (`gridspawner.runs.runtime.RunsRuntime`); None when they are off
    runs: Any = None


def templates() -> Environment:
    return Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)
