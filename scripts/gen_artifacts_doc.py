#!/usr/bin/env python3
"""Regenerate the two column tables of docs/artifacts.md from `llmexp.schema`.

The page's prose is written by hand; each column table sits between a pair of markers

    <!-- schema:trials -->  ...  <!-- /schema:trials -->
    <!-- schema:responses -->  ...  <!-- /schema:responses -->

and is replaced by `llmexp.schema.markdown_tables()`, so the documented columns cannot
drift from the ones the compiler, store and results use.

    python scripts/gen_artifacts_doc.py            # rewrite docs/artifacts.md
    python scripts/gen_artifacts_doc.py --check    # exit 1 if docs/artifacts.md is out of date

tests/docs/test_artifacts_doc.py fails when the committed page differs from this output.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmexp.schema import markdown_tables  # noqa: E402

DOC = ROOT / "docs" / "artifacts.md"


def generate(text: str) -> str:
    """`text` with every marked table replaced by the schema's; raises if a marker is missing."""
    for name, table in markdown_tables().items():
        pattern = re.compile(rf"(<!-- schema:{name} -->\n).*?(<!-- /schema:{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{DOC}: no <!-- schema:{name} --> ... <!-- /schema:{name} --> markers")
        text = pattern.sub(lambda m, table=table: m.group(1) + table + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    current = DOC.read_text(encoding="utf-8")
    fresh = generate(current)
    if "--check" in argv:
        if fresh != current:
            print(f"{DOC} is out of date with llmexp/schema.py: run python scripts/gen_artifacts_doc.py")
            return 1
        return 0
    if fresh != current:
        DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
