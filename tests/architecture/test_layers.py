"""The package's layering, enforced: a module never imports a higher layer, subpackages
import each other without cycles, and nothing in the package imports the test code.

`LAYERS` below is the one definition of the order; docs/ARCHITECTURE.md quotes it
(`python -m tests.architecture.test_layers` prints the table, and a test fails when the
doc's copy drifts). Every import counts, at module level and inside functions (a lazy import
is still a dependency); only imports under `if TYPE_CHECKING:` are left out, as they never
run.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "llmexp"
DOC = REPO / "docs" / "ARCHITECTURE.md"

# layer -> (components, what the layer is). A component is a top-level module or a subpackage
# of llmexp; a lower layer never imports a higher one. `llmexp` itself (the public API in
# llmexp/__init__.py, and __main__) sits on top and may import any layer.
LAYERS: dict[int, tuple[tuple[str, ...], str]] = {
    0: (("errors", "fields", "templates", "seeding"), "errors, field naming, template strings, seeded hashes"),
    1: (("spec", "expr", "data", "schema", "export"), "the Study value, expressions, CSV data, the trial and response table schema, CSV-safe export"),
    2: (("answers",), "answer types: one class per type, registry"),
    3: (("modes",), "blinding modes: one class per mode, registry, the renderer base"),
    4: (("lang",), "the study language: grammar, parser, AST, validation (text -> Study)"),
    5: (("compiler",), "Study -> trial table"),
    6: (("providers",), "litellm custom providers with declared capabilities, the synthetic respondent"),
    7: (("runner",), "store, cache, scheduler, cost, results"),
    8: (("analysis",), "registry of analyses, one file per analysis"),
    9: (("diagnose", "report"), "design diagnosis, the HTML report"),
    10: (("cli",), "typer commands: the only layer that imports everything"),
}
TOP = max(LAYERS) + 1
COMPONENT_LAYER = {name: layer for layer, (names, _) in LAYERS.items() for name in names}


def markdown_table() -> str:
    """The layer table as docs/ARCHITECTURE.md shows it."""
    lines = ["| layer | modules | what |", "| --- | --- | --- |"]
    for layer, (names, what) in sorted(LAYERS.items()):
        shown = ", ".join(f"`llmexp/{n}/`" if (PACKAGE / n).is_dir() else f"`llmexp/{n}.py`" for n in names)
        lines.append(f"| L{layer} | {shown} | {what} |")
    lines.append("| top | `llmexp/__init__.py`, `llmexp/__main__.py` | the public API (`load`, `compile`, `run`, `diff`) |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. llmexp.lang.validate
    target: str  # imported module, e.g. llmexp.runner.cost
    path: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """Every import in a module, resolved to the module it loads (`from llmexp import expr`
    is llmexp.expr; `from llmexp.lang import load_study` is llmexp.lang)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = _type_checking_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, path, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(name, sub if sub in known else base, path, node.lineno))
    return found


def all_imports() -> list[Import]:
    modules = package_modules()
    known = set(modules)
    return [imp for name, path in modules.items() for imp in imports_of(name, path, known)]


def component(module: str) -> str | None:
    """The top-level module or subpackage a module belongs to; None for llmexp itself."""
    parts = module.split(".")
    if parts[0] != "llmexp":
        return None
    return parts[1] if len(parts) > 1 and parts[1] != "__main__" else None


def layer_of(module: str) -> int:
    name = component(module)
    return TOP if name is None else COMPONENT_LAYER.get(name, -1)


def test_every_component_has_a_layer():
    missing = sorted({c for c in map(component, package_modules()) if c is not None and c not in COMPONENT_LAYER})
    assert not missing, f"add these to LAYERS in {Path(__file__).relative_to(REPO)}: {', '.join(missing)}"


def test_no_module_imports_a_higher_layer():
    upward = []
    for imp in all_imports():
        if not imp.target.startswith("llmexp"):
            continue
        src, dst = layer_of(imp.source), layer_of(imp.target)
        if dst > src >= 0:
            upward.append(f"{imp.where}: {imp.source} (L{src}) imports {imp.target} (L{dst if dst != TOP else 'top'})")
    assert not upward, f"{len(upward)} import(s) of a higher layer:\n" + "\n".join(upward)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_subpackages():
    edges: dict[str, set[str]] = defaultdict(set)
    sites: dict[tuple[str, str], list[str]] = defaultdict(list)
    for imp in all_imports():
        a, b = component(imp.source), component(imp.target)
        if a and b and a != b and imp.target.startswith("llmexp"):
            edges[a].add(b)
            sites[(a, b)].append(imp.where)
    report = []
    for members in _cycles(edges):
        report.append("cycle: " + " <-> ".join(members))
        for a in members:
            for b in sorted(edges[a] & set(members)):
                report.append(f"  {a} -> {b}: {', '.join(sites[(a, b)][:4])}{' ...' if len(sites[(a, b)]) > 4 else ''}")
    assert not report, "\n".join(report)


def test_package_never_imports_the_tests():
    bad = [f"{imp.where}: {imp.source} imports {imp.target}" for imp in all_imports() if imp.target.split(".")[0] == "tests"]
    assert not bad, "\n".join(bad)


def test_architecture_doc_quotes_the_layer_table():
    if not DOC.exists():
        pytest.skip("docs/ARCHITECTURE.md not written yet")
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- layers -->\n(.*?)<!-- /layers -->", text, re.S)
    assert match, f"{DOC.relative_to(REPO)} must hold the layer table between <!-- layers --> and <!-- /layers -->"
    assert match.group(1) == markdown_table(), "the layer table drifted: paste `python -m tests.architecture.test_layers`"


if __name__ == "__main__":
    print(markdown_table(), end="")
