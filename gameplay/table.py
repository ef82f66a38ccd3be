"""The payoff table as the game sees it: validated once, here, then plain arrays.

Reads the CSV written by ``defdrop payoffs`` (columns documented in ``payoffs.table``): one row per cell
(attacker strategy x defender strategy, the defender's model included). Every check names the file, the column
and the CSV line, in one line, as a ``DefdropError``. Inner code trusts what this module returns.

The *undefended reference accuracy* of a model (the paper's a_test^max, the accuracy every drop is measured
from) is the clean accuracy of its ``none`` row (or a ``dropout`` row with r' = 0); where a model has neither,
the highest clean accuracy among its rows, and the report says which. :func:`reference_accuracies` is the one
place this is computed (Algorithm 1, the game, the robustness draws and ``defdrop reproduce`` all read it).

Models trained by another recipe (the optional ``recipe`` column: ``adversarial``, ``distillation``; empty or
missing = ``standard``) are defenses themselves: the defender's strategy is (recipe, r) x test-time defense. Where
the table also holds a standard model with the same training rate r, such a model's accuracy *drops* (the game's
accuracy limit and lambda) are measured from that standard model's undefended accuracy, so the accuracy a recipe
costs counts like the accuracy test-time dropout costs, and its r' = 0 row is a defended row, not a free one.
Algorithm 1 still walks each model's own grid from the model's own undefended accuracy (the paper's procedure).

A model is named by its ``model_label`` (``r=0.3``, or the label of the user's own model) where the table has that
column, else by its training dropout rate r, else by its hash (:func:`payoffs.labels.model_name`); ``train_dropout``
is empty (NaN) for a model without a training rate (a user model), and a rate in [0, 1) otherwise.

Only ``attacker``, ``defender``, ``asr`` and ``clean_accuracy`` are needed: the strategies' other columns are read
from their ids and intervals the table lacks are unknown (NaN, never invented; :func:`complete_columns`). A file
may hold several games (``defdrop reproduce``'s ``tables/payoff.csv``: each model against its own sweeps);
:func:`select_game` takes one by model and attacker space, and lists the choices when it must.

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

# The columns the game reads; the table has more (payoffs.table.TABLE_COLUMNS), which are carried along unused.
# Only MINIMAL_COLUMNS must be there: the others are filled in (:func:`complete_columns`) where absent.
MINIMAL_COLUMNS = ("attacker", "defender", "asr", "clean_accuracy")
INTERVALS = (("asr_low", "asr_high"), ("clean_accuracy_low", "clean_accuracy_high"))
REQUIRED_COLUMNS = (
    "attacker", "attack", "eot", "success_test", "defender", "defense", "train_dropout", "test_dropout", "model",
    "asr", "asr_low", "asr_high", "l2_mean", "clean_accuracy", "clean_accuracy_low", "clean_accuracy_high",
)
OPTIONAL_NUMBERS = ("asr_std_error", "kappa", "asr_majority", "l2_all_mean")  # may be absent or NaN
TEXT_COLUMNS = ("attacker", "attack", "success_test", "defender", "defense", "model")
NUMBER_COLUMNS = ("eot", "asr", "clean_accuracy")  # never NaN; train_dropout, test_dropout, l2_mean, asr_std_error
# may be, and an interval's two bounds may both be (an interval the table does not know)
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
    recipe: str = "standard"
    baseline: str | None = None  # the standard model whose undefended accuracy ``accuracy_drop`` is measured from

    @property
    def model_name(self) -> str:
        """How reports name this row's model (its label, else ``r=...``, else its hash)."""
        return model_name(self.model_label, self.model, self.train_dropout)

    @property
    def undefended(self) -> bool:
        """The model's own undefended row (``none``, or dropout at r' = 0)."""
        return is_undefended(self.defense, self.test_dropout)

    @property
    def always_within(self) -> bool:
        """Within every accuracy limit: an undefended row whose drop is measured from its own model (Algorithm 1's
        start). A recipe model's r' = 0 row measured from a standard model is not: the recipe is the defense."""
        return self.undefended and self.baseline is None

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
    recipe: str = "standard"
    baseline_model: str | None = None  # a recipe model's standard sibling (same r), whose accuracy drops count from
    baseline_accuracy: float = math.nan
    baseline_name: str = ""

    @property
    def model_name(self) -> str:
        """How reports name the model (its label, else ``r=...``, else its hash)."""
        return model_name(self.model_label, self.model, self.train_dropout)

    @property
    def drop_reference(self) -> float:
        """The accuracy this model's drops are measured from: its standard sibling's, else its own."""
        return self.accuracy if self.baseline_model is None else self.baseline_accuracy


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
    filled: tuple[str, ...] = ()            # columns the table lacked, filled in by :func:`complete_columns`
    selection: tuple[tuple[str, str], ...] = ()  # (("model", "r=0.3"), ("game", "cw-eot")): the part of the file read

    @property
    def intervals_known(self) -> bool:
        """Whether every ASR and clean-accuracy interval is known (a minimal table may have none)."""
        acc = np.array([[d.accuracy_low, d.accuracy_high] for d in self.defenders])
        return bool(np.isfinite(self.asr_low).all() and np.isfinite(self.asr_high).all() and np.isfinite(acc).all())

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
        ref = {r.model: r for r in references}
        defenders = tuple(replace(d, accuracy_drop=ref[d.model].drop_reference - d.accuracy,
                                  baseline=ref[d.model].baseline_model) for d in defenders)
        return replace(self, defenders=defenders, asr=np.asarray(asr, dtype=float), references=references)


def is_standard(recipe: str) -> bool:
    return recipe in ("", "standard")


def reference_accuracies(defenders: tuple[DefenderInfo, ...]) -> tuple[Reference, ...]:
    """Each model's a_test^max: the mean clean accuracy of its undefended rows, else its highest clean accuracy;
    and, for a model of another recipe, the standard model with the same r it is measured against (the best
    undefended accuracy among several; none where the table has no such model)."""
    own = _own_references(defenders)
    standard = [r for r in own if is_standard(r.recipe) and math.isfinite(r.train_dropout)]
    out = []
    for ref in own:
        siblings = [s for s in standard if not is_standard(ref.recipe) and math.isfinite(ref.train_dropout)
                    and abs(s.train_dropout - ref.train_dropout) < 1e-9]
        if siblings:
            base = max(siblings, key=lambda s: s.accuracy)
            ref = replace(ref, baseline_model=base.model, baseline_accuracy=base.accuracy,
                          baseline_name=base.model_name)
        out.append(ref)
    return tuple(out)


def _own_references(defenders: tuple[DefenderInfo, ...]) -> list[Reference]:
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
        out.append(Reference(model, rows[0].train_dropout, acc, source, rows[0].model_label, rows[0].recipe))
    return out


def _fail(source: str, message: str) -> DefdropError:
    return DefdropError(f"payoff table {source}: {message}")


def _where(df: pd.DataFrame, i: int) -> str:
    return f"line {i + 2} (defender {df.at[i, 'defender']}, attacker {df.at[i, 'attacker']})"


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # left as text: validation names it


def _attacker_fields(attacker: str) -> dict:
    """What an attacker id says (``cw[k=5,eot=8,exp]``: attack cw, kappa 5, EOT 8, the expected test)."""
    name, _, rest = attacker.strip().partition("[")
    out: dict = {"attack": name.strip(), "eot": 1.0, "success_test": "single", "kappa": 0.0}
    for part in rest.rstrip("]").split(",") if rest else []:
        key, eq, value = (t.strip() for t in part.partition("="))
        if not eq:
            out["success_test"] = "expected" if key == "exp" else out["success_test"]
        elif key == "eot":
            out["eot"] = _number(value)
        elif key in ("k", "kappa"):
            out["kappa"] = _number(value)
    return out


def _defender_fields(defender: str) -> dict:
    """What a defender id says: ``none``, ``dropout[r'=0.5]``, ``sap[...]``, maybe prefixed ``<model>/``."""
    model, _, own = defender.strip().rpartition("/")
    name, _, rest = own.partition("[")
    rate: float | str = math.nan
    if name == "none":
        rate = 0.0
    for part in rest.rstrip("]").split(",") if rest else []:
        key, eq, value = (t.strip() for t in part.partition("="))
        if eq and key in ("r'", "rate"):
            rate = _number(value)
    return {"defense": name.strip(), "test_dropout": rate, "model": model}


def complete_columns(df: pd.DataFrame, source: str = "<table>") -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The table with every column the game reads, and which of them were filled in.

    Only ``attacker``, ``defender``, ``asr`` and ``clean_accuracy`` must be there. The attacker's ``attack``,
    ``eot``, ``success_test`` and ``kappa`` are read from its id (``cw[k=5,eot=8,exp]``), the defender's ``defense``
    and ``test_dropout`` from its (``dropout[r'=0.5]``; a ``<model>/`` prefix names the model where the table has no
    ``model`` column, and ``r=<rate>`` gives the training rate); a table without a ``model`` column is one model's.
    Absent intervals (both bounds of ``asr_low``/``asr_high`` or of ``clean_accuracy_low``/``_high``) and
    ``l2_mean`` are unknown (NaN), never invented."""
    missing = [c for c in MINIMAL_COLUMNS if c not in df.columns]
    missing += [b for pair in INTERVALS for b in pair if b not in df.columns and any(o in df.columns for o in pair)]
    if missing:
        missing = sorted(set(missing), key=REQUIRED_COLUMNS.index)
        raise _fail(source, f"missing column(s) {', '.join(missing)} (needs at least {', '.join(MINIMAL_COLUMNS)}; "
                            "an interval needs both its bounds)")
    absent = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if not absent:
        return df, ()
    df = df.copy()
    text = lambda col: ["" if (isinstance(v, float) and math.isnan(v)) else str(v) for v in df[col]]  # noqa: E731
    attackers = [_attacker_fields(a) for a in text("attacker")]
    defenders = [_defender_fields(d) for d in text("defender")]
    for col in ("attack", "eot", "success_test"):
        if col in absent:
            df[col] = [a[col] for a in attackers]
    if "kappa" not in df.columns and {"attack", "eot", "success_test"} & set(absent):
        df["kappa"] = [a["kappa"] for a in attackers]
    for col in ("defense", "test_dropout"):
        if col in absent:
            df[col] = [d[col] for d in defenders]
    if "model" in absent:
        prefix = [d["model"] for d in defenders]
        labels = text("model_label") if "model_label" in df.columns else prefix
        df["model"] = [p or label or "table" for p, label in zip(prefix, labels)]
        if "model_label" not in df.columns:
            df["model_label"] = prefix
    if "train_dropout" in absent:
        names = text("model_label") if "model_label" in df.columns else [""] * len(df)
        df["train_dropout"] = [_number(n[2:]) if n.startswith("r=") else math.nan for n in names]
        df["train_dropout"] = [v if isinstance(v, float) else math.nan for v in df["train_dropout"]]
    for col in absent:
        if col not in df.columns:  # the intervals and l2_mean
            df[col] = math.nan
    return df, tuple(absent)


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
    numeric = list(NUMBER_COLUMNS) + [b for pair in INTERVALS for b in pair] + [
        "train_dropout", "test_dropout", "l2_mean"] + [
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
    for lo, hi in INTERVALS:
        values = df[[lo, hi]].to_numpy()
        bad = np.isinf(values).any(axis=1) | (np.isnan(values[:, 0]) != np.isnan(values[:, 1]))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(source, f"interval [{lo}, {hi}] = [{df.at[i, lo]:g}, {df.at[i, hi]:g}] on {_where(df, i)} "
                                "is not an interval (give both bounds, or leave both empty where unknown)")
    r = df["train_dropout"]
    bad = np.isinf(r.to_numpy()) | (r < 0).to_numpy() | (r >= 1).to_numpy()  # NaN: a model without a rate
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(source, f"train_dropout {df.at[i, 'train_dropout']:g} on {_where(df, i)} is not a rate in "
                            "[0, 1) (leave it empty for a model trained without one)")
    for col in ("model_label", "recipe"):
        if col in df:
            df[col] = ["" if (isinstance(v, float) and math.isnan(v)) else str(v).strip() for v in df[col]]
    recipes = df.groupby("model")["recipe"].nunique() if "recipe" in df else pd.Series(dtype=int)
    if (recipes > 1).any():
        model = str(recipes.index[recipes > 1][0])
        raise _fail(source, f"model {model[:12]} has {int(recipes.max())} different recipes; a model is trained once")
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


# --------------------------------------------------------------------------- games in one table
SPACES = {"paper": "the paper's attackers only (not adaptive, gameplay.rules)",
          "eot": "every attacker, the adaptive ones (EOT, the expected test, kappa > 0) included"}
"""The attacker spaces of a game, named as ``defdrop reproduce`` names its
``tables/game-r<r>-<attacks>-<space>.csv``."""


def _model_names(df: pd.DataFrame) -> list[str]:
    labels = df["model_label"] if "model_label" in df else [""] * len(df)
    return [model_name(label, m, r) for label, m, r in zip(labels, df["model"], df["train_dropout"])]


def _attack_sets(df: pd.DataFrame, names: list[str]) -> list[tuple[str, ...]]:
    """The table's attack sets: attacks run on the same models go together (``defdrop reproduce``'s sweeps, e.g.
    C&W on every model, FGSM and JSMA on two; in a table from ``defdrop payoff`` every attack is in one set)."""
    on: dict[str, set[str]] = {}
    for attack, name in zip(df["attack"], names):
        on.setdefault(attack, set()).add(name)
    groups: dict[frozenset, list[str]] = {}
    for attack, models in on.items():
        groups.setdefault(frozenset(models), []).append(attack)
    return [tuple(g) for g in groups.values()]


def _is_product(df: pd.DataFrame) -> bool:
    return len(df) == df[["model", "defender"]].drop_duplicates().shape[0] * df["attacker"].nunique() and \
        not df.duplicated(["model", "defender", "attacker"]).any()


def _adaptive_rows(df: pd.DataFrame) -> np.ndarray:
    kappa = df["kappa"] if "kappa" in df else 0.0
    return np.asarray(is_adaptive(df["eot"], df["success_test"], kappa), dtype=bool)


def game_choices(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The (model, game) pairs of a validated table that are whole games (every defender x attacker cell, at least
    two attackers), games named ``<attacks>-<space>`` (``cw-eot``, ``fgsm+jsma-paper``) as reproduce names them."""
    names = np.array(_model_names(df), dtype=object)
    adaptive = _adaptive_rows(df)
    out = []
    for model in dict.fromkeys(names):
        for attacks in _attack_sets(df, list(names)):
            rows = (names == model) & df["attack"].isin(attacks).to_numpy()
            for space, keep in (("paper", rows & ~adaptive), ("eot", rows)):
                sub = df[keep]
                if space == "eot" and not (rows & adaptive).any():
                    continue  # the same game as "paper"
                if sub["attacker"].nunique() >= 2 and _is_product(sub):
                    out.append((model, f"{'+'.join(attacks)}-{space}"))
    return out


def _choices_text(choices: list[tuple[str, str]], limit: int = 12) -> str:
    text = ", ".join(f"--model {m} --game {g}" for m, g in choices[:limit])
    return text + (f", ... ({len(choices) - limit} more)" if len(choices) > limit else "")


def select_game(df: pd.DataFrame, source: str = "<table>", model: str | None = None,
                game: str | None = None) -> tuple[pd.DataFrame, tuple[tuple[str, str], ...]]:
    """The rows of one game of a validated table, and what was selected.

    ``model``: a model's name (``r=0.3``, its label) or the start of its hash. ``game``: ``<attacks>-<space>``,
    ``<attacks>`` or ``<space>``: attacks joined by ``+`` (``fgsm+jsma``; any order), spaces as in :data:`SPACES`
    (``paper``: the paper's attackers only; ``eot``: with the adaptive ones). A table that is not one game without
    them (``defdrop reproduce``'s ``tables/payoff.csv`` holds every model's sweeps) is an error listing the choices."""
    names = np.array(_model_names(df), dtype=object)
    keep = np.ones(len(df), dtype=bool)
    selection: list[tuple[str, str]] = []
    if model is not None:
        wanted = model.strip()
        hit = (names == wanted) | df["model"].astype(str).str.startswith(wanted).to_numpy() if len(wanted) >= 6 \
            else names == wanted
        if not hit.any():
            raise _fail(source, f"has no model {wanted!r}; its models: {', '.join(dict.fromkeys(names))}")
        found = list(dict.fromkeys(names[hit]))
        if len(found) > 1:
            raise _fail(source, f"model {wanted!r} matches {len(found)} models ({', '.join(found)}); give its name")
        keep &= names == found[0]
        selection.append(("model", found[0]))
    if game is not None:
        wanted = game.strip()
        attacks_part, _, space = wanted.rpartition("-")
        if space not in SPACES:  # no space given: every attacker of the attack set
            attacks_part, space = wanted, None
        known = list(dict.fromkeys(df.loc[keep, "attack"]))
        attacks = [a.strip() for a in attacks_part.split("+") if a.strip()] if attacks_part else known
        unknown = [a for a in attacks if a not in known]
        if unknown or not attacks:
            choices = game_choices(df[keep].reset_index(drop=True))
            raise _fail(source, f"has no game {wanted!r} (attack {', '.join(unknown) or '?'} not in it); choose "
                                f"one: {_choices_text(choices) or 'spaces ' + ', '.join(SPACES)}")
        keep &= df["attack"].isin(attacks).to_numpy()
        if space == "paper":
            keep &= ~_adaptive_rows(df)
        selection.append(("game", f"{'+'.join(attacks)}-{space or 'eot'}" if attacks_part else (space or "eot")))
        if not keep.any():
            raise _fail(source, f"game {wanted!r} has no rows (no attacker of the paper's kind)")
    sub = df[keep].reset_index(drop=True)
    several = len(set(names[keep])) > 1 or len(_attack_sets(sub, _model_names(sub))) > 1
    if several and not _is_product(sub):
        choices = game_choices(sub)
        if choices:  # else the table has gaps, not several games: the missing cell is named below
            n_def = sub[["model", "defender"]].drop_duplicates().shape[0]
            n_att = sub["attacker"].nunique()
            raise _fail(source, f"holds several games ({len(sub)} cells, not {n_def} defenders x {n_att} attackers "
                                f"= {n_def * n_att}); choose one: {_choices_text(choices)}")
    return sub, tuple(selection)


def payoff_table_from_frame(df: pd.DataFrame, source: str = "<table>", images: ImageData | None = None, *,
                            model: str | None = None, game: str | None = None) -> PayoffTable:
    """Validate a payoff-table DataFrame (columns it lacks filled in: :func:`complete_columns`), take one game of
    it (:func:`select_game`) and arrange it as defenders x attackers arrays; ``images`` (its per-image data) is
    checked against the table and attached (:func:`attach_images`)."""
    df, filled = complete_columns(df, source)
    df = _validate(df, source)
    df, selection = select_game(df, source, model, game)
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
    recipes = dict(zip(df["model"], df["recipe"])) if "recipe" in df else {}
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
                                      model_label=model_labels[r["model"]],
                                      recipe=recipes.get(r["model"]) or "standard"))
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
                        cell_key=keys, filled=filled, selection=selection)
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


def read_payoff_csv(path: str | Path, *, model: str | None = None, game: str | None = None) -> PayoffTable:
    """Read and validate a payoff CSV (and its sidecar ``X.images.npz`` when there is one), one game of it
    (``model``, ``game``: :func:`select_game`); every problem, whatever the bytes, is a one-line ``DefdropError``."""
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
        try:
            return payoff_table_from_frame(df, str(path), images, model=model, game=game)
        except DefdropError as exc:
            split = sorted(path.parent.glob("game-*.csv"))
            if "holds several games" in str(exc) and split:
                raise DefdropError(f"{exc} (or solve one of the {len(split)} game tables written beside it: "
                                   f"{path.parent / 'game-*.csv'})") from None
            raise
