"""Diagnose a study before paying for model calls (DeclareDesign's `diagnose_design`).

    from llmexp.diagnose import diagnose
    d = diagnose(study, sims=200, replicates=[1, 2, 5], params={"effect": -1, "leakage": 0.5})
    d.table        # bias, RMSE, power, coverage per replicates x model x design x estimand
    d.costs        # calls, tokens, dollars per replicates (= `llmexp run --dry-run`)

`llmexp diagnose FILE` is the command line (llmexp.cli.diagnose); docs/diagnose.md.
Layout: `respondent.py` (the synthetic respondent, `llmexp.providers.respondent`, over the
analysis's observation rows, vectorised),
`estimators.py` (the analysis's OLS estimators in closed form over many simulations),
`simulate.py` (`diagnose`), `pilot.py` (respondent params from a real run).
"""

from llmexp.diagnose.errors import DiagnoseError

__all__ = ["diagnose", "Diagnosis", "DiagnoseError", "parse_replicates"]


def __getattr__(name: str):
    """Loaded on first use: the simulation pulls in litellm, which `llmexp --help` need not."""
    if name in ("diagnose", "Diagnosis", "parse_replicates"):
        from llmexp.diagnose import simulate

        return getattr(simulate, name)
    raise AttributeError(f"module 'llmexp.diagnose' has no attribute {name!r}")
