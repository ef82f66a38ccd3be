"""Interactive plotly figures: the paper's Figure 4 (sampled gradients), statistics against r', and the
paper's Figures 3 and 5 (accuracy, ASR and L2 over training and test dropout rates) as heatmaps.

Every function returns a ``plotly.graph_objects.Figure`` (or a list of them) and draws nothing itself; put
them on a page with :func:`analysis.html.write_page`. Non-finite values (an ``inf`` SNR of a deterministic
defender, a missing cell) are passed to plotly as gaps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from scipy import stats as sps

from analysis.gradvar import STAT_LABELS, GradVarResult, VarianceAsrRelation
from payoffs.errors import DefdropError

COLORS = qualitative.Plotly + qualitative.D3
BINS = 30


def _finite(values: Sequence[float]) -> list[float | None]:
    return [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


# --------------------------------------------------------------------------- Figure 4
def figure_gradient_densities(result: GradVarResult, image: int = 0, bins: int = BINS) -> go.Figure:
    """The paper's Figure 4, interactive: one panel per defender strategy, for each of the D chosen dims a
    histogram of the S sampled ``d f / d x_j`` (probability density) and a Gaussian-KDE fit (Scott's bandwidth).

    All panels share both axes and one set of bins, so widths and heights compare at a glance. Legend entries
    (one per dimension) toggle that dimension in every panel. A constant sample (a deterministic defender) is
    drawn as its single bar, without a density curve.
    """
    vals = result.values[image]  # (K, S, D)
    k_count, _, d_count = vals.shape
    lo, hi = float(vals.min()), float(vals.max())
    pad = max(hi - lo, abs(hi), 1e-12) * 0.05
    lo, hi = lo - pad, hi + pad
    size = (hi - lo) / bins
    edges = lo + size * np.arange(bins + 1)
    grid = np.linspace(lo, hi, 200)

    cols = min(3, k_count)
    rows = math.ceil(k_count / cols)
    per_image = result.per_image[result.per_image["image"] == image].set_index("defender")
    titles = [f"{label}  (var {per_image.loc[label, 'var_chosen']:.2g})" for label in result.labels]
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes="all", shared_yaxes="all", subplot_titles=titles,
                        horizontal_spacing=0.04, vertical_spacing=0.12 if rows > 1 else 0.1)
    ymax = 0.0
    for k in range(k_count):
        row, col = k // cols + 1, k % cols + 1
        for j in range(d_count):
            v = vals[k, :, j]
            color = COLORS[j % len(COLORS)]
            name = result.dim_name(result.dims[image, j])
            density, _ = np.histogram(v, bins=edges, density=True)
            ymax = max(ymax, float(density.max()))
            fig.add_trace(go.Histogram(
                x=v, xbins=dict(start=lo, end=hi, size=size), histnorm="probability density",
                marker_color=color, opacity=0.4, name=name, legendgroup=name, showlegend=k == 0,
                hovertemplate=f"{name}<br>{result.labels[k]}<br>df/dx in %{{x}}<br>density %{{y:.3g}}<extra></extra>",
            ), row=row, col=col)
            if np.ptp(v) > 0 and np.unique(v).size > 1:
                try:
                    curve = sps.gaussian_kde(v)(grid)
                except np.linalg.LinAlgError:
                    continue
                ymax = max(ymax, float(curve.max()))
                fig.add_trace(go.Scatter(
                    x=grid, y=curve, mode="lines", line=dict(color=color, width=2), name=name, legendgroup=name,
                    showlegend=False, hovertemplate=f"{name} KDE<br>%{{x:.3g}}: %{{y:.3g}}<extra></extra>",
                ), row=row, col=col)
    label = int(result.true_labels[image])
    fig.update_layout(
        title=f"Sampled gradients of the C&W objective on input {image}"
              + (f" (label {label}" if label >= 0 else " (") + f", target {int(result.targets[image])}), "
              f"S = {result.samples} per panel, D = {d_count} dims chosen by {result.dim_selection}",
        barmode="overlay", height=300 * rows + 140, legend=dict(title="dimension"), bargap=0.02,
        margin=dict(t=110))
    fig.update_yaxes(range=[0, ymax * 1.05])
    fig.update_yaxes(title_text="density", col=1)
    fig.update_xaxes(title_text="df/dx_j", row=rows)
    return fig


# --------------------------------------------------------------------------- statistics against r'
def figure_statistics_vs_rate(result: GradVarResult,
                              statistics: Sequence[str] = ("var", "snr", "cos", "kurt")) -> go.Figure:
    """Each statistic (mean over inputs, 95% interval bars) against the test dropout rate r', over the D chosen
    dims (solid) and all dims (dotted); each SAP variant is a dashed horizontal reference with its interval as a
    band. Variance uses a log axis (so r' = 0, variance 0, is not drawn there); the leave-one-out SNR, which is
    about 0 or below for noise-dominated gradients, a linear one (its inf at r' = 0 is not drawn)."""
    t = result.table
    drop = t[t["defense"].isin(["none", "dropout"])].sort_values("test_dropout")
    refs = t[~t["defense"].isin(["none", "dropout"])]
    rates = drop["test_dropout"].to_numpy(float)
    x0, x1 = (float(rates.min()), float(rates.max())) if rates.size else (0.0, 1.0)
    names = {"var": "variance", "snr": "SNR (leave-one-out)", "cos": "cos(g, mean of the others)",
             "kurt": "excess kurtosis"}
    cols = 2
    rows = math.ceil(len(statistics) / cols)
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes=True, horizontal_spacing=0.1, vertical_spacing=0.12,
                        subplot_titles=[names.get(s, s) for s in statistics])
    for i, stat in enumerate(statistics):
        row, col = i // cols + 1, i % cols + 1
        for scope, dash, color in (("chosen", "solid", COLORS[0]), ("all", "dot", COLORS[1])):
            col_name = f"{stat}_{scope}"
            mean = drop[col_name].to_numpy(float)
            fig.add_trace(go.Scatter(
                x=rates, y=_finite(mean), mode="lines+markers", line=dict(dash=dash, color=color),
                name=f"dropout, {'D chosen dims' if scope == 'chosen' else 'all dims'}",
                legendgroup=f"drop-{scope}", showlegend=i == 0,
                error_y=dict(type="data", symmetric=False, array=_finite(drop[f"{col_name}_high"] - mean),
                             arrayminus=_finite(mean - drop[f"{col_name}_low"])),
                customdata=np.stack([drop["defender"], _finite(drop[f"{col_name}_low"]),
                                     _finite(drop[f"{col_name}_high"])], axis=-1) if len(drop) else None,
                hovertemplate="%{customdata[0]}<br>%{y:.3g} [%{customdata[1]:.3g}, %{customdata[2]:.3g}]"
                              "<extra></extra>",
            ), row=row, col=col)
            for r_i, (_, ref) in enumerate(refs.iterrows()):
                ref_color = COLORS[(2 + r_i) % len(COLORS)]
                value, low, high = (ref[col_name], ref[f"{col_name}_low"], ref[f"{col_name}_high"])
                group = f"ref-{ref['defender']}-{scope}"
                if all(math.isfinite(v) for v in (low, high)):
                    fig.add_trace(go.Scatter(
                        x=[x0, x1, x1, x0], y=[low, low, high, high], fill="toself", mode="lines",
                        line=dict(width=0), fillcolor=_rgba(ref_color, 0.12), hoverinfo="skip",
                        legendgroup=group, showlegend=False), row=row, col=col)
                fig.add_trace(go.Scatter(
                    x=[x0, x1], y=_finite([value, value]), mode="lines",
                    line=dict(color=ref_color, dash="dash" if scope == "chosen" else "dashdot"),
                    name=f"{ref['defender']}, {'D chosen dims' if scope == 'chosen' else 'all dims'}",
                    legendgroup=group, showlegend=i == 0,
                    hovertemplate=f"{ref['defender']} ({scope})<br>{value:.3g} [{low:.3g}, {high:.3g}]<extra></extra>",
                ), row=row, col=col)
        if stat == "var":
            fig.update_yaxes(type="log", row=row, col=col)
    fig.update_xaxes(title_text="test dropout rate r'", row=rows)
    fig.update_layout(title=f"Gradient statistics against r' (mean over {len(result.dims)} inputs, "
                            f"{result.interval})", height=330 * rows + 120, hovermode="closest")
    return fig


# --------------------------------------------------------------------------- statistic against ASR
def figure_statistic_vs_asr(relation: VarianceAsrRelation) -> go.Figure:
    """One panel per statistic: each defender strategy at (statistic, ASR in percent on 0-100%), one color per
    attacker, with both intervals; Spearman's rho per attacker in the hover and the relation table."""
    pts = relation.points
    stats = list(relation.statistics)
    cols = min(3, len(stats))
    rows = math.ceil(len(stats) / cols)
    fig = make_subplots(rows=rows, cols=cols, shared_yaxes=True, horizontal_spacing=0.06,
                        vertical_spacing=0.16, subplot_titles=[STAT_LABELS.get(s, s) for s in stats])
    groups = [c for c in ("attacker", "model") if c in pts and c in relation.table]
    for i, stat in enumerate(stats):
        row, col = i // cols + 1, i % cols + 1
        for g_i, (key, g) in enumerate(pts.groupby(groups, sort=True)):
            key = key if isinstance(key, tuple) else (key,)
            name = " / ".join(str(k) for k in key)
            rel = relation.table
            mask = (rel["statistic"] == stat)
            for c, v in zip(groups, key):
                mask &= rel[c] == v
            rho = rel.loc[mask].iloc[0] if mask.any() else None
            rho_text = "" if rho is None else (f"rho {rho['rho']:.2f} [{rho['rho_low']:.2f}, {rho['rho_high']:.2f}], "
                                               f"p {rho['p_value']:.3g}")
            x = g[stat].to_numpy(float)
            err_x = {}
            if f"{stat}_low" in g:
                err_x = dict(error_x=dict(type="data", symmetric=False, array=_finite(g[f"{stat}_high"] - x),
                                          arrayminus=_finite(x - g[f"{stat}_low"])))
            err_y = {}
            if "asr_low" in g:
                err_y = dict(error_y=dict(type="data", symmetric=False,
                                          array=_finite(100 * (g["asr_high"] - g["asr"])),
                                          arrayminus=_finite(100 * (g["asr"] - g["asr_low"]))))
            fig.add_trace(go.Scatter(
                x=_finite(x), y=_finite(100 * g["asr"]), mode="markers+text", text=list(g["defender"]),
                textposition="top center", textfont=dict(size=9), marker=dict(color=COLORS[g_i % len(COLORS)], size=9),
                name=name, legendgroup=name, showlegend=i == 0, **err_x, **err_y,
                hovertemplate=f"{name}<br>%{{text}}<br>{stat} %{{x:.3g}}<br>ASR %{{y:.3g}}%<br>{rho_text}"
                              "<extra></extra>",
            ), row=row, col=col)
        if stat.startswith("var"):
            fig.update_xaxes(type="log", row=row, col=col)
    fig.update_yaxes(range=[RATE_RANGE[0] - 3, RATE_RANGE[1] + 3], dtick=20, ticksuffix="%")
    fig.update_yaxes(title_text="attack success rate (%)", col=1)
    fig.update_layout(title="Gradient statistics against ASR over defender strategies",
                      height=340 * rows + 120)
    return fig


# --------------------------------------------------------------------------- Figures 3 and 5
RATE_RANGE = (0.0, 100.0)
"""Every rate (accuracy, ASR) is drawn in percent on this one fixed colour/axis range, so equal colours mean equal
rates in every figure (an auto-scaled 86.5% vs 90.9% would be black vs yellow)."""
NOT_RUN = "not run"
"""Cell text of a (model, defender) pair the payoff table has no row for."""
NO_SUCCESS = "no success"
"""Cell text of an L2 cell whose attacks all failed: there is no distortion to average."""
RATE_DEFENSES = ("none", "dropout")
"""Defenses placed on the numeric r' axis (``none`` is r' = 0); every other defense (SAP, ...) is drawn in its
own column group, named by its defender id."""


@dataclass(frozen=True)
class HeatmapMetric:
    column: str
    title: str
    colorscale: str
    percent: bool  # a rate: drawn x 100 on RATE_RANGE; otherwise 0 to the table's largest value


HEATMAP_METRICS = (
    HeatmapMetric("clean_accuracy", "test accuracy (%)", "Viridis", True),
    HeatmapMetric("asr", "attack success rate (%)", "Reds", True),
    HeatmapMetric("l2_mean", "mean L2 of successful adversarial distortions", "Blues", False),
)
_NEEDED = ("attacker", "defense", "defender", "train_dropout", "test_dropout", "asr", "clean_accuracy", "l2_mean")


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.5, 2, 2.5, ... 10 times a power of ten that is >= ``value`` (1 for no positive value)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(value))
    return math.ceil(round(value / base * 2, 9)) / 2 * base


def _defender_id(row: pd.Series) -> str:
    """The defender's id without a multi-model table's ``<model label>/`` prefix."""
    label = str(row["defender"])
    model = row.get("model_label")
    if isinstance(model, str) and model and label.startswith(f"{model}/"):
        return label[len(model) + 1:]
    return label


def _row_names(df: pd.DataFrame) -> list[str]:
    """A heatmap row per model: its training rate r (``0.3``) where it has one, else its label (or hash)."""
    labels = df["model_label"] if "model_label" in df else pd.Series("", index=df.index)
    models = df["model"] if "model" in df else pd.Series("model", index=df.index)
    out = []
    for r, label, model in zip(df["train_dropout"].astype(float), labels, models):
        if np.isfinite(r):
            out.append(f"{r:g}")
        else:
            out.append(str(label) if isinstance(label, str) and label.strip() else str(model)[:12])
    return out


def _fmt_value(value: float, metric: HeatmapMetric) -> str:
    return f"{value:.3g}%" if metric.percent else f"{value:.3g}"


def _heatmap_cells(g: pd.DataFrame, rows: list[str], columns: list[str], metric: HeatmapMetric,
                   by_rate: pd.Series) -> tuple[list[list[float | None]], list[list[str]], list[list[str]]]:
    """(z, cell text, hover text) of one metric over ``rows`` x ``columns``; a rate in percent."""
    scale = 100.0 if metric.percent else 1.0
    z = np.full((len(rows), len(columns)), np.nan)
    text = np.full((len(rows), len(columns)), NOT_RUN, dtype=object)
    hover = np.empty((len(rows), len(columns)), dtype=object)
    for ri, r in enumerate(rows):
        for ci, c in enumerate(columns):
            hover[ri, ci] = f"{'r = ' if np.isfinite(by_rate[r]) else 'model '}{r}, {c}<br>not run (no payoff row)"
    for (r, c), cell in g[g["_col"].isin(columns)].groupby(["_row", "_col"]):
        ri, ci = rows.index(r), columns.index(c)
        value = float(cell[metric.column].mean()) * scale
        where = f"r' = {c}" if cell["defense"].iloc[0] in RATE_DEFENSES else f"defender {c}"
        parts = [f"{'r = ' if np.isfinite(by_rate[r]) else 'model '}{r}, {where}"]
        if math.isfinite(value):
            z[ri, ci] = value
            text[ri, ci] = _fmt_value(value, metric)
            line = f"{metric.title}: {text[ri, ci]}"
            low, high = f"{metric.column}_low", f"{metric.column}_high"
            if low in cell and high in cell and cell[low].notna().all() and cell[high].notna().all():
                line += (f" [{_fmt_value(float(cell[low].mean()) * scale, metric)}, "
                         f"{_fmt_value(float(cell[high].mean()) * scale, metric)}]")
            parts.append(line)
        else:
            text[ri, ci] = NO_SUCCESS if metric.column == "l2_mean" else "n/a"
            parts.append(f"{metric.title}: " + ("no successful attack, so no distortion to average"
                                                 if metric.column == "l2_mean" else "no value"))
        if "n_attacks" in cell and metric.column != "clean_accuracy":
            parts.append(f"attacks: {int(cell['n_attacks'].sum())}")
        if len(cell) > 1:
            parts.append(f"mean of {len(cell)} payoff rows")
        hover[ri, ci] = "<br>".join(parts)
    return [_finite(row) for row in z], text.tolist(), hover.tolist()


def _heatmap_domains(widths: Sequence[float], blocks: int, gap: float = 0.085, inner: float = 0.012,
                     right: float = 0.05) -> list[list[list[float]]]:
    """x domains of ``blocks`` metric blocks, each split into panels in proportion to ``widths``; ``gap`` after
    each block holds its colour bar (``right`` after the last)."""
    block = (1.0 - right - gap * (blocks - 1)) / blocks
    usable = block - inner * (len(widths) - 1)
    out = []
    for b in range(blocks):
        x = b * (block + gap)
        panels = []
        for w in widths:
            size = usable * w / sum(widths)
            panels.append([x, x + size])
            x += size + inner
        out.append(panels)
    return out


def figure_accuracy_asr_l2_heatmaps(payoff_df: pd.DataFrame) -> list[go.Figure]:
    """The paper's Figures 3 (MNIST) and 5 (CIFAR-10) as heatmaps, one figure per attacker.

    Three metrics: test accuracy, ASR and mean L2 distortion, each over training dropout rate r (rows; a model
    without one, e.g. the user's own, is a row named by its label) and test dropout rate r' (columns; r' = 0 is
    the undefended model). Defenders without a rate (SAP, any defense other than dropout) sit in a panel of their
    own to the right of each metric's r' panel, named by their defender id, never on the r' axis (the paper's
    Table 2).

    Colour scales are fixed: accuracy and ASR in percent on 0-100% (:data:`RATE_RANGE`) in every figure; L2 from 0
    to the largest mean L2 of the whole table passed (rounded up, :func:`nice_ceiling`; the same for every
    attacker's figure, and named in its colour bar). A (model, defender) pair without a payoff row reads
    "not run"; an L2 cell whose attacks all failed reads "no success". Hover shows the 95% intervals and the
    number of attacks; cells that hold several payoff rows (e.g. several seeds) show their mean.
    """
    missing = [c for c in _NEEDED if c not in payoff_df.columns]
    if missing:
        raise DefdropError(f"payoff table lacks column(s) {', '.join(missing)}")
    df = payoff_df.copy()
    if df.empty:
        raise DefdropError("payoff table has no rows to draw")
    rated = df["defense"].isin(RATE_DEFENSES).to_numpy()
    ids = [_defender_id(row) for _, row in df.iterrows()]
    df["_col"] = [f"{float(rate):g}" if is_rate else label
                  for is_rate, rate, label in zip(rated, df["test_dropout"], ids)]
    df["_row"] = _row_names(df)
    by_rate = df.drop_duplicates("_row").set_index("_row")["train_dropout"].astype(float)
    l2_max = nice_ceiling(float(np.nanmax(df["l2_mean"].to_numpy(float), initial=0.0,
                                          where=np.isfinite(df["l2_mean"].to_numpy(float)))))
    ranges = {m.column: RATE_RANGE if m.percent else (0.0, l2_max) for m in HEATMAP_METRICS}
    figs: list[go.Figure] = []
    for attacker, g in df.groupby("attacker", sort=True):
        is_rate = g["defense"].isin(RATE_DEFENSES)
        rate_cols = [f"{c:g}" for c in sorted({float(c) for c in g.loc[is_rate, "_col"]})]
        other_cols = sorted(set(g.loc[~is_rate, "_col"]))
        rows = sorted(g["_row"].unique(), key=lambda name: (not np.isfinite(by_rate[name]),
                                                            by_rate[name] if np.isfinite(by_rate[name]) else 0, name))
        groups = [cols for cols in (rate_cols, other_cols) if cols]
        per_metric = len(groups)
        domains = _heatmap_domains([max(len(cols), 1.2) for cols in groups], len(HEATMAP_METRICS))
        fig = make_subplots(rows=1, cols=per_metric * len(HEATMAP_METRICS), shared_yaxes=True)
        for i, metric in enumerate(HEATMAP_METRICS):
            axis = "coloraxis" if i == 0 else f"coloraxis{i + 1}"
            for k, cols in enumerate(groups):
                col = i * per_metric + k + 1
                z, text, hover = _heatmap_cells(g, rows, cols, metric, by_rate)
                gaps = [(ri, ci) for ri, row in enumerate(z) for ci, v in enumerate(row) if v is None]
                fig.add_trace(go.Heatmap(
                    z=z, x=cols, y=rows, coloraxis=axis, text=[["" if v is None else t for v, t in zip(zr, tr)]
                                                               for zr, tr in zip(z, text)],
                    texttemplate="%{text}", textfont={"size": 10}, customdata=hover,
                    hovertemplate="%{customdata}<extra></extra>", hoverongaps=False,
                    xgap=1, ygap=1, name=metric.column), row=1, col=col)
                if gaps:  # plotly draws no text on a gap, nor anything for an all-gap trace: label them here
                    fig.add_trace(go.Scatter(
                        x=[cols[ci] for _, ci in gaps], y=[rows[ri] for ri, _ in gaps], mode="text",
                        text=[text[ri][ci] for ri, ci in gaps], textfont={"size": 10, "color": "#555"},
                        customdata=[hover[ri][ci] for ri, ci in gaps], hovertemplate="%{customdata}<extra></extra>",
                        name=f"{metric.column}: no value", showlegend=False), row=1, col=col)
                rate_group = cols is rate_cols
                fig.update_xaxes(type="category", categoryorder="array", categoryarray=cols, row=1, col=col,
                                 domain=domains[i][k], showgrid=False,
                                 title_text="test dropout r'" if rate_group else "other defenders",
                                 tickangle=0 if rate_group else -30)
                fig.update_yaxes(type="category", categoryorder="array", categoryarray=rows, row=1, col=col,
                                 showgrid=False)
            start, end = domains[i][0][0], domains[i][-1][1]
            fig.add_annotation(text=metric.title, x=(start + end) / 2, y=1.0, xref="paper", yref="paper",
                               xanchor="center", yanchor="bottom", showarrow=False, font={"size": 15})
            low, high = ranges[metric.column]
            fig.update_layout({axis: dict(
                colorscale=metric.colorscale, cmin=low, cmax=high,
                colorbar=dict(x=end + 0.006, xanchor="left", len=0.85, thickness=12,
                              ticksuffix="%" if metric.percent else "",
                              title=dict(text="" if metric.percent else "L2", side="top")))})
        fig.update_yaxes(title_text="train dropout r" if all(np.isfinite(by_rate[r]) for r in rows) else "model",
                         col=1)
        fig.update_layout(title=f"Accuracy, ASR and L2 over (r, r'): attacker {attacker}", height=440,
                          plot_bgcolor="#eeeeee", margin=dict(b=110))
        figs.append(fig)
    return figs
