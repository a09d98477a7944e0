"""How `llmexp check`'s parser scales: time against file size, and peak memory for long strings.

    python benchmarks/parser_scaling.py            # sizes up to 1.4 MB, strings of 50 MB
    python benchmarks/parser_scaling.py --quick    # smaller

Prints one table row per (input kind, size): seconds to parse (a broken file: until the
capped error list is ready) and the number of problems; then, each in a fresh subprocess,
the peak resident memory (getrusage) of parsing one long string literal, valid or
unterminated, both at the size limit and at 50 MB (refused by the limit; then again with
the limit lifted, to measure the lexer alone); then the CSV duplicate-header check on
40,000 columns; then validation of one string holding up to 100,000 unknown `{field}`s
(each a located error). Also times `llmexp check` itself on a 1.4 MB file of random tokens.
Exits 1 if a 1.4 MB file of random tokens takes 5 s or more, or a string
parse peaks over 1 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "lang"))

from langhelp import token_soup  # noqa: E402

from llmexp.errors import StudyError  # noqa: E402
from llmexp.lang.parser import parse_text  # noqa: E402


def inputs(size: int) -> dict[str, str]:
    """Kinds of input of about `size` characters."""
    return {
        "random tokens": token_soup(size, seed=size),
        "random tokens, one per line": token_soup(size, seed=size).replace(" ", "\n"),
        "one broken statement per line": "model\n" * (size // 6),
        "one clause repeated (valid syntax)": 'study "s" ' + "seed 1 " * (size // 7),
        "valid statements": ('model "m" temperature 0\n' * (size // 24)),
    }


def time_row(kind: str, text: str) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        parse_text(text, "bench.study")
        outcome = "parsed"
    except StudyError as exc:
        outcome = f"{len(exc.problems):,} problems, {len(str(exc).splitlines())} lines shown"
    return time.perf_counter() - start, outcome


MEMORY_CHILD = r'''
import json, resource, sys
from llmexp.errors import StudyError
from llmexp.lang import parser
kind, size, lift = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
if lift:
    parser.MAX_STUDY_BYTES = 10**12
text = {"valid": 'context "' + "x" * size + '"\n', "unterminated": 'context """' + "x" * size,
        "valid-long": 'context """\n' + ("y" * 99 + "\n") * (size // 100) + '"""\n'}[kind]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    parser.parse_text(text, "s.study")
    outcome = "parsed"
except StudyError as exc:
    outcome = str(exc).splitlines()[0][:90]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mb": peak / 1024, "before_mb": base / 1024, "outcome": outcome}))
'''


def memory_row(kind: str, size: int, lift: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, kind, str(size), "1" if lift else "0"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def check_command(text: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "soup.study"
        path.write_text(text)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "llmexp.cli", "check", str(path)], capture_output=True, text=True)
        seconds = time.perf_counter() - start
    assert out.returncode == 2, out.stderr[-2000:]
    return seconds, len(out.stderr.splitlines())


def csv_row(columns: int) -> float:
    from llmexp.data import read_table
    from llmexp.errors import DataError

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "wide.csv"
        names = [f"c{i}" for i in range(columns)] + ["c1"]
        path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
        start = time.perf_counter()
        with contextlib.suppress(DataError):  # the duplicate is found: that is the work measured
            read_table(path, "wide.csv")
        return time.perf_counter() - start


def field_errors_row(fields: int, quoted: str) -> tuple[int, float]:
    """Seconds `check_text` takes on a study whose context holds `fields` unknown `{field}`s
    (every one an error located by line and column): linear in the number of errors."""
    from langhelp import BASE

    from llmexp import check_text

    text = BASE.replace('context "You see {id} for {x}."', f"context {quoted}" + "a b {x} {nope} " * fields + quoted)
    start = time.perf_counter()
    with contextlib.suppress(StudyError):
        check_text(text, "bench.study")
    return len(text), time.perf_counter() - start


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true")
    quick = args.parse_args().quick
    sizes = [50_000, 200_000, 400_000] if quick else [100_000, 200_000, 400_000, 800_000, 1_400_000]
    failed = False
    print("| input | size | seconds | outcome |\n| --- | ---: | ---: | --- |")
    for size in sizes:
        for kind, text in inputs(size).items():
            seconds, outcome = time_row(kind, text)
            print(f"| {kind} | {len(text):,} | {seconds:.2f} | {outcome} |", flush=True)
            if kind.startswith("random tokens") and size >= 1_400_000 and seconds >= 5:
                failed = True
    seconds, lines = check_command(token_soup(1_400_000, seed=1).replace(" ", "\n"))
    print(f"\n`llmexp check` (a subprocess, start-up included) on 1.4 MB of random tokens, one per line: "
          f"{seconds:.2f} s, {lines} lines of errors")
    failed |= seconds >= 5
    big = 5_000_000 if quick else 50_000_000
    print("\n| string literal | characters | limit | RSS before (MB) | peak RSS (MB) | outcome |\n| --- | ---: | --- | ---: | ---: | --- |")
    for kind, size, lift in [("valid", 4_900_000, False), ("unterminated", 4_900_000, False),
                             ("valid", big, False), ("valid", big, True), ("unterminated", big, True),
                             ("valid-long", big, True)]:
        row = memory_row(kind, size, lift)
        failed |= row["peak_mb"] > 1024
        limit = "lifted" if lift else "5 MB"
        print(f"| {kind} | {size:,} | {limit} | {row['before_mb']:.0f} | {row['peak_mb']:.0f} | {row['outcome']} |", flush=True)
    print(f"\nCSV duplicate-header check, 40,000 columns: {csv_row(40_000):.2f} s")
    print("\n| unknown fields in one string | quotes | characters | seconds |\n| ---: | --- | ---: | ---: |")
    for fields in [5_000, 20_000] if quick else [5_000, 20_000, 100_000]:
        for quoted in ('"', '"""'):
            size, seconds = field_errors_row(fields, quoted)
            failed |= size >= 1_400_000 and seconds >= 5
            print(f"| {fields:,} | {quoted} | {size:,} | {seconds:.2f} |", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
