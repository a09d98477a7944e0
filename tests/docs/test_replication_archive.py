"""The committed demand-curve run (docs/replication/run, an archived run on the embedded
model) regenerates every figure of the replication without calling any model."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARCHIVE = REPO / "docs" / "replication" / "run"
FIGURES = ["demand_curves", "leakage", "focalism", "cell_errors", "design_ranking", "range"]

# Run the CLI with every model client made unimportable: a model call would fail loudly.
NO_MODELS = """
import sys
for name in ("litellm", "llama_cpp", "openai"):
    sys.modules[name] = None
from llmexp.cli import main
main(sys.argv[1:])
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_MODELS, *args], capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(not ARCHIVE.exists(), reason="no committed replication run")
def test_committed_run_regenerates_every_figure_without_a_model(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ARCHIVE, run)
    results = cli("results", str(run))
    assert results.returncode == 0, results.stderr
    assert "not yet run 0" in results.stdout

    analyzed = cli("analyze", str(run))
    assert analyzed.returncode == 0, analyzed.stderr
    figures = run / "analysis" / "figures"
    for name in FIGURES:
        assert (figures / f"{name}.png").stat().st_size > 1000, name
        assert (figures / f"{name}.svg").exists(), name

    reported = cli("report", str(run))
    assert reported.returncode == 0, reported.stderr
    html = (run / "report" / "report.html").read_text()
    assert len(re.findall(r"src=['\"]data:image/png;base64,", html)) >= len(FIGURES)
    manifest = json.loads((run / "manifest.json").read_text())
    for analysis in manifest["spec"]["analyses"]:
        assert f"<section id='analysis-{analysis}'>" in html, analysis
    assert manifest["spec"]["models"][0]["name"] == "llmexp/gemma3-270m"
