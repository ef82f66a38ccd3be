"""Interactive plotly figures: the paper's Figure 4 (sampled gradients), statistics against r', and the
paper's Figures 3 and 5 (accuracy, ASR and L2 over training and test dropout rates) as heatmaps.

Every function returns a ``plotly.graph_objects.Figure`` (or a list of them) and draws nothing itself; put
them on a page with :func:`analysis.html.write_page`. Non-finite values (an ``inf`` SNR of a deterministic
defender, a missing cell) are passed to plotly as gaps.
"""
from __future__ import annotations

import math
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
    """One panel per statistic: each defender strategy at (statistic, ASR), one color per attacker, with
    both intervals; Spearman's rho per attacker in the hover and the relation table."""
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
                err_y = dict(error_y=dict(type="data", symmetric=False, array=_finite(g["asr_high"] - g["asr"]),
                                          arrayminus=_finite(g["asr"] - g["asr_low"])))
            fig.add_trace(go.Scatter(
                x=_finite(x), y=_finite(g["asr"]), mode="markers+text", text=list(g["defender"]),
                textposition="top center", textfont=dict(size=9), marker=dict(color=COLORS[g_i % len(COLORS)], size=9),
                name=name, legendgroup=name, showlegend=i == 0, **err_x, **err_y,
                hovertemplate=f"{name}<br>%{{text}}<br>{stat} %{{x:.3g}}<br>ASR %{{y:.3f}}<br>{rho_text}"
                              "<extra></extra>",
            ), row=row, col=col)
        if stat.startswith("var"):
            fig.update_xaxes(type="log", row=row, col=col)
    fig.update_yaxes(title_text="attack success rate", col=1)
    fig.update_layout(title="Gradient statistics against ASR over defender strategies",
                      height=340 * rows + 120)
    return fig


# --------------------------------------------------------------------------- Figures 3 and 5
HEATMAP_METRICS = (
    ("clean_accuracy", "test accuracy", "Viridis", ".3f"),
    ("asr", "attack success rate", "Reds", ".2f"),
    ("l2_mean", "L2 of successful adversarial distortions (mean)", "Blues", ".2f"),
)
_NEEDED = ("attacker", "defense", "defender", "train_dropout", "test_dropout", "asr", "clean_accuracy", "l2_mean")


def _cell_label(row: pd.Series) -> str:
    if row["defense"] == "sap":
        return str(row["defender"])
    return f"{float(row['test_dropout']):g}"


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


def figure_accuracy_asr_l2_heatmaps(payoff_df: pd.DataFrame) -> list[go.Figure]:
    """The paper's Figures 3 (MNIST) and 5 (CIFAR-10) as heatmaps, one figure per attacker.

    Three panels: test accuracy, ASR and mean L2 distortion, each over training dropout rate r (rows; a model
    without one, e.g. the user's own, is a row named by its label) and test dropout rate r' (columns; r' = 0 is
    the undefended model). ASR uses a fixed 0..1 color scale, accuracy and
    L2 scale to their data so small differences show. SAP defenders, where present, are extra columns
    on the right (the paper's Table 2). Hover shows the 95% intervals and the number of attacks; cells that
    hold several payoff rows (e.g. several seeds) show their mean.
    """
    missing = [c for c in _NEEDED if c not in payoff_df.columns]
    if missing:
        raise DefdropError(f"payoff table lacks column(s) {', '.join(missing)}")
    df = payoff_df[payoff_df["defense"].isin(["none", "dropout", "sap"])].copy()
    if df.empty:
        raise DefdropError("payoff table has no none/dropout/sap rows to draw")
    df["_col"] = df.apply(_cell_label, axis=1)
    df["_row"] = _row_names(df)
    by_rate = df.drop_duplicates("_row").set_index("_row")["train_dropout"].astype(float)
    figs: list[go.Figure] = []
    for attacker, g in df.groupby("attacker", sort=True):
        drop_cols = sorted({float(c) for c in g.loc[g["defense"] != "sap", "_col"]})
        columns = [f"{c:g}" for c in drop_cols] + sorted(set(g.loc[g["defense"] == "sap", "_col"]))
        rows = sorted(g["_row"].unique(), key=lambda name: (not np.isfinite(by_rate[name]),
                                                            by_rate[name] if np.isfinite(by_rate[name]) else 0, name))
        fig = make_subplots(rows=1, cols=len(HEATMAP_METRICS), horizontal_spacing=0.09,
                            subplot_titles=[m[1] for m in HEATMAP_METRICS])
        for i, (metric, title, scale, fmt) in enumerate(HEATMAP_METRICS):
            cells = g.groupby(["_row", "_col"])
            z = np.full((len(rows), len(columns)), np.nan)
            text = np.full((len(rows), len(columns)), "", dtype=object)
            for (r, c), cell in cells:
                ri, ci = rows.index(r), columns.index(c)
                value = float(cell[metric].mean())
                z[ri, ci] = value
                where = f"defender {c}" if cell["defense"].iloc[0] == "sap" else f"r' = {c}"
                parts = [f"{'r = ' if np.isfinite(by_rate[r]) else 'model '}{r}, {where}",
                         f"{title}: {value:{fmt}}" if math.isfinite(value) else f"{title}: -"]
                low, high = f"{metric}_low", f"{metric}_high"
                if low in cell and high in cell and cell[low].notna().all():
                    parts[-1] += f" [{float(cell[low].mean()):{fmt}}, {float(cell[high].mean()):{fmt}}]"
                if "n_attacks" in cell and metric != "clean_accuracy":
                    parts.append(f"attacks: {int(cell['n_attacks'].sum())}")
                if len(cell) > 1:
                    parts.append(f"mean of {len(cell)} payoff rows")
                text[ri, ci] = "<br>".join(parts)
            domain = fig.layout[f"xaxis{'' if i == 0 else i + 1}"].domain
            fig.add_trace(go.Heatmap(
                z=[_finite(r) for r in z], x=columns, y=rows, colorscale=scale,
                text=text.tolist(), hovertemplate="%{text}<extra></extra>", texttemplate=f"%{{z:{fmt}}}",
                colorbar=dict(x=domain[1] + 0.005, len=0.8, thickness=12, title=dict(text="")),
                zmin=0 if metric == "asr" else None, zmax=1 if metric == "asr" else None,
                xgap=1, ygap=1), row=1, col=i + 1)
            fig.update_xaxes(type="category", title_text="test dropout r'", row=1, col=i + 1)
            fig.update_yaxes(type="category", row=1, col=i + 1)
        fig.update_yaxes(title_text="train dropout r" if all(np.isfinite(by_rate[r]) for r in rows) else "model",
                         col=1)
        fig.update_layout(title=f"Accuracy, ASR and L2 over (r, r'): attacker {attacker}", height=420)
        figs.append(fig)
    return figs
