"""`Results`: a run's results with tidy frames and the analysis tables (what `llmexp.run` and
`llmexp.open_run` return).

`llmexp.runner.results.RunResults` reads a run directory; this subclass adds the views
that need the analysis layer (which the runner, a lower layer, does not import):

- `outcomes()`: one row per outcome observation (an aggregate call's answer counts once per
  condition it covers), the answer in one float column ``value``;
- `probes()`: one row per probe answer (the imagined covariate, e.g. a competitor price in
  dollars), its answer in one float column ``value``;
- `analysis()`: the analysis tables by name (read from ``RUN_DIR/analysis/tables`` when
  `llmexp analyze` has written them, else computed in memory; nothing is written).

Nothing here calls a model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmexp.runner.results import RunResults

ID_COLUMNS = ("trial_id", "design", "mode", "model", "replicate", "unit_id", "persona_id", "cell")


def tidy(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Observations (`llmexp.analysis.observations`) as a tidy frame: the target named
    `what` ("outcome" or "probe"), treatment levels under their names (``price``), unit
    columns as ``unit_<column>``, pinned covariates as ``pinned_<name>``, the answer in
    ``value`` (float64)."""
    renames = {"target": what, "y": "value"}
    for c in frame.columns:
        if c.startswith("lvl__"):
            renames[c] = c[len("lvl__"):]
        elif c.startswith("unit__"):
            renames[c] = "unit_" + c[len("unit__"):]
        elif c.startswith("pin__"):
            renames[c] = "pinned_" + c[len("pin__"):]
    out = frame.drop(columns=[c for c in ("kind",) if c in frame]).rename(columns=renames)
    out = out.loc[:, ~out.columns.duplicated()]
    out["value"] = out["value"].astype("float64")
    first = [c for c in ID_COLUMNS if c in out] + [what, "value"]
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)


class Results(RunResults):
    """A run directory with tidy frames (`outcomes`, `probes`) and `analysis()`."""

    @classmethod
    def adopt(cls, results: RunResults) -> Results:
        """The same results (status, stats ... kept) with this class's methods."""
        new = cls.__new__(cls)
        new.__dict__.update(results.__dict__)
        return new

    def _observations(self):
        from llmexp.analysis.observations import build_observations

        return build_observations(self.study, self.to_pandas())

    def outcomes(self) -> pd.DataFrame:
        """One row per valid outcome observation; the answer in ``value`` (float64: 0/1 or
        a share for binary outcomes, the number for numeric ones, the scale point for
        Likert ones)."""
        return tidy(self._observations().outcomes(), "outcome")

    def probes(self) -> pd.DataFrame:
        """One row per valid probe answer (the value the model imagined for an unstated
        covariate, e.g. a competitor price in dollars) in ``value`` (float64)."""
        return tidy(self._observations().probes(), "probe")

    def analysis(self, **options) -> dict[str, pd.DataFrame]:
        """The analysis tables by name: those `llmexp analyze` wrote under
        ``RUN_DIR/analysis/tables`` (when there are any and no `options` are given), else
        the study's analyses computed in memory (`llmexp.analysis.analyze` options such as
        ``n_boot`` or ``seed``; nothing written)."""
        folder = Path(self.run_dir) / "analysis" / "tables"
        written = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        if written and not options:
            return {p.stem: pd.read_parquet(p) for p in written}
        from llmexp.analysis import analyze

        options.setdefault("figures", False)
        return dict(analyze(self.study, self.to_pandas(), **options).tables)


def open_results(run_dir: Path | str) -> Results:
    """`llmexp.runner.results.open_run`, with this class's methods."""
    from llmexp.runner.results import open_run

    return Results.adopt(open_run(run_dir))
