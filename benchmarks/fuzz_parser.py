"""Fuzz the study language: mutate the shipped studies and check every outcome is either a
valid study or the project's own error with a file:line:column location.

    python benchmarks/fuzz_parser.py --inputs 100000 --seed 1

Prints counts (accepted, rejected, rejected without a location, tracebacks) and exits 1 if
any input raised anything but `LlmexpError` or was rejected without a location.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

from llmexp import check_text
from llmexp.errors import LlmexpError, StudyError

ROOT = Path(__file__).resolve().parents[1]
TOKENS = [
    "study", "units", "persona", "treatment", "cell", "specified", "unspecified", "outcome",
    "context", "modes", "design", "model", "baseline", "analyze", "levels(", ")", "(", "=",
    ",", ":", "/", "*", "+", "-", "to", "step", "as", "with", "split", "and", "probe", "text",
    '"', '"""', "{", "}", "{price}", "{nope}", "#", "\n", "0", "-1", "1e9", "0.0001", "%",
    "blind", "aggregate", "within", "unblinded", "binary", "likert", "money", "number",
    "replicates", "count", "match", "compare", "retest", "where", "one of", "uniform", "normal",
    "\t", "\\", "é", "\x00", "..", "../", '"../../etc/passwd"', "api_key", "999999999",
]


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if not text:
            return rng.choice(TOKENS)
        i = rng.randrange(len(text))
        j = min(len(text), i + rng.randint(1, 40))
        if choice < 0.2:  # delete a span
            text = text[:i] + text[j:]
        elif choice < 0.35:  # duplicate a span
            text = text[:j] + text[i:j] + text[j:]
        elif choice < 0.6:  # insert a token
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif choice < 0.75:  # replace a character
            text = text[:i] + chr(rng.choice([rng.randint(32, 126), rng.randint(0, 0x2FF)])) + text[i + 1 :]
        elif choice < 0.9:  # swap two lines
            lines = text.split("\n")
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
        else:  # drop a line
            lines = text.split("\n")
            del lines[rng.randrange(len(lines))]
            text = "\n".join(lines)
    return text


def run(inputs: int, seed: int, verbose: bool) -> dict:
    sources = sorted((ROOT / "studies").glob("*.study"))
    texts = [(p, p.read_text()) for p in sources]
    rng = random.Random(seed)
    counts = {"inputs": 0, "accepted": 0, "rejected": 0, "unlocated": 0, "tracebacks": 0}
    examples: list[str] = []
    for _ in range(inputs):
        path, text = rng.choice(texts)
        mutated = mutate(text, rng)
        counts["inputs"] += 1
        try:
            check_text(mutated, str(path))
            counts["accepted"] += 1
        except StudyError as exc:
            counts["rejected"] += 1
            if not exc.problems or any(p.line is None for p in exc.problems if p.severity == "error"):
                counts["unlocated"] += 1
                if len(examples) < 5:
                    examples.append(f"unlocated: {exc}")
        except LlmexpError:
            counts["rejected"] += 1
        except Exception:  # noqa: BLE001 - counting exactly these is the point
            counts["tracebacks"] += 1
            if len(examples) < 5:
                examples.append(traceback.format_exc(limit=3) + "\ninput:\n" + mutated[:500])
    counts["examples"] = examples
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    counts = run(args.inputs, args.seed, args.verbose)
    elapsed = time.perf_counter() - start
    for example in counts.pop("examples"):
        print(example, file=sys.stderr)
    print(
        f"fuzz: {counts['inputs']} inputs in {elapsed:.0f} s: {counts['accepted']} accepted, "
        f"{counts['rejected']} rejected, {counts['unlocated']} rejected without line:column, "
        f"{counts['tracebacks']} tracebacks"
    )
    sys.exit(1 if counts["tracebacks"] or counts["unlocated"] else 0)


if __name__ == "__main__":
    main()
