"""Figures (seaborn, Agg backend, colour-blind palette; PNG + SVG each).

Every function takes tidy tables from the analyses and an output directory and returns the
paths written ([png, svg]), or [] when there is nothing to draw.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
SMALL_MULTIPLES_FROM = 3  # more designs than this: one panel each instead of overlaid curves
LINES = ["-", "--", "-.", ":"]


def _style() -> list:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.15)
    return sns.color_palette("colorblind")


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def _label(df: pd.DataFrame) -> pd.Series:
    if df["model"].nunique() > 1:
        return df["design"] + " · " + df["model"]
    return df["design"]


def demand_figure(points: pd.DataFrame, out_dir: Path, human: pd.DataFrame | None = None,
                  name: str = "demand_curves") -> list[Path]:
    """Pooled share by level per design with interval bands; human curve overlaid."""
    if points is None or points.empty:
        return []
    if _label(points).nunique() > SMALL_MULTIPLES_FROM:
        return demand_panels(points, out_dir, human, name)
    pal = _style()
    outcomes = list(points["target"].unique())
    fig, axes = plt.subplots(1, len(outcomes), figsize=(6.5 * len(outcomes), 4.5), squeeze=False)
    for ax, out in zip(axes[0], outcomes):
        p = points[points["target"] == out].copy()
        p["series"] = _label(p)
        for i, (lab, g) in enumerate(p.groupby("series", sort=True)):
            g = g.sort_values("level")
            c = pal[i % len(pal)]
            ax.plot(g["level"], g["mean"], marker=MARKERS[i % len(MARKERS)],
                    linestyle=LINES[i % len(LINES)], color=c, label=lab)
            ax.fill_between(g["level"], g["ci_low"], g["ci_high"], color=c, alpha=0.15, lw=0)
        if human is not None and len(human):
            h = human[human["outcome"] == out]
            if len(h):
                hm = h.groupby("level").apply(
                    lambda g: np.average(g["human"], weights=g["n"]), include_groups=False)
                ax.plot(hm.index, hm.values, color="black", lw=2.2, marker="o", label="humans")
        ax.set_xlabel("price level (x regular price)")
        ax.set_ylabel(f"share {out}")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(frameon=False, fontsize=9)
        ax.set_title(f"Demand curves: {out}")
    return _save(fig, out_dir, name)


def demand_panels(points: pd.DataFrame, out_dir: Path, human: pd.DataFrame | None = None,
                  name: str = "demand_curves") -> list[Path]:
    """Many designs: one small panel per design (x outcome) on shared axes, the human curve in
    each, instead of one tangle of overlapping ribbons."""
    pal = _style()
    p = points.assign(series=_label(points))
    panels = list(p.groupby(["target", "series"], sort=False))
    cols = min(len(panels), 4)
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, ((out, lab), g) in zip(axes.flat, panels):
        g = g.sort_values("level")
        ax.plot(g["level"], g["mean"], marker="o", color=pal[0], label="simulated")
        ax.fill_between(g["level"], g["ci_low"], g["ci_high"], color=pal[0], alpha=0.2, lw=0)
        h = human[human["outcome"] == out] if human is not None and len(human) else None
        if h is not None and len(h):
            hm = h.groupby("level").apply(
                lambda x: np.average(x["human"], weights=x["n"]), include_groups=False)
            ax.plot(hm.index, hm.values, color="black", lw=1.8, marker="D", ms=3, label="humans")
        ax.set_title(f"{lab}: {out}", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
    for ax in axes[-1]:
        ax.set_xlabel("price level (x regular price)")
    for ax in axes[:, 0]:
        ax.set_ylabel("share")
    axes.flat[0].legend(frameon=False, fontsize=8)
    return _save(fig, out_dir, name)


def leakage_figure(points: pd.DataFrame, out_dir: Path, name: str = "leakage") -> list[Path]:
    """Normalised elicited covariate by treatment level per design (flat = no leakage)."""
    if points is None or points.empty:
        return []
    pal = _style()
    covs = list(points["covariate"].unique())
    fig, axes = plt.subplots(1, len(covs), figsize=(6 * len(covs), 4.2), squeeze=False)
    for ax, cov in zip(axes[0], covs):
        p = points[points["covariate"] == cov].copy()
        p["series"] = _label(p)
        for i, (lab, g) in enumerate(p.groupby("series", sort=True)):
            g = g.sort_values("level")
            se = g["sd"] / np.sqrt(g["n"])
            c = pal[i % len(pal)]
            ax.errorbar(g["level"], g["v_norm"], yerr=1.96 * se, color=c, capsize=2,
                        marker=MARKERS[i % len(MARKERS)], linestyle=LINES[i % len(LINES)],
                        label=lab)
        ax.axhline(1.0, color="grey", lw=1, ls=":")
        ax.set_xlabel("treatment level")
        ax.set_ylabel("elicited value / unit mean")
        ax.set_title(f"Leakage: {cov}")
        ax.legend(frameon=False, fontsize=9)
    return _save(fig, out_dir, name)


def focalism_figure(obs_table: pd.DataFrame, table: pd.DataFrame, out_dir: Path,
                    human: pd.DataFrame | None = None, name: str = "focalism") -> list[Path]:
    """Mean outcome by level for the pinned and unpinned designs (+ humans); threshold line."""
    if table is None or table.empty:
        return []
    pal = _style()
    out = table["outcome"].iloc[0]
    designs = [d for d in table["design"].unique() if d != "human"]
    d = obs_table[(obs_table["kind"] == "outcome") & (obs_table["target"] == out)
                  & obs_table["design"].isin(designs)]
    m = d.groupby(["design", "level"], as_index=False)["y"].mean()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    pinned = set(table.loc[table["role"] == "pinned", "design"])
    for i, (des, g) in enumerate(m.groupby("design", sort=True)):
        ax.plot(g["level"], g["y"], marker=MARKERS[i % len(MARKERS)],
                linestyle="-" if des in pinned else "--", color=pal[i % len(pal)],
                lw=2.4 if des in pinned else 1.5,
                label=f"{des} (pinned)" if des in pinned else des)
    if human is not None and len(human):
        h = human[human["outcome"] == out]
        if len(h):
            hm = h.groupby("level")["y"].mean() if "y" in h else h.groupby("level")["human"].mean()
            ax.plot(hm.index, hm.values, color="black", marker="o", lw=2, label="humans")
    thr = table["threshold_level"].dropna()
    if len(thr):
        ax.axvline(float(thr.iloc[0]), color="grey", ls=":", lw=1.2, label="pinned value")
    ax.set_xlabel("treatment level")
    ax.set_ylabel(f"mean {out}")
    ax.set_title("Focalism: step at the pinned covariate")
    ax.legend(frameon=False, fontsize=9)
    return _save(fig, out_dir, name)


def error_heatmap(cells: pd.DataFrame, out_dir: Path, name: str = "cell_errors") -> list[Path]:
    """Mean |sim - human| per design x level (averaged over units)."""
    if cells is None or cells.empty:
        return []
    _style()
    c = cells.copy()
    c["series"] = _label(c)
    if c["level"].notna().all():
        col, xlabel = "level", "treatment level"
    else:  # categorical treatment: label columns by the level text (shortened)
        c["condition"] = c["key"].astype(str).map(
            lambda k: "|".join(p.split("=", 1)[-1][:28] for p in k.split("|")))
        col, xlabel = "condition", "condition"
    piv = c.pivot_table(index="series", columns=col, values="abs_error", aggfunc="mean")
    if piv.empty:
        return []
    width = 1.0 + (0.6 if col == "level" else 2.2) * piv.shape[1]
    fig, ax = plt.subplots(figsize=(max(width, 4.5), 1.2 + 0.5 * piv.shape[0]))
    sns.heatmap(piv, annot=True, fmt=".2f", cmap="cividis", ax=ax, cbar_kws={"label": "MAE"})
    ax.tick_params(axis="y", labelrotation=0)  # design names side by side, not run together
    ax.tick_params(axis="x", labelrotation=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("")
    ax.set_title("Per-cell absolute error vs humans")
    return _save(fig, out_dir, name)


def ranking_figure(ranking: pd.DataFrame, out_dir: Path, name: str = "design_ranking") -> list[Path]:
    """Designs by MAE vs humans with bootstrap-over-units intervals."""
    if ranking is None or ranking.empty:
        return []
    pal = _style()
    r = ranking.copy()
    r["series"] = _label(r)
    r = r.sort_values("mae", ascending=False)
    fig, ax = plt.subplots(figsize=(6, 0.8 + 0.45 * len(r)))
    y = np.arange(len(r))
    ax.errorbar(r["mae"], y, xerr=[r["mae"] - r["mae_ci_low"], r["mae_ci_high"] - r["mae"]],
                fmt="o", color=pal[0], capsize=3)
    ax.set_yticks(y, r["series"])
    ax.set_xlabel("MAE per cell vs humans (95% CI, bootstrap over units)")
    ax.set_title("Design ranking")
    return _save(fig, out_dir, name)


def range_figure(cells: pd.DataFrame, out_dir: Path, name: str = "range") -> list[Path]:
    """Split-range vs full-range answers by level (pooled over units)."""
    if cells is None or cells.empty:
        return []
    pal = _style()
    pairs = cells[["design", "full_design"]].drop_duplicates().itertuples(index=False)
    pairs = list(pairs)
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.2 * len(pairs), 4.3), squeeze=False)
    for ax, (design, full) in zip(axes[0], pairs):
        c = cells[(cells["design"] == design) & (cells["full_design"] == full)]
        m = c.groupby("level", as_index=False)[["y_split", "y_full"]].mean()
        ax.plot(m["level"], m["y_full"], marker="o", color=pal[0], label=f"{full} (full range)")
        ax.plot(m["level"], m["y_split"], marker="s", ls="--", color=pal[1],
                label=f"{design} (split)")
        ax.set_xlabel("treatment level")
        ax.set_ylabel("mean answer")
        ax.set_title(f"Range sensitivity: {design}")
        ax.legend(frameon=False, fontsize=9)
    return _save(fig, out_dir, name)
