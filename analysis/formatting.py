"""Numbers as a person reads them: the one formatter behind every human-facing table and printed number.

Rules (issue 18): a rate a person reads is a percentage with 3 significant digits (91.4%, 6.67%, 0.777%, 100%);
an interval follows its estimate as ``91.4% [89.0, 93.5]`` (every number 3 significant digits); a difference of
two rates is in percentage points (``+1.23 pp``); other measurements (L2, variances, correlations) have 3
significant digits and never scientific notation: a column of very small or very large values is scaled and says
so in its header (``variance (all dims), ×10⁻⁶``); counts are integers with thousands separators; booleans are
``yes``/``no``; a missing value is :data:`MISSING` (or a reason, where the caller knows one). Column headers come
from one mapping, :data:`HEADERS`.

CSV files are not formatted: they keep fractions in [0, 1] and every column under its own name (see the README's
table docs); this module only renders them for people.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from analysis.verdicts import level_text

DIGITS = 3
"""Significant digits of every number a person reads."""
MISSING = "—"
"""A value that is not there (not measured, not defined); callers that know why write the reason instead."""
NOT_RUN = "not run"
"""A cell this run did not compute."""
PERCENT_DECIMALS = 4
"""Percentages (and percentage points) show at most 4 decimals: 0.0001% is a rate of 10^-6, finer than any rate
measured here (at most ~10^6 attacks x samples), so floating-point noise in a difference of equal rates
(1.1e-7) prints as 0 instead of as three meaningless digits."""

STAT_LABELS = {
    "var_chosen": "variance (D dims)", "var_all": "variance (all dims)",
    "snr_chosen": "SNR, leave-one-out (D dims)", "snr_all": "SNR, leave-one-out (all dims)",
    "cos_chosen": "cos(g, mean of the others) (D dims)", "cos_all": "cos(g, mean of the others) (all dims)",
    "kurt_chosen": "excess kurtosis (D dims)", "kurt_all": "excess kurtosis (all dims)",
    "snr_vec": "vector SNR, leave-one-out", "grad_norm": "mean ||g||", "zero_frac": "zero-gradient fraction",
}
"""Readable names of the gradient statistics of :mod:`analysis.gradvar` (headers and figure titles)."""

HEADERS: dict[str, str] = {
    # the payoff table (payoffs.table.TABLE_COLUMNS)
    "attacker": "attacker", "attack": "attack", "kappa": "kappa", "c": "C&W initial c", "eps": "eps",
    "eot": "EOT samples", "success_test": "success test", "attacker_params": "attacker parameters",
    "defender": "defender", "defense": "defense", "defense_params": "defense parameters",
    "test_dropout": "r' (test dropout)", "train_dropout": "r (training dropout)", "model": "model id",
    "model_label": "model", "slot": "defense after layer", "dataset": "dataset", "recipe": "training recipe",
    "n_images": "images", "n_attacks": "attacks", "n_samples": "M (defender samples)", "asr": "ASR",
    "asr_std_error": "ASR standard error", "asr_interval": "ASR interval method", "asr_majority": "majority ASR",
    "asr_believed": "ASR the attacker believed", "l2_mean": "mean L2", "l2_median": "median L2",
    "l0_mean": "mean L0", "linf_mean": "mean L∞", "l2_all_mean": "mean L2 over all attacks",
    "clean_accuracy": "clean accuracy", "forwards": "forward passes", "backwards": "gradients taken",
    "seconds": "time (s)", "key": "cache key", "accuracy_key": "accuracy cache key",
    # the paper beside ours (analysis.paper.compare_with_paper)
    "artefact": "paper's table", "paper_dataset": "paper's dataset", "our_dataset": "our dataset",
    "metric": "metric", "paper": "paper", "ours": "ours", "difference": "ours − paper",
    "within_interval": "paper's value inside our interval", "verdict": "verdict", "status": "status",
    "reason": "why", "setting": "test-time defense",
    # Algorithm 1 (analysis.reproduce.algorithm1_stage)
    "chosen_test_dropout": "Algorithm 1's r'", "reference_accuracy": "undefended accuracy",
    "epsilon": "accuracy budget ε", "stopped_at": "stopped at r'",
    # gradient variance against ASR (analysis.gradvar.variance_asr_relation)
    "statistic": "statistic", "n": "strategies", "rho": "Spearman ρ", "interval": "interval method",
    "p_value": "permutation p", "rho_dropout_only": "Spearman ρ, dropout only", "expected": "predicted sign",
    "sap_draws": "SAP draws", "accuracy": "clean accuracy", "test_accuracy": "test accuracy",
    # the cited defenses (analysis.cited.section_rows)
    "accuracy_cost": "accuracy cost", "cited": "cited ASR",
    **STAT_LABELS,
}
"""Column name -> header text, for every column a human-facing table shows (one place)."""

RATE_COLUMNS = frozenset({"asr", "asr_majority", "asr_believed", "clean_accuracy", "reference_accuracy",
                          "accuracy", "test_accuracy", "zero_frac", "epsilon", "asr_std_error", "cited"})
"""Columns holding a rate (a fraction in [0, 1]): shown as percentages."""
POINTS_COLUMNS = frozenset({"difference", "accuracy_cost"})
"""Columns holding a difference of two rates: shown in percentage points."""
COUNT_COLUMNS = frozenset({"n", "n_images", "n_attacks", "n_samples", "forwards", "backwards", "eot",
                           "sap_draws"})
"""Columns holding counts: integers with thousands separators."""
SETTING_COLUMNS = frozenset({"train_dropout", "test_dropout", "chosen_test_dropout", "stopped_at", "kappa", "c",
                             "eps"})
"""Columns holding a setting (a dropout rate r or r', kappa): shown as given (0.3), not as a measurement."""
SCALED_PREFIXES = ("var_", "snr_", "cos_", "kurt_", "grad_norm", "l2_", "l0_", "linf_")
"""Measurement columns whose values may be tiny or huge: scaled by a power of 1000 named in the header."""
LABELLED_VALUES = frozenset({"statistic", "metric"})
"""Columns whose values are column names themselves (``var_all``): shown by their :data:`HEADERS` text."""
INTERVAL_SUFFIXES = ("_low", "_high")


def is_missing(value: object) -> bool:
    """None, NaN, pd.NA / NaT."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _decimals(x: float, digits: int) -> int:
    """Decimals that show ``x`` with ``digits`` significant digits (after rounding: 99.96 -> 100, not 100.0)."""
    rounded = abs(float(f"{x:.{digits}g}"))
    if rounded == 0:
        return 0
    return max(0, digits - 1 - math.floor(math.log10(rounded)))


def sig(value: object, digits: int = DIGITS, signed: bool = False, max_decimals: int | None = None) -> str:
    """``value`` with ``digits`` significant digits, never in scientific notation (0.0000135, 91.4, 1234).

    Whole numbers of more than ``digits`` digits keep all of them (12345, not 12300); ``max_decimals`` caps the
    decimals (a value below that resolution prints as 0).
    """
    if is_missing(value):
        return MISSING
    x = float(value)  # type: ignore[arg-type]
    if math.isinf(x):
        return ("+" if signed and x > 0 else "") + ("∞" if x > 0 else "−∞")
    decimals = _decimals(x, digits) if max_decimals is None else min(_decimals(x, digits), max_decimals)
    text = f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"
    if float(text) == 0:  # "0", never "-0.00", "+0" or "0.0000" (a value below the resolution)
        text = "0"
    return text


def percent_number(value: object, digits: int = DIGITS, signed: bool = False) -> str:
    """A fraction as a number of percent (or points) without the unit: 0.914 -> ``91.4``, at most
    :data:`PERCENT_DECIMALS` decimals."""
    return sig(100.0 * float(value), digits, signed, PERCENT_DECIMALS)  # type: ignore[arg-type]


_p = percent_number


def pct(value: object, digits: int = DIGITS) -> str:
    """A rate in [0, 1] as a percentage with ``digits`` significant digits: 91.4%, 6.67%, 0.777%, 100%, 0%."""
    return MISSING if is_missing(value) else _p(value, digits) + "%"


def pct_interval(value: object, low: object, high: object, digits: int = DIGITS) -> str:
    """``91.4% [89.0, 93.5]``: a rate and its interval, in percent; the estimate alone where the interval is
    unknown."""
    if is_missing(value):
        return MISSING
    if is_missing(low) or is_missing(high):
        return pct(value, digits)
    return f"{pct(value, digits)} [{_p(low, digits)}, {_p(high, digits)}]"


def pp(value: object, digits: int = DIGITS) -> str:
    """A difference of two rates in percentage points, signed: ``+1.23 pp``, ``-40.0 pp``."""
    return MISSING if is_missing(value) else _p(value, digits, signed=True) + " pp"


def pp_interval(low: object, high: object, digits: int = DIGITS) -> str:
    """``[+1.23, +4.56] pp``."""
    if is_missing(low) or is_missing(high):
        return MISSING
    return f"[{_p(low, digits, True)}, {_p(high, digits, True)}] pp"


def yes_no(value: object) -> str:
    return MISSING if is_missing(value) else ("yes" if bool(value) else "no")


def setting(value: object) -> str:
    """A setting as the user gave it (0.3, 5, 0.25): shortest exact form, no trailing zeros."""
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return yes_no(value)
    if isinstance(value, (Real, np.number)):
        return f"{float(value):g}" if not float(value).is_integer() else f"{int(float(value))}"
    return str(value)


def count(value: object) -> str:
    if is_missing(value):
        return MISSING
    return f"{int(round(float(value))):,}"  # type: ignore[arg-type]


def header(column: str) -> str:
    """The readable header of ``column`` (its own name when :data:`HEADERS` has none)."""
    return HEADERS.get(column, column)


def dataset_name(name: str) -> str:
    """A dataset as a person names it: ``cifar10`` -> CIFAR-10, ``mnist`` -> MNIST; others as given."""
    return {"cifar10": "CIFAR-10", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}.get(str(name), str(name))


# --------------------------------------------------------------------------- scaled columns
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def scale_exponent(values: Iterable[object]) -> int:
    """The power of 10 (a multiple of 3) to divide a column by so its largest value lies in [0.01, 10^6); 0 when
    no scaling is needed."""
    finite = [abs(float(v)) for v in values if not is_missing(v) and math.isfinite(float(v)) and float(v) != 0]  # type: ignore[arg-type]
    if not finite:
        return 0
    top = max(finite)
    if 1e-2 <= top < 1e6:
        return 0
    return 3 * math.floor(math.log10(top) / 3)


def scale_text(exponent: int) -> str:
    """``, ×10⁻⁶`` for a header; empty for 0."""
    return "" if exponent == 0 else ", ×10" + str(exponent).translate(_SUPERSCRIPT)


# --------------------------------------------------------------------------- whole tables
def _kind(column: str, values: pd.Series) -> str:
    if column in RATE_COLUMNS:
        return "rate"
    if column in POINTS_COLUMNS:
        return "points"
    if column in COUNT_COLUMNS:
        return "count"
    if column in SETTING_COLUMNS:
        return "setting"
    if column in LABELLED_VALUES:
        return "label"
    if values.dtype == bool or all(isinstance(v, (bool, np.bool_)) for v in values if not is_missing(v)) \
            and any(not is_missing(v) for v in values):
        return "bool"
    if pd.api.types.is_integer_dtype(values.dtype):
        return "integer"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "scaled" if column.startswith(SCALED_PREFIXES) else "number"
    return "text"


def _text(value: object) -> str:
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return yes_no(value)
    if isinstance(value, (float, np.floating)):
        return sig(value)
    if isinstance(value, (Integral, np.integer)):
        return str(int(value))
    return str(value)


def _all_text(values: pd.Series) -> bool:
    present = [v for v in values if not is_missing(v)]
    return bool(present) and all(isinstance(v, str) for v in present)


def format_column(column: str, values: pd.Series, low: pd.Series | None = None,
                  high: pd.Series | None = None) -> tuple[str, list[str]]:
    """One column (with its interval bounds, if given) as (header, cell texts)."""
    kind = _kind(column, values)
    if kind != "label" and _all_text(values):
        kind = "text"
    paired = low is not None and high is not None and kind in ("rate", "scaled", "number")
    title = header(column) + (f" [{level_text()} interval]" if paired else "")
    if kind == "rate":
        if low is not None and high is not None:
            return title, [pct_interval(v, lo, hi) for v, lo, hi in zip(values, low, high)]
        return title, [pct(v) for v in values]
    if kind == "points":
        return title + " (pp)", [MISSING if is_missing(v) else _p(v, signed=True) for v in values]
    if kind == "count":
        return title, [count(v) if isinstance(v, (Real, np.number)) or is_missing(v) else str(v) for v in values]
    if kind == "integer":
        return title, [_text(v) for v in values]
    if kind == "setting":
        return title, [setting(v) for v in values]
    if kind == "label":
        return title, [MISSING if is_missing(v) else header(str(v)) for v in values]
    if kind == "bool":
        return title, [yes_no(v) for v in values]
    if kind in ("scaled", "number"):
        exponent = 0
        if kind == "scaled":
            exponent = scale_exponent([*values, *(low if low is not None else []), *(high if high is not None else [])])
        k = 10.0 ** -exponent

        def one(v: object) -> str:
            return MISSING if is_missing(v) else sig(float(v) * k)  # type: ignore[arg-type]
        if low is not None and high is not None:
            cells = [one(v) if is_missing(v) or is_missing(lo) or is_missing(hi) else f"{one(v)} [{one(lo)}, {one(hi)}]"
                     for v, lo, hi in zip(values, low, high)]
        else:
            cells = [one(v) for v in values]
        return title + scale_text(exponent), cells
    return title, [_text(v) for v in values]


def display_table(df: pd.DataFrame, headers: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``df`` as a table of strings for people: readable headers, numbers by the module's rules, and every
    ``x_low``/``x_high`` pair folded into column ``x`` as ``value [low, high]``.

    ``headers`` overrides :data:`HEADERS` for this table. Columns that are already text pass through (so a table
    formatted once is unchanged by a second pass, apart from headers it does not know).
    """
    names = [str(c) for c in df.columns]
    folded = {f"{c}{s}" for c in names for s in INTERVAL_SUFFIXES
              if f"{c}_low" in names and f"{c}_high" in names}
    out: dict[str, list[str]] = {}
    for column in names:
        if column in folded:
            continue
        pair = f"{column}_low" in folded
        title, cells = format_column(column, df[column].reset_index(drop=True),
                                     df[f"{column}_low"].reset_index(drop=True) if pair else None,
                                     df[f"{column}_high"].reset_index(drop=True) if pair else None)
        if headers and column in headers:
            title = headers[column]
        while title in out:
            title += " "
        out[title] = cells
    return pd.DataFrame(out, dtype=object)


def text_table(df: pd.DataFrame) -> str:
    """``df`` formatted (:func:`display_table`) as aligned plain text for a terminal or a log (no wrapping)."""
    shown = display_table(df)
    columns = list(shown.columns)
    widths = [max([len(c), *(len(v) for v in shown[c])]) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    for row in shown.itertuples(index=False, name=None):
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines)
