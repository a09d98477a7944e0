"""A module's private names (`_name`) are its own: no other module imports them. A helper
another module needs is public, named for what it does (an import of `_work_frame` from
effects.py by diagnose was how two modules came to depend on each other's insides).

A package may import its own private submodules (`from llmexp.providers import _litellm`:
the litellm handlers loaded on first use); that is a module, not a private name."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "llmexp"


def private_imports(source: str, module: str) -> list[str]:
    """`from X import _name` in `source` (the module `module`) that reach into another
    module's private names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("llmexp"):
            continue
        for alias in node.names:
            name = alias.name
            if not name.startswith("_") or name.startswith("__"):
                continue
            own_submodule = module.startswith(f"{node.module}.") and (PACKAGE.parent / node.module.replace(".", "/") / f"{name}.py").exists()
            if not own_submodule:
                found.append(f"{node.module}.{name}")
    return found


def test_no_module_imports_another_modules_private_name():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        offenders += [f"{module}: {name}" for name in private_imports(path.read_text(encoding="utf-8"), module)]
    assert not offenders, "private names imported from another module:\n" + "\n".join(offenders)


def test_the_scan_sees_a_private_import():
    """Guards against a vacuous pass: the import this test was written after is caught, a
    package's own private submodule and public names are not."""
    caught = "from llmexp.analysis.effects import _work_frame, work_frame\n"
    assert private_imports(caught, "llmexp.diagnose.estimators") == ["llmexp.analysis.effects._work_frame"]
    own = "from llmexp.providers import _litellm\nfrom llmexp.providers._litellm import LlmexpProvider\n"
    assert private_imports(own, "llmexp.providers.base") == []
