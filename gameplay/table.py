"""The payoff table as the game sees it: validated once, here, then plain arrays.

Reads the CSV written by ``defdrop payoffs`` (columns documented in ``payoffs.table``): one row per cell
(attacker strategy x defender strategy, the defender's model included). Every check names the file, the column
and the CSV line, in one line, as a ``DefdropError``. Inner code trusts what this module returns.

The *undefended reference accuracy* of a model (the paper's a_test^max, the accuracy every drop is measured
from) is the clean accuracy of its ``none`` row (or a ``dropout`` row with r' = 0); where a model has neither,
the highest clean accuracy among its rows, and the report says which.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from payoffs.errors import DefdropError, untrusted

# The columns the game needs; the table has more (payoffs.table.TABLE_COLUMNS), which are carried along unused.
REQUIRED_COLUMNS = (
    "attacker", "attack", "eot", "success_test", "defender", "defense", "train_dropout", "test_dropout", "model",
    "asr", "asr_low", "asr_high", "l2_mean", "clean_accuracy", "clean_accuracy_low", "clean_accuracy_high",
)
OPTIONAL_COLUMNS = ("asr_std_error", "kappa", "c", "n_samples", "n_attacks")
TEXT_COLUMNS = ("attacker", "attack", "success_test", "defender", "defense", "model")
NUMBER_COLUMNS = ("eot", "train_dropout", "asr", "asr_low", "asr_high", "clean_accuracy", "clean_accuracy_low",
                  "clean_accuracy_high")  # never NaN; test_dropout, l2_mean, asr_std_error may be
DEFENSES = ("none", "dropout", "sap")
Z95 = 1.959963984540054  # a 95% normal interval is +-Z95 standard errors wide


@dataclass(frozen=True)
class DefenderInfo:
    """One defender strategy (a game row): a defense on a model. ``accuracy_drop`` is measured from the
    model's reference accuracy (positive = accuracy lost)."""

    label: str
    model: str
    defense: str
    test_dropout: float
    train_dropout: float
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    accuracy_drop: float

    @property
    def is_rate(self) -> bool:
        """A point on Algorithm 1's grid: test dropout (r' = 0 included, i.e. the undefended model)."""
        return self.defense in ("none", "dropout")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AttackerInfo:
    """One attacker strategy (a game column). ``adaptive``: EOT gradients or the expected-success test."""

    label: str
    attack: str
    eot: int
    success_test: str

    @property
    def adaptive(self) -> bool:
        return self.eot > 1 or self.success_test == "expected"

    def to_dict(self) -> dict:
        return {**asdict(self), "adaptive": self.adaptive}


@dataclass(frozen=True)
class Reference:
    """A model's undefended accuracy a_test^max and where it came from."""

    model: str
    train_dropout: float
    accuracy: float
    source: str  # "undefended row <label>" or "max clean accuracy (no undefended row)"


@dataclass(frozen=True, eq=False)
class PayoffTable:
    """Defenders x attackers arrays from a validated payoff CSV (rows sorted by model, defense, r')."""

    defenders: tuple[DefenderInfo, ...]
    attackers: tuple[AttackerInfo, ...]
    asr: np.ndarray           # (m, n) attack success rate
    asr_low: np.ndarray       # (m, n) 95% interval
    asr_high: np.ndarray
    asr_se: np.ndarray        # (m, n) bootstrap standard error, or the interval's width / 3.92 where absent
    l2_mean: np.ndarray       # (m, n) mean L2 distortion of successful examples, NaN where none
    references: tuple[Reference, ...]
    source: str = "<table>"

    @property
    def shape(self) -> tuple[int, int]:
        return self.asr.shape

    @property
    def accuracy(self) -> np.ndarray:
        return np.array([d.accuracy for d in self.defenders])

    @property
    def accuracy_se(self) -> np.ndarray:
        return np.array([(d.accuracy_high - d.accuracy_low) / (2 * Z95) for d in self.defenders])

    @property
    def accuracy_drop(self) -> np.ndarray:
        return np.array([d.accuracy_drop for d in self.defenders])

    @property
    def defender_labels(self) -> tuple[str, ...]:
        return tuple(d.label for d in self.defenders)

    @property
    def attacker_labels(self) -> tuple[str, ...]:
        return tuple(a.label for a in self.attackers)

    def reference(self, model: str) -> Reference:
        return next(r for r in self.references if r.model == model)

    def with_values(self, asr: np.ndarray, accuracy: np.ndarray) -> "PayoffTable":
        """The same table with other ASRs and accuracies (a resample); references and drops recomputed."""
        defenders = tuple(replace(d, accuracy=float(a)) for d, a in zip(self.defenders, accuracy))
        references = _references(defenders)
        ref = {r.model: r.accuracy for r in references}
        defenders = tuple(replace(d, accuracy_drop=ref[d.model] - d.accuracy) for d in defenders)
        return replace(self, defenders=defenders, asr=np.asarray(asr, dtype=float), references=references)


def _references(defenders: tuple[DefenderInfo, ...]) -> tuple[Reference, ...]:
    out = []
    for model in dict.fromkeys(d.model for d in defenders):
        rows = [d for d in defenders if d.model == model]
        plain = [d for d in rows if d.defense == "none" or (d.defense == "dropout" and d.test_dropout == 0)]
        if plain:
            acc = float(np.mean([d.accuracy for d in plain]))
            source = f"undefended row {plain[0].label}"
        else:
            best = max(rows, key=lambda d: d.accuracy)
            acc, source = best.accuracy, f"max clean accuracy, at {best.label} (no undefended row)"
        out.append(Reference(model, rows[0].train_dropout, acc, source))
    return tuple(out)


def _fail(source: str, message: str) -> DefdropError:
    return DefdropError(f"payoff table {source}: {message}")


def _where(df: pd.DataFrame, i: int) -> str:
    return f"line {i + 2} (defender {df.at[i, 'defender']}, attacker {df.at[i, 'attacker']})"


def _validate(df: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise _fail(source, f"missing column(s) {', '.join(missing)} (needs {', '.join(REQUIRED_COLUMNS)})")
    if len(df) == 0:
        raise _fail(source, "has no rows")
    df = df.reset_index(drop=True).copy()
    for col in TEXT_COLUMNS:
        bad = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if bad.any():
            raise _fail(source, f"column {col} is empty on line {int(np.flatnonzero(bad)[0]) + 2}")
        df[col] = df[col].astype(str).str.strip()
    numeric = list(NUMBER_COLUMNS) + ["test_dropout", "l2_mean"] + [c for c in ("asr_std_error",) if c in df]
    for col in numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(source, f"column {col} has the non-number {df.at[i, col]!r} on {_where(df, i)}")
        df[col] = values.astype(float)
    for col in NUMBER_COLUMNS:
        bad = ~np.isfinite(df[col].to_numpy())
        if bad.any():
            raise _fail(source, f"column {col} is NaN or infinite on {_where(df, int(np.flatnonzero(bad)[0]))}")
    bad = ~df["defense"].isin(DEFENSES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(source, f"defense {df.at[i, 'defense']!r} on {_where(df, i)} is not one of {', '.join(DEFENSES)}")
    bad = df["test_dropout"].isna() & (df["defense"] != "sap")
    if bad.any():
        raise _fail(source, f"column test_dropout is NaN on {_where(df, int(np.flatnonzero(bad)[0]))} "
                            "(only SAP rows may leave it empty)")
    rates = df.loc[df["defense"] == "dropout", "test_dropout"]
    if ((rates < 0) | (rates >= 1)).any():
        i = int(rates.index[(rates < 0) | (rates >= 1)][0])
        raise _fail(source, f"test_dropout {df.at[i, 'test_dropout']:g} on {_where(df, i)} is outside [0, 1)")
    for col in ("asr", "asr_low", "asr_high", "clean_accuracy", "clean_accuracy_low", "clean_accuracy_high"):
        bad = (df[col] < 0) | (df[col] > 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(source, f"{col} {df.at[i, col]:g} on {_where(df, i)} is outside [0, 1]")
    tol = 1e-9
    for lo, mid, hi in (("asr_low", "asr", "asr_high"),
                        ("clean_accuracy_low", "clean_accuracy", "clean_accuracy_high")):
        bad = (df[lo] > df[mid] + tol) | (df[mid] > df[hi] + tol)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(source, f"interval [{lo}, {hi}] = [{df.at[i, lo]:g}, {df.at[i, hi]:g}] does not contain "
                                f"{mid} {df.at[i, mid]:g} on {_where(df, i)}")
    bad = np.isinf(df["l2_mean"].to_numpy()) | (df["l2_mean"] < 0).to_numpy()  # NaN (no success) is allowed
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(source, f"l2_mean {df.at[i, 'l2_mean']:g} on {_where(df, i)} is not a distance (it must be "
                            f">= 0 and finite, or empty when no attack succeeded)")
    if "asr_std_error" in df:
        bad = df["asr_std_error"] < 0
        if bad.any():
            raise _fail(source, f"asr_std_error is negative on {_where(df, int(np.flatnonzero(bad)[0]))}")
    bad = (df["eot"] < 1) | (df["eot"] != np.round(df["eot"]))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(source, f"eot {df.at[i, 'eot']:g} on {_where(df, i)} is not a positive integer")
    return df


def _defender_labels(df: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(model, defender id) -> a row label, unique even when several models share defender ids."""
    keys = list(dict.fromkeys(zip(df["model"], df["defender"])))
    if len({d for _, d in keys}) == len(keys):
        return {k: k[1] for k in keys}
    rate = dict(zip(df["model"], df["train_dropout"]))
    by_rate = {k: f"r={rate[k[0]]:g}/{k[1]}" for k in keys}
    if len(set(by_rate.values())) == len(keys):
        return by_rate
    return {k: f"{k[0][:8]}/{k[1]}" for k in keys}


def payoff_table_from_frame(df: pd.DataFrame, source: str = "<table>") -> PayoffTable:
    """Validate a payoff-table DataFrame and arrange it as defenders x attackers arrays."""
    df = _validate(df, source)
    labels = _defender_labels(df)
    df["_row"] = [labels[k] for k in zip(df["model"], df["defender"])]
    dup = df.duplicated(["_row", "attacker"], keep=False)
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise _fail(source, f"the cell (defender {df.at[i, '_row']}, attacker {df.at[i, 'attacker']}) appears "
                            f"{int(dup.sum())} times; each cell must appear once")
    attackers_ids = list(dict.fromkeys(df["attacker"]))
    first = df.drop_duplicates("_row").copy()
    first["_rank"] = first["defense"].map({d: k for k, d in enumerate(DEFENSES)})
    first["_rate"] = first["test_dropout"].fillna(-1.0)
    first = first.sort_values(["train_dropout", "model", "_rank", "_rate", "_row"], kind="stable")
    row_ids = list(first["_row"])
    m, n = len(row_ids), len(attackers_ids)
    if len(df) != m * n:
        have = set(zip(df["_row"], df["attacker"]))
        gap = next((d, a) for d in row_ids for a in attackers_ids if (d, a) not in have)
        raise _fail(source, f"has {len(df)} cells, not {m} defenders x {n} attackers = {m * n}; missing e.g. "
                            f"(defender {gap[0]}, attacker {gap[1]})")
    pivot = df.set_index(["_row", "attacker"])

    def grid(col: str) -> np.ndarray:
        return pivot[col].unstack("attacker").loc[row_ids, attackers_ids].to_numpy(dtype=float)

    asr, low, high = grid("asr"), grid("asr_low"), grid("asr_high")
    se = grid("asr_std_error") if "asr_std_error" in df else np.full_like(asr, np.nan)
    se = np.where(np.isfinite(se), se, (high - low) / (2 * Z95))

    by_row = df.groupby("_row")
    acc = by_row[["clean_accuracy", "clean_accuracy_low", "clean_accuracy_high"]].mean()
    defenders = []
    for _, r in first.iterrows():
        label = r["_row"]
        rate = 0.0 if r["defense"] == "none" else float(r["test_dropout"])
        defenders.append(DefenderInfo(label=label, model=r["model"], defense=r["defense"], test_dropout=rate,
                                      train_dropout=float(r["train_dropout"]),
                                      accuracy=float(acc.at[label, "clean_accuracy"]),
                                      accuracy_low=float(acc.at[label, "clean_accuracy_low"]),
                                      accuracy_high=float(acc.at[label, "clean_accuracy_high"]),
                                      accuracy_drop=math.nan))
    first_att = df.drop_duplicates("attacker").set_index("attacker")
    attackers = tuple(AttackerInfo(label=a, attack=first_att.at[a, "attack"], eot=int(first_att.at[a, "eot"]),
                                   success_test=first_att.at[a, "success_test"]) for a in attackers_ids)
    table = PayoffTable(defenders=tuple(defenders), attackers=attackers, asr=asr, asr_low=low, asr_high=high,
                        asr_se=se, l2_mean=grid("l2_mean"), references=(), source=source)
    return table.with_values(asr, table.accuracy)


def require_game(table: PayoffTable) -> None:
    """A game needs at least two strategies per player; the reader alone accepts one (other uses need less)."""
    for who, labels in (("defender", table.defender_labels), ("attacker", table.attacker_labels)):
        if len(labels) < 2:
            raise _fail(table.source, f"has a single {who} strategy ({labels[0]}); a game needs at least two of each")


def read_payoff_csv(path: str | Path) -> PayoffTable:
    """Read and validate a payoff CSV; every problem, whatever the bytes, is a one-line ``DefdropError``."""
    path = Path(path)
    if not path.is_file():
        raise DefdropError(f"payoff table {path} does not exist")
    with untrusted(f"payoff table {path} is not a valid payoff table"):
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
            raise DefdropError(f"payoff table {path} is not a readable CSV: {str(exc).splitlines()[0]}") from None
        return payoff_table_from_frame(df, str(path))
