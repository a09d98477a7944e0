"""`llmexp check` / `compile` on invalid studies: exit status 2, located messages, no traceback.

One test runs the real command in a subprocess; the others call `llmexp.cli.main` in
process (the CLI's import is slow, and main() is what the console script runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from langhelp import BASE

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "broken.study"
    # problems in two statements: a misspelled keyword and a bad analysis line
    path.write_text(BASE.replace("binary", "binry") + "analyze nope,\n")
    return path


def main_exit(args, capsys):
    from llmexp.cli import main

    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_subprocess_check_invalid_exits_2_and_lists_every_error(broken):
    result = subprocess.run(
        [sys.executable, "-m", "llmexp.cli", "check", str(broken)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "300", "HOME": str(broken.parent)},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{broken}:10:14: error: unexpected name 'binry'" in result.stderr
    assert "did you mean 'binary'?" in result.stderr
    assert f"{broken}:12:14: error: unexpected end of file; expected a name" in result.stderr


def test_check_semantic_errors_exit_2(tmp_path, capsys):
    path = tmp_path / "s.study"
    path.write_text(BASE.replace("{id}", "{idd}") + "analyze nope\n")
    code, _, err = main_exit(["check", str(path)], capsys)
    assert code == 2
    assert "Traceback" not in err
    flat = " ".join(err.split())  # the console may wrap long lines
    assert f"{path}:9:18: error: unknown field {{idd}} in the context (did you mean 'id'?)" in flat
    assert f"{path}:12:9: error: unknown analysis 'nope'" in flat


def test_compile_invalid_exits_2(broken, capsys):
    code, _, err = main_exit(["compile", str(broken)], capsys)
    assert code == 2 and "binry" in err and "Traceback" not in err


def test_missing_study_file_exits_2(tmp_path, capsys):
    code, _, err = main_exit(["check", str(tmp_path / "none.study")], capsys)
    assert code == 2 and "no such study file" in " ".join(err.split())


def test_valid_study_exits_0_and_strict_turns_warnings_into_2(tmp_path, capsys):
    path = tmp_path / "s.study"
    path.write_text(BASE)
    code, out, _ = main_exit(["check", str(path)], capsys)
    assert code == 0 and "ok:" in out
    path.write_text(BASE + "unspecified mood\n")
    code, _, err = main_exit(["check", str(path)], capsys)
    assert code == 0 and "warning: unspecified covariate 'mood' has no probe" in " ".join(err.split())
    code, _, err = main_exit(["check", "--strict", str(path)], capsys)
    assert code == 2 and "--strict: 1 warning(s) count as errors" in err
