"""Fixtures for the pure unit tests (catalog, request, GPU, capacity, properties).

The catalog asks each backend kind's class to validate its own settings. The pure tests must
not depend on what the real kinds accept, so `fake_kinds` swaps the kind registry for two
test-only kinds named like the real ones ("local" and "ssh") whose validation just copies
the dict (and rejects one marker key, so propagation of a kind's CatalogError is testable).
The fixture is opt-in (never autouse): other tests in this folder use the real kinds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, settings

from gridspawner import backends as backends_pkg
from gridspawner.backends.base import Backend
from gridspawner.catalog import CatalogError, build_catalog

# ------------------------------------------------------------------ hypothesis profiles
settings.register_profile(
    "ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# ------------------------------------------------------------------ test-only backend kinds
class _FakeKind(Backend):
    """Validates nothing but one marker key; never launched."""

    @classmethod
    def parse_settings(cls, name: str, raw: dict, key: str) -> Any:
        if "reject_me" in raw:
            raise CatalogError(f"{key}['reject_me']", "rejected by the kind")
        return dict(raw)

    @classmethod
    def parse_image(cls, image: str, raw: dict, key: str) -> Any:
        if "reject_me" in raw:
            raise CatalogError(f"{key}['reject_me']", "rejected by the kind")
        return dict(raw)

    async def launch(self, ctx, request):  # pragma: no cover - never called
        raise NotImplementedError

    async def restore(self, state):  # pragma: no cover
        raise NotImplementedError

    async def poll(self, launch):  # pragma: no cover
        raise NotImplementedError

    async def stop(self, launch, now=False):  # pragma: no cover
        raise NotImplementedError

    async def probe_capacity(self):  # pragma: no cover
        raise NotImplementedError


class FakeLocal(_FakeKind):
    kind = "local"


class FakeSSH(_FakeKind):
    kind = "ssh"


_MODULE = "_gridspawner_test_kinds"
#: the registry as shipped, for the few tests that use the real kinds inside a fake_kinds module
REAL_KINDS = dict(backends_pkg._KINDS)


@contextlib.contextmanager
def patched_kinds() -> Iterator[None]:
    """Register the fake "local" and "ssh" kinds (usable outside function-scoped fixtures)."""
    module = types.ModuleType(_MODULE)
    module.FakeLocal = FakeLocal
    module.FakeSSH = FakeSSH
    mp = pytest.MonkeyPatch()
    try:
        mp.setitem(sys.modules, _MODULE, module)
        mp.setattr(backends_pkg, "_KINDS", {"local": f"{_MODULE}:FakeLocal", "ssh": f"{_MODULE}:FakeSSH"})
        yield
    finally:
        mp.undo()


@pytest.fixture
def fake_kinds() -> Iterator[None]:
    with patched_kinds():
        yield


@pytest.fixture
def real_kinds(fake_kinds, monkeypatch) -> None:
    """Undo `fake_kinds` for one test of a module that uses it everywhere else."""
    monkeypatch.setattr(backends_pkg, "_KINDS", dict(REAL_KINDS))


# ------------------------------------------------------------------ a standard config
def standard_config() -> dict[str, Any]:
    """A realistic catalog: two host backends of different kinds, groups and profiles."""
    return {
        "backends": {
            "here": {"kind": "local", "display_name": "Hub machine"},
            "gpu-hosts": {"kind": "ssh", "hosts": ["a", "b"]},
        },
        "images": {
            "base": {"display_name": "Base", "local": {"cmd": ["jupyterhub-singleuser"]}, "ssh": {}},
            "pytorch": {"display_name": "PyTorch", "local": {}, "ssh": {}},
            "ssh-only": {"ssh": {"env": {"X": "1"}}},
        },
        "max_gpus": 4,
        "gpu_memory_classes": [16, 24, 80],
        "cpu_choices": [1, 2, 4],
        "memory_choices": [4, 8, 16],
        "group_policy": {
            "students": {"backends": ["here"], "images": ["base"], "max_gpus": 1},
            "ml101": {"backends": ["gpu-hosts"], "images": ["pytorch"], "max_gpus": 2, "free_choice": False},
            "staff": {"backends": "*", "images": "*", "max_gpus": 4},
        },
        "default_policy": {"backends": ["here"], "images": ["base", "pytorch"], "max_gpus": 0},
        "profiles": {
            "course": {
                "display_name": "ML course",
                "groups": ["ml101"],
                "values": {"backend": "gpu-hosts", "image": "pytorch", "gpus": 1, "gpu_memory": 16},
                "changeable": ["gpus", "cpu"],
                "max_gpus": 2,
                "max_runtime": "4h",
            },
            "open": {
                "display_name": "Small CPU server",
                "values": {"backend": "here", "image": "base", "gpus": 0},
            },
        },
        "default_options": {"backend": "here", "image": "base", "gpus": 0, "gpu_memory": 0},
        "max_runtime": "2d",
    }


@pytest.fixture
def config() -> dict[str, Any]:
    return standard_config()


@pytest.fixture
def catalog(fake_kinds, config):
    return build_catalog(**config)


@pytest.fixture(scope="session")
def standard_config_factory():
    """`standard_config` for tests that cannot take function-scoped fixtures (hypothesis)."""
    return standard_config


@pytest.fixture(scope="session")
def build_with_fake_kinds():
    """build_catalog under the fake kinds, for session/module-scoped catalogs."""

    def build(**raw):
        with patched_kinds():
            return build_catalog(**raw)

    return build
