"""docs/python.md: every python block runs, in order, on a small synthetic run; and
`llmexp.open_run` reads a run with every model client made unimportable."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report.conftest import write_study

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "python.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_page_has_examples():
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 5
    joined = "\n".join(blocks)
    for call in ("llmexp.run(", "llmexp.open_run(", ".outcomes()", ".probes()", ".analysis("):
        assert call in joined, call


@pytest.mark.slow
def test_python_examples_run(tiny_run, tmp_path, monkeypatch):
    write_study(tmp_path)
    shutil.copytree(tiny_run, tmp_path / "runs" / "tiny")  # the run resumes: no call is made
    for stale in ("analysis", "report"):
        shutil.rmtree(tmp_path / "runs" / "tiny" / stale, ignore_errors=True)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    out = io.StringIO()
    for i, block in enumerate(python_blocks(DOC.read_text())):
        with contextlib.redirect_stdout(out):
            exec(compile(block, f"docs/python.md block {i + 1}", "exec"), namespace)  # noqa: S102
    printed = out.getvalue()
    assert "complete" in printed and "report.html" in printed
    outcomes, probes = namespace["outcomes"], namespace["probes"]
    assert str(outcomes["value"].dtype) == "float64" and str(probes["value"].dtype) == "float64"
    assert set(outcomes["outcome"]) == {"purchase"} and set(probes["probe"]) == {"competitor_price"}
    assert outcomes["value"].between(0, 1).all()  # purchase answers only, no dollar amounts
    assert (tmp_path / "runs" / "tiny" / "report" / "report.html").exists()


NO_MODELS = """
import sys
for name in ("litellm", "llama_cpp", "openai"):
    sys.modules[name] = None
import llmexp
run = llmexp.open_run(sys.argv[1])
print(run.run_status().status, len(run.outcomes()), len(run.probes()))
print(sorted(run.analysis(n_boot=50)))
"""


@pytest.mark.slow
def test_open_run_makes_no_model_call(tiny_run):
    done = subprocess.run([sys.executable, "-c", NO_MODELS, str(tiny_run)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    status, n_outcomes, n_probes = done.stdout.splitlines()[0].split()
    assert status == "complete" and int(n_outcomes) > 0 and int(n_probes) > 0
    assert "effects" in done.stdout and "leakage" in done.stdout


def test_open_run_in_a_process_without_model_clients_would_fail_on_a_call():
    """The guard is real: importing a model client in that process fails."""
    code = NO_MODELS.split("import llmexp")[0] + "import litellm\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "import of litellm halted" in done.stderr


def test_run_signature_mirrors_the_cli():
    import inspect

    import llmexp

    params = inspect.signature(llmexp.run).parameters
    for name in ("study", "out", "models", "replicates", "limit", "quiet", "advanced"):
        assert name in params, name
    assert params["quiet"].default is False and params["out"].default is None
    assert "never calls a model" in (llmexp.open_run.__doc__ or "")


def test_run_replicates_and_models_override_like_the_cli(tmp_path):
    import llmexp

    path = write_study(tmp_path)
    base = len(llmexp.compile(llmexp.load(path)))  # replicates 2 in the study
    plan = llmexp.run(path, out=tmp_path / "a", replicates=1, quiet=True, dry_run=True)
    assert len(plan.rows) == base // 2
    plan = llmexp.run(path, out=tmp_path / "b", models="synthetic/respondent", replicates=3, dry_run=True)
    assert len(plan.rows) == base // 2 * 3
    plan = llmexp.run(path, out=tmp_path / "c", model=["synthetic/other"], dry_run=True)
    assert {r["model"] for r in plan.rows} == {"synthetic/other"}
    with pytest.raises(Exception, match="at least 1"):
        llmexp.run(path, out=tmp_path / "d", replicates=0, dry_run=True)
