"""EDSL side of the benchmark: N yes/no questions against the same mock server.

Runs in its own venv (EDSL is never a project dependency):

    /tmp/edsl-venv/bin/python benchmarks/edsl_bench.py --api-base URL --n 1000 --concurrency 64

EDSL talks to an OpenAI-compatible server through its `openai_compatible` service, whose
base URL comes from OPENAI_COMPATIBLE_BASE_URL. Prints one JSON line: n, wall, rate, answered.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--api-base", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=None, help="EDSL_MAX_CONCURRENT_TASKS (default: EDSL's)")
    args = ap.parse_args()
    os.environ["OPENAI_COMPATIBLE_BASE_URL"] = args.api_base
    os.environ["OPENAI_COMPATIBLE_API_KEY"] = "sk-fake"
    os.environ.setdefault("EDSL_FETCH_TOKEN_PRICES", "False")
    if args.concurrency:
        os.environ["EDSL_MAX_CONCURRENT_TASKS"] = str(args.concurrency)
    t_import = time.perf_counter()
    from edsl import Cache, Model, QuestionYesNo, ScenarioList

    q = QuestionYesNo(question_name="buy", question_text="You see product {{ scenario.i }} for $3.00. Would you buy it?")
    scenarios = ScenarioList.from_list("i", list(range(args.n)))
    model = Model("fake-model", service_name="openai_compatible")
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    results = q.by(scenarios).by(model).run(
        cache=Cache(), disable_remote_cache=True, disable_remote_inference=True,
        print_exceptions=bool(os.environ.get("EDSL_BENCH_DEBUG")), progress_bar=False,
    )
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    answers = results.select("answer.buy").to_list()
    answered = sum(1 for a in answers if a in ("Yes", "No", "yes", "no"))
    print(json.dumps({"n": args.n, "wall": wall, "cpu": cpu, "rate": args.n / wall, "answered": answered,
                      "import_s": t0 - t_import, "edsl": __import__("edsl").__version__}))


if __name__ == "__main__":
    sys.exit(main())
