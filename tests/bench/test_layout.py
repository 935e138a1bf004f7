"""bench/ is shared code (bench/lib, importable) and entry points (bench/*.py, run as commands)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench_imports(path: Path) -> list[str]:
    """The bench modules a file imports."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
            names += [f"{node.module}.{a.name}" if node.module == "bench" else node.module for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] == "bench"]
    return names


def test_tests_and_entry_points_import_only_the_shared_package() -> None:
    files = sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    wrong = {
        str(f.relative_to(ROOT)): bad
        for f in files
        if (bad := [m for m in bench_imports(f) if m != "bench.lib" and not m.startswith("bench.lib.")])
    }
    assert wrong == {}
