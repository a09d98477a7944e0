"""Every CSV the package writes goes through `llmexp.export.csv_safe` (cells beginning with
=, +, -, @, tab or CR neutralised: the OWASP rule against formula injection), so a
spreadsheet opening an export never runs a formula taken from unit data or a model's
answer. A new writer that forgets it fails here (`llmexp diagnose -o x.csv` once did)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "llmexp"


def unsafe_csv_writes(source: str) -> list[int]:
    """Lines calling `.to_csv(...)` on anything but `csv_safe(...)`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "to_csv":
            receiver = node.func.value
            safe = isinstance(receiver, ast.Call) and getattr(receiver.func, "id", None) == "csv_safe"
            if not safe:
                found.append(node.lineno)
    return sorted(found)


def test_every_csv_the_package_writes_is_neutralised():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += [f"{path.relative_to(PACKAGE.parent)}:{line}" for line in unsafe_csv_writes(path.read_text(encoding="utf-8"))]
    assert not found, "CSV written without llmexp.export.csv_safe:\n" + "\n".join(found)


def test_the_scan_sees_an_unsafe_write():
    assert unsafe_csv_writes("df.to_csv(p)\ncsv_safe(df).to_csv(p)\nself.table.to_csv(p, index=False)\n") == [1, 3]
