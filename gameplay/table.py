"""The payoff table as the game sees it: validated once, here, then plain arrays.

Reads the CSV written by ``defdrop payoffs`` (columns documented in ``payoffs.table``): one row per cell
(attacker strategy x defender strategy, the defender's model included). Every check names the file, the column
and the CSV line, in one line, as a ``DefdropError``. Inner code trusts what this module returns.

The *undefended reference accuracy* of a model (the paper's a_test^max, the accuracy every drop is measured
from) is the clean accuracy of its ``none`` row (or a ``dropout`` row with r' = 0); where a model has neither,
the highest clean accuracy among its rows, and the report says which. :func:`reference_accuracies` is the one
place this is computed (Algorithm 1, the game, the robustness draws and ``defdrop reproduce`` all read it).

A model is named by its ``model_label`` (``r=0.3``, or the label of the user's own model) where the table has that
column, else by its training dropout rate r, else by its hash (:func:`payoffs.labels.model_name`); ``train_dropout``
is empty (NaN) for a model without a training rate (a user model), and a rate in [0, 1) otherwise.

Optional columns: ``model_label``, ``asr_std_error``, ``kappa`` (missing = 0, see :mod:`gameplay.rules`),
``asr_majority`` and ``l2_all_mean`` (the attacker's cost, :mod:`gameplay.utility`), ``key`` and ``accuracy_key``
(the cell's and the defender's accuracy keys in the per-image sidecar ``X.images.npz``, :mod:`gameplay.images`).
When the sidecar is there, :func:`read_payoff_csv` attaches it (after checking that it holds every cell and
accuracy of the table and that its per-image values average to the table's); a sidecar that does not match is an
error.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from gameplay.images import ImageData, read_image_data, sidecar_path
from gameplay.rules import is_adaptive, is_undefended
from payoffs.errors import DefdropError, untrusted
from payoffs.labels import defender_label, model_name

# The columns the game needs; the table has more (payoffs.table.TABLE_COLUMNS), which are carried along unused.
REQUIRED_COLUMNS = (
    "attacker", "attack", "eot", "success_test", "defender", "defense", "train_dropout", "test_dropout", "model",
    "asr", "asr_low", "asr_high", "l2_mean", "clean_accuracy", "clean_accuracy_low", "clean_accuracy_high",
)
OPTIONAL_NUMBERS = ("asr_std_error", "kappa", "asr_majority", "l2_all_mean")  # may be absent or NaN
TEXT_COLUMNS = ("attacker", "attack", "success_test", "defender", "defense", "model")
NUMBER_COLUMNS = ("eot", "asr", "asr_low", "asr_high", "clean_accuracy", "clean_accuracy_low",
                  "clean_accuracy_high")  # never NaN; train_dropout, test_dropout, l2_mean, asr_std_error may be
DEFENSES = ("none", "dropout", "sap")
Z95 = 1.959963984540054  # a 95% normal interval is +-Z95 standard errors wide
MEAN_TOLERANCE = 1e-6  # per-image values must average to the table's ASR / accuracy within this


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
    accuracy_key: str | None = None
    model_label: str = ""

    @property
    def model_name(self) -> str:
        """How reports name this row's model (its label, else ``r=...``, else its hash)."""
        return model_name(self.model_label, self.model, self.train_dropout)

    @property
    def undefended(self) -> bool:
        return is_undefended(self.defense, self.test_dropout)

    @property
    def is_rate(self) -> bool:
        """A point on Algorithm 1's grid: test dropout (r' = 0 included, i.e. the undefended model)."""
        return self.defense in ("none", "dropout")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AttackerInfo:
    """One attacker strategy (a game column). ``adaptive``: see :mod:`gameplay.rules` (EOT, the expected test or
    kappa > 0)."""

    label: str
    attack: str
    eot: int
    success_test: str
    kappa: float = 0.0

    @property
    def adaptive(self) -> bool:
        return is_adaptive(self.eot, self.success_test, self.kappa)

    def to_dict(self) -> dict:
        return {**asdict(self), "adaptive": self.adaptive}


@dataclass(frozen=True)
class Reference:
    """A model's undefended accuracy a_test^max and where it came from."""

    model: str
    train_dropout: float
    accuracy: float
    source: str  # "undefended row <label>" or "max clean accuracy (no undefended row)"
    model_label: str = ""

    @property
    def model_name(self) -> str:
        """How reports name the model (its label, else ``r=...``, else its hash)."""
        return model_name(self.model_label, self.model, self.train_dropout)


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
    asr_majority: np.ndarray | None = None  # (m, n) share of majority-successful attacks, if the table has it
    l2_all_mean: np.ndarray | None = None   # (m, n) mean L2 over all attacks' returned examples, if the table has it
    cell_key: np.ndarray | None = None      # (m, n) the cells' keys (object array), if the table has them
    images: ImageData | None = None         # per-image data of every cell and accuracy, when attached
    images_note: str = "no per-image sidecar"  # why ``images`` is None, or where it came from

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
        references = reference_accuracies(defenders)
        ref = {r.model: r.accuracy for r in references}
        defenders = tuple(replace(d, accuracy_drop=ref[d.model] - d.accuracy) for d in defenders)
        return replace(self, defenders=defenders, asr=np.asarray(asr, dtype=float), references=references)


def reference_accuracies(defenders: tuple[DefenderInfo, ...]) -> tuple[Reference, ...]:
    """Each model's a_test^max: the mean clean accuracy of its undefended rows, else its highest clean accuracy."""
    out = []
    for model in dict.fromkeys(d.model for d in defenders):
        rows = [d for d in defenders if d.model == model]
        plain = [d for d in rows if d.undefended]
        if plain:
            acc = float(np.mean([d.accuracy for d in plain]))
            source = f"undefended row {plain[0].label}"
        else:
            best = max(rows, key=lambda d: d.accuracy)
            acc, source = best.accuracy, f"max clean accuracy, at {best.label} (no undefended row)"
        out.append(Reference(model, rows[0].train_dropout, acc, source, rows[0].model_label))
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
    numeric = list(NUMBER_COLUMNS) + ["train_dropout", "test_dropout", "l2_mean"] + [
        c for c in OPTIONAL_NUMBERS if c in df]
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
    r = df["train_dropout"]
    bad = np.isinf(r.to_numpy()) | (r < 0).to_numpy() | (r >= 1).to_numpy()  # NaN: a model without a rate
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(source, f"train_dropout {df.at[i, 'train_dropout']:g} on {_where(df, i)} is not a rate in "
                            "[0, 1) (leave it empty for a model trained without one)")
    if "model_label" in df:
        df["model_label"] = ["" if (isinstance(v, float) and math.isnan(v)) else str(v).strip()
                             for v in df["model_label"]]
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
    for col in ("asr_std_error", "l2_all_mean"):
        if col in df:
            bad = df[col] < 0
            if bad.any():
                raise _fail(source, f"{col} is negative on {_where(df, int(np.flatnonzero(bad)[0]))}")
    if "asr_majority" in df:
        bad = (df["asr_majority"] < 0) | (df["asr_majority"] > 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(source, f"asr_majority {df.at[i, 'asr_majority']:g} on {_where(df, i)} is outside [0, 1]")
    for col in ("key", "accuracy_key"):
        if col in df:
            df[col] = [None if (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "" else str(v).strip()
                       for v in df[col]]
    bad = (df["eot"] < 1) | (df["eot"] != np.round(df["eot"]))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(source, f"eot {df.at[i, 'eot']:g} on {_where(df, i)} is not a positive integer")
    return df


def _model_labels(df: pd.DataFrame) -> dict[str, str]:
    """model -> its label in the table (empty where the table has none)."""
    if "model_label" not in df:
        return {m: "" for m in df["model"]}
    return {m: label for m, label in zip(df["model"], df["model_label"])}


def _defender_labels(df: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(model, defender id) -> a row label, unique even when several models share defender ids: "model label /
    defender" (:func:`payoffs.labels.defender_label`), the model named by its label, else r, else its hash."""
    keys = list(dict.fromkeys(zip(df["model"], df["defender"])))
    if len({d for _, d in keys}) == len(keys):
        return {k: k[1] for k in keys}
    rate = dict(zip(df["model"], df["train_dropout"]))
    labels = _model_labels(df)
    named = {k: defender_label(model_name(labels[k[0]], k[0], rate[k[0]]), k[1], True) for k in keys}
    if len(set(named.values())) == len(keys):
        return named
    return {k: defender_label(k[0][:8], k[1], True) for k in keys}


def payoff_table_from_frame(df: pd.DataFrame, source: str = "<table>",
                            images: ImageData | None = None) -> PayoffTable:
    """Validate a payoff-table DataFrame and arrange it as defenders x attackers arrays; ``images`` (its per-image
    data) is checked against the table and attached (:func:`attach_images`)."""
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
    first["_rate"] = first["test_dropout"].fillna(-1.0)  # models without a training rate r sort last
    first = first.sort_values(["train_dropout", "model", "_rank", "_rate", "_row"], kind="stable")
    row_ids = list(first["_row"])
    m, n = len(row_ids), len(attackers_ids)
    if len(df) != m * n:
        have = set(zip(df["_row"], df["attacker"]))
        gap = next((d, a) for d in row_ids for a in attackers_ids if (d, a) not in have)
        raise _fail(source, f"has {len(df)} cells, not {m} defenders x {n} attackers = {m * n}; missing e.g. "
                            f"(defender {gap[0]}, attacker {gap[1]})")
    pivot = df.set_index(["_row", "attacker"])

    def grid(col: str, dtype=float) -> np.ndarray:
        return pivot[col].unstack("attacker").loc[row_ids, attackers_ids].to_numpy(dtype=dtype)

    asr, low, high = grid("asr"), grid("asr_low"), grid("asr_high")
    se = grid("asr_std_error") if "asr_std_error" in df else np.full_like(asr, np.nan)
    se = np.where(np.isfinite(se), se, (high - low) / (2 * Z95))

    by_row = df.groupby("_row")
    acc = by_row[["clean_accuracy", "clean_accuracy_low", "clean_accuracy_high"]].mean()
    acc_keys: dict[str, str | None] = {}
    if "accuracy_key" in df:
        for label, keys in by_row["accuracy_key"]:
            distinct = set(keys)
            if len(distinct) > 1:
                raise _fail(source, f"defender {label} has {len(distinct)} different accuracy_key values; its "
                                    "clean accuracy is one measurement")
            acc_keys[label] = next(iter(distinct))
    model_labels = _model_labels(df)
    defenders = []
    for _, r in first.iterrows():
        label = r["_row"]
        rate = 0.0 if r["defense"] == "none" else float(r["test_dropout"])
        defenders.append(DefenderInfo(label=label, model=r["model"], defense=r["defense"], test_dropout=rate,
                                      train_dropout=float(r["train_dropout"]),
                                      accuracy=float(acc.at[label, "clean_accuracy"]),
                                      accuracy_low=float(acc.at[label, "clean_accuracy_low"]),
                                      accuracy_high=float(acc.at[label, "clean_accuracy_high"]),
                                      accuracy_drop=math.nan, accuracy_key=acc_keys.get(label),
                                      model_label=model_labels[r["model"]]))
    first_att = df.drop_duplicates("attacker").set_index("attacker")
    kappa = first_att["kappa"] if "kappa" in df else pd.Series(0.0, index=first_att.index)
    attackers = tuple(AttackerInfo(label=a, attack=first_att.at[a, "attack"], eot=int(first_att.at[a, "eot"]),
                                   success_test=first_att.at[a, "success_test"],
                                   kappa=0.0 if pd.isna(kappa.at[a]) else float(kappa.at[a])) for a in attackers_ids)
    keys = grid("key", object) if "key" in df else None
    table = PayoffTable(defenders=tuple(defenders), attackers=attackers, asr=asr, asr_low=low, asr_high=high,
                        asr_se=se, l2_mean=grid("l2_mean"), references=(), source=source,
                        asr_majority=grid("asr_majority") if "asr_majority" in df else None,
                        l2_all_mean=grid("l2_all_mean") if "l2_all_mean" in df else None,
                        cell_key=keys)
    return attach_images(table.with_values(asr, table.accuracy), images)


def attach_images(table: PayoffTable, images: ImageData | None) -> PayoffTable:
    """``table`` with its per-image data, after checking that it covers every cell and accuracy of the table and
    averages to the table's values (a sidecar from another run is an error). Without keys in the table the data
    cannot be matched: it is left off and ``images_note`` says why."""
    if images is None:
        return replace(table, images=None, images_note="no per-image sidecar")
    if table.cell_key is None or any(k is None for k in table.cell_key.ravel()):
        return replace(table, images=None, images_note=f"the table has no key for every cell ({images.source} unused)")
    if any(d.accuracy_key is None for d in table.defenders):
        return replace(table, images=None,
                       images_note=f"the table has no accuracy_key for every defender ({images.source} unused)")
    where = f"its per-image data {images.source}"
    have = set(images.cell_key)
    for (i, j), key in np.ndenumerate(table.cell_key):
        if key not in have:
            raise _fail(table.source, f"{where} lacks the cell {key} (defender {table.defenders[i].label}, "
                                      f"attacker {table.attackers[j].label}): it belongs to another table")
    have = set(images.accuracy_key)
    for d in table.defenders:
        if d.accuracy_key not in have:
            raise _fail(table.source, f"{where} lacks the accuracy {d.accuracy_key} of defender {d.label}: it "
                                      "belongs to another table")
    means = images.cell_means(images.cell_rows(list(table.cell_key.ravel()))).reshape(table.shape)
    gap = np.abs(means - table.asr)
    if gap.max() > MEAN_TOLERANCE:
        i, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        raise _fail(table.source, f"{where}: the per-image ASR of cell ({table.defenders[i].label}, "
                                  f"{table.attackers[j].label}) averages {means[i, j]:.6g}, the table says "
                                  f"{table.asr[i, j]:.6g}; the sidecar is from another run")
    acc = images.accuracy_means(images.accuracy_rows([d.accuracy_key for d in table.defenders]))
    gap = np.abs(acc - table.accuracy)
    if gap.max() > MEAN_TOLERANCE:
        k = int(np.argmax(gap))
        raise _fail(table.source, f"{where}: the per-image accuracy of defender {table.defenders[k].label} "
                                  f"averages {acc[k]:.6g}, the table says {table.accuracy[k]:.6g}; the sidecar is "
                                  "from another run")
    return replace(table, images=images, images_note=f"per-image data {images.source}")


def require_game(table: PayoffTable) -> None:
    """A game needs at least two strategies per player; the reader alone accepts one (other uses need less)."""
    for who, labels in (("defender", table.defender_labels), ("attacker", table.attacker_labels)):
        if len(labels) < 2:
            raise _fail(table.source, f"has a single {who} strategy ({labels[0]}); a game needs at least two of each")


def read_payoff_csv(path: str | Path) -> PayoffTable:
    """Read and validate a payoff CSV (and its sidecar ``X.images.npz`` when there is one); every problem, whatever
    the bytes, is a one-line ``DefdropError``."""
    path = Path(path)
    if not path.is_file():
        raise DefdropError(f"payoff table {path} does not exist")
    with untrusted(f"payoff table {path} is not a valid payoff table"):
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
            raise DefdropError(f"payoff table {path} is not a readable CSV: {str(exc).splitlines()[0]}") from None
        side = sidecar_path(path)
        images = read_image_data(side) if side.is_file() else None
        return payoff_table_from_frame(df, str(path), images)
