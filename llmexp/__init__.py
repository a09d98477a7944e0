"""llmexp: experiments on LLM-simulated people, with blinding modes and honest statistics.

Python API mirrors the CLI:

    study = llmexp.load("studies/demand_curve.study")
    trials = study_trials = llmexp.compile(study)      # pandas DataFrame, one row per call
    results = llmexp.run(study)                        # runs through litellm
    df = results.to_pandas()
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load", "compile", "run", "__version__"]


def load(path):
    """Parse and validate a `.study` file into a `llmexp.spec.Study`."""
    from llmexp.lang import load_study

    return load_study(path)


def compile(study, **kwargs):  # noqa: A001 - mirrors the CLI verb
    """Compile a study (or a path to one) into the trial table (pandas DataFrame)."""
    from llmexp.compiler import compile_study

    if not hasattr(study, "treatments"):
        study = load(study)
    return compile_study(study, **kwargs)


def run(study, **kwargs):
    """Run a study (or a path to one); returns a results object with `.to_pandas()`."""
    from llmexp.runner import run_study

    if not hasattr(study, "treatments"):
        study = load(study)
    return run_study(study, **kwargs)
