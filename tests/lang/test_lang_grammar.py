"""The grammar is found from the source tree (editable install) and ships in the wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmexp.lang import parser as parser_module

REPO = Path(__file__).resolve().parents[2]


def test_grammar_text_from_the_source_tree():
    text = parser_module.grammar_text()
    assert text == (REPO / "llmexp" / "lang" / "study.lark").read_text(encoding="utf-8")
    for keyword in parser_module.STATEMENT_KEYWORDS:
        assert f'"{keyword}"' in text, keyword


def test_statement_keywords_match_the_grammar():
    import re

    text = parser_module.grammar_text()
    alternatives = re.search(r"_statement:(.*?)\n\n", text, re.S).group(1)
    rules = re.findall(r"[a-z_]+", alternatives)
    assert tuple(rules) == parser_module.STATEMENT_KEYWORDS


def test_wheel_contains_the_grammar(tmp_path):
    """Builds a wheel (pip fetches hatchling from the package index when it is not cached);
    skipped when that is impossible, e.g. offline."""
    out = tmp_path / "wheel"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    if build.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {build.stderr.strip()[-300:]}")
    (wheel,) = out.glob("llmexp-*.whl")
    listing = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True, check=True)
    assert "llmexp/lang/study.lark" in listing.stdout
    # the wheel is the library: no tests, no test support, no fixtures
    assert "tests/" not in listing.stdout and "support/" not in listing.stdout
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        packaged = archive.read("llmexp/lang/study.lark").decode("utf-8")
    assert packaged == (REPO / "llmexp" / "lang" / "study.lark").read_text(encoding="utf-8")
