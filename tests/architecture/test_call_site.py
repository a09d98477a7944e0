"""One place calls a model: every `acompletion` llmexp makes goes through
`llmexp/runner/transport.py` (the run's own process and the `--workers` children alike), so
what reaches a provider is decided once."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "llmexp"
CALL_SITE = "runner/transport.py"


def acompletion_uses(source: str) -> list[int]:
    """Lines that read an `.acompletion` attribute (a call or a reference to call later)."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and node.attr == "acompletion" and isinstance(node.ctx, ast.Load)
    )


def test_only_the_transport_module_calls_acompletion():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative != CALL_SITE:
            found += [f"llmexp/{relative}:{line}" for line in acompletion_uses(path.read_text(encoding="utf-8"))]
    assert not found, "acompletion used outside llmexp/runner/transport.py:\n" + "\n".join(found)
    assert len(acompletion_uses((PACKAGE / CALL_SITE).read_text(encoding="utf-8"))) == 2  # litellm's and a Router's


def test_the_scan_sees_a_call_and_a_stored_reference():
    """Guards against a vacuous pass: both ways of reaching acompletion are found."""
    sample = "import litellm\nasync def f(r):\n    await litellm.acompletion(model='m')\n    g = r.acompletion\n"
    assert acompletion_uses(sample) == [3, 4]
    assert acompletion_uses("class P:\n    async def acompletion(self):\n        pass\n") == []
