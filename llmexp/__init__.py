"""llmexp: experiments on LLM-simulated people, with blinding modes and honest statistics.

Python API mirrors the CLI:

    study = llmexp.load("studies/demand_curve.study")
    trials = study_trials = llmexp.compile(study)      # pandas DataFrame, one row per call
    results = llmexp.run(study)                        # runs through litellm
    df = results.to_pandas()
    print(study)                                       # a summary; repr(study) is one line
    print(llmexp.diff(study, other))                   # the field paths where two studies differ
"""

from __future__ import annotations

from llmexp.spec import diff

__version__ = "0.1.0"

__all__ = ["load", "check", "check_text", "compile", "run", "diff", "__version__"]


def load(path):
    """Parse and validate a `.study` file into a `llmexp.spec.Study`."""
    return check(path)[0]


def check(path):
    """Parse and validate a `.study` file: (study, warnings); raises `StudyError` with every error.

    The composition root of validation: it hands the language layer the analysis catalogue
    (`llmexp.lang` never imports the analyses itself)."""
    from llmexp.analysis import catalogue
    from llmexp.lang import check_study

    return check_study(path, analyses=catalogue())


def check_text(text, filename="<study>"):
    """Like `check` for study text in memory (paths resolve from the current folder)."""
    from llmexp.analysis import catalogue
    from llmexp.lang import check_text as check_lang_text

    return check_lang_text(text, filename, analyses=catalogue())


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
