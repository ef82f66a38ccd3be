"""The gradient-variance page (paper section 3.3, Figure 4): figures, the statistics table and the paper's claims
checked, on one self-contained HTML page. The numbers come from :mod:`analysis.gradvar`; the pictures from
:mod:`analysis.figures`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from analysis.formatting import display_table
from analysis.gradvar import GradVarResult, paper_checks, summary_table, variance_asr_relation
from analysis.verdicts import level_text
from gameplay.images import ImageData
from payoffs.errors import DefdropError


def write_gradvar_html(result: GradVarResult, path: str | Path, payoff_df: pd.DataFrame | None = None,
                       image: int = 0, title: str = "Gradient variance of defensive dropout vs SAP",
                       images: ImageData | None = None, *, plotly: str = "inline", png: bool = False,
                       log: Callable[[str], None] | None = None) -> Path:
    """Write the self-contained analysis page: Figure 4 (for input ``image``), statistics against r', the table,
    the paper checks and, given a payoff table (and optionally its per-image data ``images``), Figures 3/5 and
    the statistic-ASR relation. ``plotly``, ``png``, ``log``: as :func:`analysis.html.write_page`."""
    from analysis import figures
    from analysis.html import write_page

    n = len(result.dims)
    if not 0 <= image < n:
        raise DefdropError(f"image {image} out of range; the result holds {n} images")
    label = int(result.true_labels[image])
    who = f"label {label}, " if label >= 0 else ""
    name = result.model_label or (f"r={result.train_dropout:g}" if result.train_dropout is not None else "model")
    rate = (f", trained with dropout r = {result.train_dropout:g}"
            if result.train_dropout is not None and f"{result.train_dropout:g}" not in name else "")
    blocks: list = [
        f"Model: {name}{rate}, weights `{result.model}`"
        + (f", defense after layer `{result.slot}`" if result.slot else "") + f". {n} inputs (the first test "
        f"images the undefended model classifies correctly), target class t = (label + 1) mod "
        f"{result.num_classes}. "
        f"S = {result.samples} gradients of the C&W objective f (kappa = {result.kappa:g}) per input and defender, "
        f"each on a fresh defender sample, taken at the attack's starting point x. "
        f"D = {result.dims.shape[1]} dimensions chosen by {result.dim_selection}"
        + (" (largest |grad f| of the undefended model on that input)" if result.dim_selection == "magnitude"
           else f" (random, seed {result.seed})") + ", the same for every defender.",
        f"## Figure 4: sampled gradients on input {image} ({who}target {int(result.targets[image])})",
        "One panel per defender strategy; per chosen dimension, a histogram of the S sampled gradient values "
        "with a Gaussian kernel density fit. Axes are shared, so widths compare directly: the paper expects "
        "shorter, fatter densities as r' grows and narrow ones for SAP. Click a legend entry to hide a dimension.",
        figures.figure_gradient_densities(result, image=image),
        "## Statistics against the test dropout rate r'",
        f"Means over the {n} inputs with {result.interval}; SAP as a horizontal reference (dashed, band = its "
        "interval).",
        figures.figure_statistics_vs_rate(result),
        "## Does the paper's explanation hold here?",
        "\n".join(f"- **{c.verdict}**: {c.claim}. {c.detail}" for c in paper_checks(result))
        or "No dropout strategies to compare.",
        "## Statistics table",
        f"Mean over the {n} inputs [{result.interval}].",
        summary_table(result),
    ]
    if payoff_df is not None:
        relation = variance_asr_relation(result.table, payoff_df, per_image=result.per_image, images=images)
        blocks += [
            "## Gradient statistics against attack success rate",
            f"Spearman rank correlation over the defender strategies, with a {level_text()} interval (a bootstrap "
            "over images: the gradient images resampled jointly across strategies; the ASRs paired over the "
            "payoff table's images where its per-image data is given, otherwise redrawn within their standard "
            "errors) and a permutation p-value. Across dropout rates r' drives both variance and ASR, so SAP is "
            "the telling point: does it sit where its variance says?",
            figures.figure_statistic_vs_asr(relation),
            display_table(relation.table),
            "## Figures 3 and 5: accuracy, ASR and L2 over (train rate r, test rate r')",
            *figures.figure_accuracy_asr_l2_heatmaps(payoff_df),
        ]
    return write_page(path, title, blocks, plotly=plotly, png=png, log=log)
