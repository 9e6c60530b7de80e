#!/usr/bin/env python3
"""The locked Python environments: check one against its lock, or write a lock from one.

Run with the environment's own Python (it reads that environment's installed metadata):

  lockset.py check LOCK REQUIREMENT...
      Every distribution that REQUIREMENT... need (recursively, extras and environment
      markers included) is installed, satisfies what requires it, and has exactly the
      version LOCK names. Exit 1 listing every problem, e.g. a dependency added to
      pyproject.toml that the lock lacks ("run `make lock`").

  lockset.py write LOCK HEADER REQUIREMENT...
      Write LOCK: the closure of REQUIREMENT... in this environment, as ``name==version``
      lines (sorted), plus pip, setuptools and wheel (the installer and build backend).
      The project itself (an editable install) is left out.

A REQUIREMENT is a requirement string, e.g. ``gridspawner[test,docs]`` or ``jupyterlab``.
Only the standard library and ``packaging`` (or pip's copy of it) are used.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:  # an environment without `packaging` still has pip's copy of it
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import Version

#: always locked: what installs and builds the environment
TOOLS = ("pip", "setuptools", "wheel")


def read_lock(path: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, version = line.partition("==")
            if not sep:
                raise SystemExit(f"{path}: not an exact pin: {line!r}")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def closure(requirements: list[str]) -> tuple[dict[str, metadata.Distribution], list[str]]:
    """(installed distributions the requirements need, by canonical name; problems)."""
    found: dict[str, metadata.Distribution] = {}
    problems: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(Requirement(r), "the command line") for r in requirements]
    while todo:
        req, wanted_by = todo.pop()
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = _installed(req.name)
        if dist is None:
            problems.append(f"{req.name} (needed by {wanted_by}) is not installed")
            continue
        if req.specifier and not req.specifier.contains(Version(dist.version), prereleases=True):
            problems.append(f"{req.name} {dist.version} does not satisfy {req} (needed by {wanted_by})")
        found[name] = dist
        for text in dist.requires or ():
            sub = Requirement(text)
            if sub.marker is not None:
                if not any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                    continue
            todo.append((sub, f"{dist.metadata['Name']} {dist.version}"))
    return found, problems


def _is_editable(dist: metadata.Distribution) -> bool:
    try:
        return bool(json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"))
    except ValueError:
        return False


def check(lock: str, requirements: list[str]) -> int:
    pins = read_lock(lock)
    found, problems = closure(requirements)
    for name, dist in sorted(found.items()):
        if _is_editable(dist):
            continue
        if name not in pins:
            problems.append(f"{dist.metadata['Name']} {dist.version} is needed but not in {lock}")
        elif pins[name] != dist.version:
            problems.append(f"{dist.metadata['Name']} is {dist.version}, {lock} says {pins[name]}")
    for tool in TOOLS:
        dist = _installed(tool)
        if tool in pins and dist is not None and dist.version != pins[tool]:
            problems.append(f"{tool} is {dist.version}, {lock} says {pins[tool]}")
    if problems:
        print(f"the environment does not match {lock}:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        print("(a dependency changed in pyproject.toml? refresh the lock: make lock)", file=sys.stderr)
        return 1
    return 0


def write(lock: str, header: str, requirements: list[str]) -> int:
    found, problems = closure(requirements)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    for tool in TOOLS:
        dist = _installed(tool)
        if dist is not None:
            found[canonicalize_name(tool)] = dist
    lines = sorted(
        f"{d.metadata['Name']}=={d.version}" for d in found.values() if not _is_editable(d)
    )
    with open(lock, "w") as f:
        f.write("".join(f"# {h}\n" for h in header.splitlines()))
        f.write("\n".join(lines) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "check":
        return check(argv[1], argv[2:])
    if len(argv) >= 4 and argv[0] == "write":
        return write(argv[1], argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
