"""The report's own figures: results by condition, drawn from `conditions.py`'s frames.

- Means (or shares of the first label) by condition with their intervals, one small panel
  per design x model on a shared y axis (small multiples instead of one tangle of lines);
  a factorial is drawn as an interaction plot (first treatment on x, one line per level of
  the second); a numeric treatment with more than two levels as a line with its band.
- Human numbers, when the study has a baseline, in black beside the simulated ones (a
  diamond with its interval, or a black line), so "simulated vs human" is read per cell.
- Categorical outcomes: the share choosing each option per condition, options side by side.

Colours are Okabe & Ito's colour-blind-safe palette, every series also has its own marker;
tick labels are wrapped (never rotated into each other). Each figure is written as PNG (for
the self-contained HTML) and SVG. matplotlib is imported inside the functions (heavy).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
HUMAN = "#000000"
MAX_PANELS = 12
PANEL_W, PANEL_H = 3.9, 3.1


def wrap(text: str, width: int = 16, lines: int = 3) -> str:
    """A tick label on at most `lines` lines of `width` characters ("…" when cut)."""
    parts = textwrap.wrap(str(text), width) or [""]
    if len(parts) > lines:
        parts = parts[:lines]
        parts[-1] = parts[-1][: width - 1] + "…"
    return "\n".join(parts)


def label_width(ax, n: int) -> int:
    """Characters per tick-label line so `n` labels side by side do not run into each other
    (about 6 points per character at 9 pt)."""
    points = ax.get_position().width * ax.figure.get_figwidth() * 72
    return max(6, int(points / max(n, 1) / 6.2) - 1)


def _panels(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    keys = ["design", "model"] if frame["model"].nunique() > 1 else ["design"]
    out = []
    for key, g in frame.groupby(keys, sort=False):
        title = " · ".join(map(str, key if isinstance(key, tuple) else (key,)))
        out.append((title, g))
    return out[:MAX_PANELS]


def _grid(n: int, wide: bool = False, cols: int | None = None, share="all"):
    """A grid of `n` panels (`cols` per row, else up to 4), y shared across all panels or per
    row (`share="row"`: one unit per row when units differ in scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cols = cols or min(n, 2 if wide else 4)
    rows = int(np.ceil(n / cols))
    width = (PANEL_W * (1.6 if wide else 1)) * cols
    fig, axes = plt.subplots(rows, cols, figsize=(max(width, 4.8), PANEL_H * rows + 0.9), sharey=share, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes.flat:
        ax.grid(False, axis="x")
        ax.grid(axis="y", color="#dddddd", lw=0.8)
        ax.set_axisbelow(True)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(tick))
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, list(axes.flat[:n])


def tick(value: float, _pos=None) -> str:
    """An axis number a reader takes in at a glance: 2.5M, 45k, 1,500, 0.25 (no 1e7 offset)."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e4:
        return f"{value / 1e3:.3g}k"
    if a >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")  # keep the title and legend above the panels
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _err(g: pd.DataFrame, est: str, lo: str, hi: str) -> np.ndarray:
    """Error-bar half-widths; a missing interval draws no bar (never a zero-width one), and
    rounding (a Wilson bound of 5e-17 below a share of 0) never makes a negative one."""
    low = (g[est] - g[lo]).to_numpy(dtype=float)
    high = (g[hi] - g[est]).to_numpy(dtype=float)
    return np.clip(np.vstack([np.nan_to_num(low, nan=0.0), np.nan_to_num(high, nan=0.0)]), 0.0, None)


def _factors(g: pd.DataFrame) -> list[str]:
    return [c for c in g.columns if c.startswith("t:") and g[c].nunique() > 1]


def _numeric_levels(g: pd.DataFrame) -> bool:
    return "level" in g and g["level"].notna().all() and g["level"].nunique() > 2


def _condition_axis(ax, g: pd.DataFrame, order: list[str], hum: pd.DataFrame, ylab: str) -> bool:
    """Conditions on x: simulated points (blue) and humans (black diamonds) side by side."""
    x = np.array([order.index(c) for c in g["condition"]], dtype=float)
    ax.errorbar(
        x - 0.1 * (not hum.empty),
        g["mean"],
        yerr=_err(g, "mean", "ci_low", "ci_high"),
        fmt="o",
        color=OKABE_ITO[0],
        capsize=3,
        ms=6,
        label="simulated",
    )
    drew = False
    if not hum.empty:
        h = hum[hum["key"].isin(set(g["key"]))].drop_duplicates("key")
        keys = dict(zip(g["key"], g["condition"]))
        if len(h):
            hx = np.array([order.index(keys[k]) for k in h["key"]], dtype=float) + 0.1
            ax.errorbar(hx, h["human"], yerr=_err(h, "human", "human_ci_low", "human_ci_high"), fmt="D", color=HUMAN, capsize=3, ms=5, label="humans")
            drew = True
    ax.set_xticks(range(len(order)), [wrap(c, label_width(ax, len(order))) for c in order], fontsize=9)
    ax.set_xlim(-0.6, len(order) - 0.4)
    return drew


def _interaction_axis(ax, g: pd.DataFrame, factors: list[str]) -> None:
    """Factorial: the first treatment on x, one line per level of the second."""
    xf, sf = factors[0], factors[1]
    xs = list(dict.fromkeys(g[xf]))
    for i, (lev, s) in enumerate(g.groupby(sf, sort=False)):
        x = np.array([xs.index(v) for v in s[xf]], dtype=float) + (i - 0.5) * 0.08
        ax.errorbar(
            x,
            s["mean"],
            yerr=_err(s, "mean", "ci_low", "ci_high"),
            marker=MARKERS[i % 8],
            color=OKABE_ITO[i % 8],
            capsize=3,
            label=f"{sf[2:]} = {wrap(lev, 24, 1)}",
        )
    ax.set_xticks(range(len(xs)), [wrap(v, label_width(ax, len(xs))) for v in xs], fontsize=9)
    ax.set_xlabel(xf[2:])
    ax.set_xlim(-0.5, len(xs) - 0.5)


def _level_axis(ax, g: pd.DataFrame, hum: pd.DataFrame) -> bool:
    """A numeric treatment: the mean along its levels with the interval as a band."""
    s = g.sort_values("level")
    ax.plot(s["level"], s["mean"], marker="o", color=OKABE_ITO[0], label="simulated")
    ax.fill_between(s["level"], s["ci_low"], s["ci_high"], color=OKABE_ITO[0], alpha=0.18, lw=0)
    ax.set_xlabel("treatment level")
    h = hum[hum["key"].isin(set(g["key"]))] if not hum.empty else hum
    if h.empty:
        return False
    lv = dict(zip(g["key"], g["level"]))
    h = h.assign(level=h["key"].map(lv)).sort_values("level")
    ax.plot(h["level"], h["human"], marker="D", color=HUMAN, lw=1.6, label="humans")
    return True


def _unit_panels(d: pd.DataFrame) -> tuple[list[tuple[str, pd.DataFrame]], int]:
    """One row of panels per unit (design x model across): for a few units on different scales."""
    series = _panels(d)
    out = []
    for unit in dict.fromkeys(d["unit_id"]):
        out += [(f"{title} · {unit}", g[g["unit_id"] == unit]) for title, g in series]
    return out[: MAX_PANELS * 2], len(series)


def means_figure(sim: pd.DataFrame, hum: pd.DataFrame, outcome: str, ylabel: str, out_dir: Path, share: bool = False) -> list[Path]:
    """One outcome's means by condition, a panel per design (x model), or per design x unit
    when `sim` holds per-unit cells (``unit_id``); [] with no data."""
    d = sim[sim["outcome"] == outcome]
    if d.empty:
        return []
    h = hum[hum["outcome"] == outcome] if not hum.empty else hum
    order = list(dict.fromkeys(d["condition"]))
    per_unit = "unit_id" in d.columns
    if per_unit:
        panels, cols = _unit_panels(d)
        h = h.iloc[0:0]  # human cells are pooled: not drawn against single units
        fig, axes = _grid(len(panels), cols=cols, share="row")
    else:
        panels = _panels(d)
        many = len(order) > 3 and not _numeric_levels(d) and len(_factors(d)) < 2
        fig, axes = _grid(len(panels), wide=many)
    legend = _draw_panels(axes, panels, order, h, _factors(d), ylabel)
    for ax in axes[:: (cols if per_unit else len(axes))]:
        ax.set_ylabel(ylabel)
    if share:
        axes[0].set_ylim(-0.03, 1.03)
    if legend:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 4), frameon=False, bbox_to_anchor=(0.5, 1.0))
    by = " per unit" if per_unit else ""
    fig.suptitle(f"{outcome}: by condition{by} (95% intervals)", y=1.04 if legend else 1.0, fontsize=11)
    return _save(fig, out_dir, f"conditions_{outcome}")


def _draw_panels(axes, panels, order, h, factors, ylabel) -> bool:
    legend = False
    for ax, (title, g) in zip(axes, panels):
        if len(factors) >= 2:
            _interaction_axis(ax, g, factors)
            legend = True
        elif _numeric_levels(g):
            legend = _level_axis(ax, g, h) or legend
        else:
            legend = _condition_axis(ax, g, order, h, ylabel) or legend
        ax.set_title(wrap(title, 40, 2), fontsize=10)
    return legend


def shares_figure(sh: pd.DataFrame, outcome: str, out_dir: Path) -> list[Path]:
    """A categorical outcome: the share choosing each option per condition, a panel per design."""
    d = sh[sh["outcome"] == outcome]
    if d.empty:
        return []
    options = list(dict.fromkeys(d["option"]))
    order = list(dict.fromkeys(d["condition"]))
    panels = _panels(d)
    fig, axes = _grid(len(panels), wide=len(order) > 3)
    width = 0.8 / max(len(options), 1)
    for ax, (title, g) in zip(axes, panels):
        for i, opt in enumerate(options):
            s = g[g["option"] == opt]
            x = np.array([order.index(c) for c in s["condition"]], dtype=float) + (i - (len(options) - 1) / 2) * width
            ax.bar(x, s["share"], width=width * 0.9, color=OKABE_ITO[i % 8], label=wrap(opt, 30, 1))
            ax.errorbar(x, s["share"], yerr=_err(s, "share", "ci_low", "ci_high"), fmt="none", ecolor="#333333", capsize=2, lw=1)
        ax.set_xticks(range(len(order)), [wrap(c, label_width(ax, len(order))) for c in order], fontsize=9)
        ax.set_title(wrap(title, 40, 2), fontsize=10)
    axes[0].set_ylabel("share choosing the option")
    axes[0].set_ylim(0, 1.05)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 4), frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(f"{outcome}: share choosing each option (95% intervals)", y=1.05, fontsize=11)
    return _save(fig, out_dir, f"shares_{outcome}")
