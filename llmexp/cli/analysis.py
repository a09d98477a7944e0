"""CLI: `llmexp analyze RUN_DIR` and `llmexp report RUN_DIR`."""

from __future__ import annotations

from pathlib import Path

import typer


def _names(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    def analyze_cmd(
        run_dir: Path = typer.Argument(..., help="run directory written by `llmexp run`"),
        only: str | None = typer.Option(None, "--only", help="comma list: run only these analyses"),
        add: str | None = typer.Option(None, "--add", help="comma list: add to the study's analyses"),
        out: Path | None = typer.Option(None, "--out", help="output dir (default RUN_DIR/analysis)"),
        seed: int = typer.Option(0, "--seed", help="bootstrap / refuter seed"),
        first_exposure: bool = typer.Option(
            False, "--first-exposure",
            help="sequential designs: analyse only each respondent's first condition (a between-subject comparison)",
        ),
    ) -> None:
        """Analyse a run: tidy tables (CSV + parquet), figures and summary.json."""
        from llmexp.report import analyze_run

        exposures = {"exposures": "first"} if first_exposure else {}
        result = analyze_run(run_dir, only=_names(only), add=_names(add), out_dir=out, seed=seed, **exposures)
        typer.echo(result.summary())
        typer.echo(f"wrote {result.out_dir}")

    @app.command("report")
    def report_cmd(
        run_dir: Path = typer.Argument(..., help="run directory written by `llmexp run`"),
        only: str | None = typer.Option(None, "--only", help="comma list: run only these analyses"),
        add: str | None = typer.Option(None, "--add", help="comma list: add to the study's analyses"),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Write RUN_DIR/report/report.html (self-contained) and report.md; print the paths."""
        from llmexp.report import report

        paths = report(run_dir, only=_names(only), add=_names(add), seed=seed)
        typer.echo(str(paths.html))
        typer.echo(str(paths.markdown))
        typer.echo(str(paths.analysis_dir))
