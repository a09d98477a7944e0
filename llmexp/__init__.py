"""llmexp: experiments on LLM-simulated people, with blinding modes and honest statistics.

Python API mirrors the CLI:

    study = llmexp.load("studies/demand_curve.study")
    trials = study_trials = llmexp.compile(study)      # pandas DataFrame, one row per call
    results = llmexp.run(study, out="runs/demo", quiet=True)  # runs through litellm
    results = llmexp.open_run("runs/demo")            # read-only: never calls a model
    results.outcomes(), results.probes()               # tidy frames, one typed value column
    results.analysis()                                 # the analysis tables, by name
    df = results.to_pandas()
    print(study)                                       # a summary; repr(study) is one line
    print(llmexp.diff(study, other))                   # the field paths where two studies differ
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from llmexp.spec import diff

__version__ = "0.1.0"

__all__ = ["load", "check", "check_text", "compile", "run", "open_run", "diff", "__version__"]


def load(path):
    """Parse and validate a `.study` file into a `llmexp.spec.Study`."""
    return check(path)[0]


def check(path):
    """Parse and validate a `.study` file: (study, warnings); raises `StudyError` with every error.

    The composition root of validation: it hands the language layer the analysis catalogue
    and the providers' `custom_params` capability (`llmexp.lang` never imports the analyses
    nor the providers itself)."""
    from llmexp import providers
    from llmexp.analysis import catalogue
    from llmexp.lang import check_study

    return check_study(path, analyses=catalogue(), custom_params=lambda m: providers.for_model(m).custom_params)


def check_text(text, filename="<study>"):
    """Like `check` for study text in memory (paths resolve from the current folder)."""
    from llmexp import providers
    from llmexp.analysis import catalogue
    from llmexp.lang import check_text as check_lang_text

    return check_lang_text(text, filename, analyses=catalogue(),
                           custom_params=lambda m: providers.for_model(m).custom_params)


def compile(study, **kwargs):  # noqa: A001 - mirrors the CLI verb
    """Compile a study (or a path to one) into the trial table (pandas DataFrame)."""
    from llmexp.compiler import compile_study

    if not hasattr(study, "treatments"):
        study = load(study)
    return compile_study(study, **kwargs)


def run(study: Any, out: str | os.PathLike | None = None, models: str | Sequence[Any] | None = None,
        replicates: int | None = None, limit: int | None = None, quiet: bool = False,
        pilot: int | None = None, params: dict[str, Any] | None = None, **advanced: Any):
    """Run a study (a `Study` or a path to a .study file) and return its results
    (`llmexp.runner.results.RunResults`: `.outcomes()`, `.probes()`, `.analysis()`,
    `.to_pandas()`, `.summary()`). The names mirror `llmexp run`:

    - `out` (``--out``): the run directory (default ``runs/<study>-<hash>``); an existing run
      of the same study is resumed: finished trials are never called again; a run of the
      study before replicates, models or designs were added is extended in place (only the
      new trials are called; the manifest records the extension);
    - `models` (``--model``, repeatable): run these models (names or `ModelSpec`) instead
      of the study's; a name the study does not declare keeps the study's sampling params
      (temperature, max_tokens, ...) and replicates, and what was carried over is printed
      unless `quiet`;
    - `replicates` (``--replicates``): override every model's replicates;
    - `params` (``--param name=value``): set model params on every model run;
    - `limit` (``--limit``): only N trials, sampled across every model x design x cell;
    - `pilot` (``--pilot``): like `limit`, recorded in the manifest as a pilot;
    - `quiet` (``--quiet``): no progress display;
    - `advanced`: passed to `llmexp.runner.run_study` (``concurrency``, ``max_cost``,
      ``dry_run``, ``cache_dir``, ``use_cache``, ``rpm``, ``tpm``, ``router``,
      ``allow_endpoints``, ``batch`` ...).
    """
    import sys

    from llmexp.runner import run_study
    from llmexp.runner.override import override_models

    if not hasattr(study, "treatments"):
        study = load(study)
    if models is None and "model" in advanced:  # `--model` as the CLI spells it
        models = advanced.pop("model")
    override = override_models(study, models, replicates, params)
    if override.note() and not quiet:
        print(override.note(), file=sys.stderr)
    study, models = study.with_models(override.models), None
    if "run_dir" in advanced and out is None:
        out = advanced.pop("run_dir")
    advanced.setdefault("progress", not quiet)
    from llmexp.report.results import Results
    from llmexp.runner.results import RunResults

    result = run_study(study, run_dir=None if out is None else os.fspath(out), models=models,
                       limit=limit, pilot=pilot, **advanced)
    return Results.adopt(result) if isinstance(result, RunResults) else result


def open_run(path: str | os.PathLike):
    """Open a finished (or partial) run directory, or an archive of one, for reading only:
    it never calls a model and never resumes the run. Returns the same results object as
    `run` (`.outcomes()`, `.probes()`, `.analysis()`, `.to_pandas()`, `.summary()`)."""
    from llmexp.report.results import open_results

    return open_results(os.fspath(path))
