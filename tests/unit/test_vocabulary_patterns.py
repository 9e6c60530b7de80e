"""The shared patterns are defined once, in gridspawner/vocabulary.py: no other file of the
package compiles the same regular expression again (a copy drifts: the URL pattern once
had two versions that accepted different ports)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gridspawner import vocabulary

PACKAGE = Path(vocabulary.__file__).resolve().parent
SHARED = {name: value.pattern for name, value in vars(vocabulary).items() if isinstance(value, re.Pattern)}


def compiled_patterns(path: Path) -> list[tuple[int, str]]:
    """(line, pattern) of each ``re.compile("…")`` of a literal pattern: a pattern's definition."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re" and node.func.attr == "compile" and node.args and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def test_the_shared_patterns_are_compiled_in_the_vocabulary_only():
    assert {"NAME", "LOGIN", "MOUNT_TARGET", "HTTP_URL", "HOSTNAME"} <= set(SHARED)
    again = [
        f"{path.relative_to(PACKAGE.parent)}:{line} repeats vocabulary.{name}"
        for path in sorted(PACKAGE.rglob("*.py")) if path.name != "vocabulary.py"
        for line, pattern in compiled_patterns(path)
        for name, shared in SHARED.items() if pattern == shared
    ]
    assert not again, "\n".join(again)


def test_the_check_sees_a_copy(tmp_path):
    copy = tmp_path / "copy.py"
    copy.write_text(f"import re\nX = re.compile({vocabulary.LOGIN.pattern!r})\n")
    assert compiled_patterns(copy) == [(2, vocabulary.LOGIN.pattern)]
