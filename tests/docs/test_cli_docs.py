"""docs/cli.md must equal the CLI's own --help output (scripts/gen_cli_docs.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_docs_up_to_date():
    gen = _generator()
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    fresh = gen.generate()
    assert committed == fresh, (
        "docs/cli.md is out of date with the CLI's --help output; "
        "regenerate it with: python scripts/gen_cli_docs.py"
    )


def test_every_command_documented():
    gen = _generator()
    names = gen.commands(gen.help_text())
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert {"check", "compile", "run", "results", "analyze", "report"} <= set(names)
    for name in names:
        assert f"## llmexp {name}\n" in text, f"llmexp {name} missing from docs/cli.md: run python scripts/gen_cli_docs.py"


def test_in_process_help_matches_the_real_command():
    """The generator's in-process help equals what the `llmexp` entry point prints."""
    gen = _generator()
    assert gen.help_text("run") == gen.help_text("run", subprocess_mode=True)
    assert gen.help_text() == gen.help_text(subprocess_mode=True)
