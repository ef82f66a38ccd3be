"""Gradient variance of randomized defenses (paper section 3.3 and Figure 4), measured rather than assumed.

The paper explains defensive dropout by the spread of the gradients an attacker samples: with test dropout
rate r' the densities of sampled gradients get "shorter and fatter" as r' grows, and are much wider than
under SAP. This module samples those gradients and summarizes them.

What is sampled. The C&W attack (paper eq. 5) minimizes ``||delta||_2^2 + c * f(x + delta)`` with
``f(x) = max(max_{i != t} Z_i(x) - Z_t(x), -kappa)``. At the attack's starting point ``delta = 0`` the
distance term has zero gradient, so the attacker's stochastic gradient is ``c * grad_x f(x; m)``, one per
defender sample m (a dropout mask or an SAP draw). We draw ``S`` of them per input, each on a fresh defender
sample, by repeating the input S times along the batch (every row draws its own mask) in a few batched
forward/backward passes. The model's train/eval mode is never touched: the defense is random in every mode,
and training dropout stays off when the model arrives in eval mode. A deterministic defender (``none``:
``nn.Identity`` or r' = 0, model in eval mode) has S identical gradients by definition; they are computed
once and repeated, since a batched pass may round rows differently (~1e-7 relative) depending on how
threads split the batch.

Inputs (see :func:`select_inputs`): the first test images that the undefended model (empty defense slot, eval
mode) classifies correctly, each with the target class ``t = (label + 1) mod num_classes``.

Statistics of one gradient set ``g_1 .. g_S`` (each flattened to P dimensions), see
:func:`gradient_statistics`, each over the D chosen dimensions (``_chosen``) and over all P (``_all``):

- ``var``: mean over dimensions of the per-dimension sample variance ``s_j^2`` (ddof = 1);
- ``snr``: leave-one-out signal-to-noise ratio, ``sign(Q) sqrt(|Q|)`` with ``Q`` the mean over dimensions of
  ``q_j / s_j^2`` and ``q_j = mean_s g_sj * mean_{t != s} g_tj = mean_j^2 - s_j^2 / S`` (each sample times the mean
  of the *others*: an unbiased estimate of the squared expected gradient, where ``mean_j^2`` alone carries the
  noise ``s_j^2 / S``). ``inf`` where some ``s_j = 0 < |mean_j|``; dimensions with ``s_j = 0 = mean_j`` are left
  out; negative when the noise outweighs any signal;
- ``cos``: mean over samples of ``cos(g_s, mean_{t != s} g_t)``, each sample against the mean of the others
  (against a mean that includes it, pure noise with S = 50 would give about 0.14; leave-one-out gives about 0).
  Samples with a zero vector, or whose others average to zero, are left out;
- ``kurt``: mean over dimensions of the excess (Fisher) kurtosis ``m4 / m2^2 - 3``
  (``scipy.stats.kurtosis(bias=True)``; constant dimensions are left out);

plus ``snr_vec = sign(sum_j q_j) sqrt(|sum_j q_j| / sum_j s_j^2)`` (one leave-one-out SNR for the whole vector:
about 0 for pure noise, whatever its distribution), ``grad_norm`` (mean ``||g_s||_2``) and ``zero_frac``
(fraction of samples whose gradient is exactly zero, i.e. ``f`` was clamped at ``-kappa`` because that sample
already classified x as the target with margin kappa).

Chosen dimensions: the same D dimensions for every defender on a given input, so panels compare.
``magnitude`` takes the D largest ``|grad_x f|`` of the *undefended* model on that input (deterministic; ties
go to the lower index), so the choice does not depend on which defenders are listed. ``random`` draws D
distinct dimensions per input from ``numpy.random.default_rng(seed)``.

Aggregation over inputs: the mean over images, with a 95% percentile-bootstrap interval (2,000 resamples of
images, seeded) and the bootstrap standard error. Intervals need at least 2 images (NaN otherwise).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps
from torch import nn

from analysis.formatting import STAT_LABELS, format_column, scale_exponent, scale_text, sig
from analysis.verdicts import AGREES, ALPHA, DISAGREES, INCONCLUSIVE, LEVEL, against_sign, combine, level_text
from gameplay.images import ImageData
from payoffs.attacks.objectives import cw_f
from payoffs.defenses import SAP, TestTimeDropout
from payoffs.errors import DefdropError
from payoffs.models import with_defense
from payoffs.slots import undefended

DIM_SELECTIONS = ("magnitude", "random")
SCOPED = ("var", "snr", "cos", "kurt")
STATISTICS = tuple(f"{s}_{scope}" for s in SCOPED for scope in ("chosen", "all")) + (
    "snr_vec", "grad_norm", "zero_frac")

INTERVAL = f"{round(100 * LEVEL)}% percentile bootstrap over images (2000 resamples)"

Defender = tuple[str, nn.Module]


# --------------------------------------------------------------------------- defenders and inputs
def describe_defense(module: nn.Module) -> tuple[str, float]:
    """``(defense, test_dropout)`` in the payoff table's convention: none/0, dropout/r', sap/NaN."""
    if isinstance(module, nn.Identity) or (isinstance(module, TestTimeDropout) and module.rate == 0.0):
        return "none", 0.0
    if isinstance(module, TestTimeDropout):
        return "dropout", float(module.rate)
    if isinstance(module, SAP):
        return "sap", float("nan")
    return "other", float("nan")


def build_defenders(rates: Sequence[float], sap: bool = False, sap_fraction: float = 1.0) -> list[Defender]:
    """Defender strategies labelled like ``payoffs.strategy.DefenderStrategy.id``: ``none`` (r' = 0),
    ``dropout[r'=0.5]``, ``sap[frac=1]``."""
    from payoffs.strategy import DefenderStrategy

    strategies = [DefenderStrategy.dropout(float(r)) for r in rates]
    if sap:
        strategies.append(DefenderStrategy.of("sap", fraction=sap_fraction))
    return [(d.id, d.module()) for d in strategies]


@torch.no_grad()
def select_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, images: int,
                  num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``images`` inputs the undefended model classifies correctly, with target ``(y + 1) mod K``.

    Returns ``(x_sel, y_sel, target)``. "Undefended" means without any defense (a
    :class:`payoffs.slots.DefendedModel`'s is left out) and the model in whatever mode it arrived in (eval after
    loading from a model source).
    """
    if images < 1:
        raise DefdropError(f"images {images} must be at least 1")
    from payoffs.evaluation import first_correct

    idx = first_correct(model, x, y, images)
    if len(idx) < images:
        raise DefdropError(f"images {images}: only {len(idx)} of {len(x)} test images are classified correctly")
    return x[idx], y[idx], (y[idx] + 1) % num_classes


# --------------------------------------------------------------------------- sampling
def sample_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, samples: int = 50,
                     kappa: float = 0.0, batch_size: int = 1000, seed: int | None = None) -> torch.Tensor:
    """``grad_x f(x_n; m_s)`` for every input n and defender sample s, shape ``(N, S, *x.shape[1:])`` on CPU.

    ``f`` is :func:`payoffs.attacks.objectives.cw_f`. Sample s of input n is keyed by (``seed``, input n, s)
    (:mod:`payoffs.noise`), so the gradients do not depend on ``batch_size`` (rows per pass, whole inputs per
    pass); without a seed the global RNG draws. A deterministic defender gives S identical gradients, computed once.
    """
    from payoffs import noise
    from payoffs.sampling import is_random, sample_input_gradients

    device = next(model.parameters()).device
    n = len(x)
    out = torch.empty((n, samples, *x.shape[1:]), dtype=torch.float32)
    k = samples if is_random(model) else 1
    per = max(1, batch_size // k)
    for i in range(0, n, per):
        xb = x[i:i + per].to(device=device, dtype=torch.float32)
        tb = target[i:i + per].to(device)
        keys = None if seed is None else noise.row_keys(seed, torch.arange(i, i + len(xb), device=device),
                                                        noise.GRADIENTS)
        grads = sample_input_gradients(model, xb, k, keys,
                                       lambda logits, tb=tb: cw_f(logits, tb.repeat(k), kappa))  # (k, B, ...)
        out[i:i + len(xb)] = grads.transpose(0, 1).detach().cpu().expand(len(xb), samples, *x.shape[1:])
    return out


def choose_dims(reference: np.ndarray, dims: int, how: str = "magnitude",
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of D dimensions of a flattened gradient ``reference`` (shape (P,)).

    ``magnitude``: the D largest ``|reference_j|``, largest first, ties to the lower index. ``random``: D
    distinct indices from ``rng``, sorted.
    """
    if how == "magnitude":
        return np.argsort(-np.abs(reference), kind="stable")[:dims]
    if how == "random":
        return np.sort((rng or np.random.default_rng(0)).choice(reference.size, size=dims, replace=False))
    raise DefdropError(f"dim_selection {how!r} must be one of {', '.join(DIM_SELECTIONS)}")


# --------------------------------------------------------------------------- statistics
def _signed_root(x: float) -> float:
    return math.copysign(math.sqrt(abs(x)), x)


def _mean_and_var(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # A dimension equal in every sample has variance exactly 0; summation rounding must not say otherwise.
    constant = (g == g[0]).all(axis=0)
    return np.where(constant, g[0], g.mean(axis=0)), np.where(constant, 0.0, g.var(axis=0, ddof=1))


def _loo_signal(g: np.ndarray) -> np.ndarray:
    """Per dimension, the mean over samples of ``g_s`` times the mean of the other samples: ``sum_{s != t} g_s
    g_t / (S (S - 1)) = mean^2 - s^2 / S``, computed as ``((sum g)^2 - sum g^2) / (S (S - 1))`` so that a
    dimension with one nonzero sample gives exactly 0."""
    s = len(g)
    return (g.sum(axis=0) ** 2 - (g ** 2).sum(axis=0)) / (s * (s - 1))


def _scope_statistics(g: np.ndarray) -> dict[str, float]:
    s = len(g)
    mean, var = _mean_and_var(g)
    moving = var > 0
    signal = _loo_signal(g)
    if ((~moving) & (mean != 0)).any():
        snr = math.inf  # a dimension with signal and no noise
    elif moving.any():
        snr = _signed_root(float(np.mean(signal[moving] / var[moving])))
    else:
        snr = math.nan  # every dimension zero in every sample: no signal and no noise
    kurt = sps.kurtosis(g[:, moving], axis=0, fisher=True, bias=True) if moving.any() else np.array([])
    others = (s * mean - g) / (s - 1)  # row s: the mean of the other S - 1 samples
    norms, onorms = np.linalg.norm(g, axis=1), np.linalg.norm(others, axis=1)
    ok = (norms > 0) & (onorms > 0)
    cos = np.einsum("ij,ij->i", g[ok], others[ok]) / (norms[ok] * onorms[ok])
    return {
        "var": float(var.mean()),
        "snr": snr,
        "cos": float(np.clip(cos, -1.0, 1.0).mean()) if cos.size else float("nan"),
        "kurt": float(np.mean(kurt)) if np.size(kurt) else float("nan"),
    }


def gradient_statistics(grads: np.ndarray, chosen: np.ndarray | Sequence[int]) -> dict[str, float]:
    """Statistics of one gradient set ``grads`` (S samples x P dims) over ``chosen`` dims and over all dims.

    Keys: ``var_chosen, var_all, snr_chosen, snr_all, cos_chosen, cos_all, kurt_chosen, kurt_all, snr_vec,
    grad_norm, zero_frac`` (formulas in the module docstring).
    """
    g = np.asarray(grads, dtype=np.float64).reshape(len(grads), -1)
    if g.shape[0] < 2:
        raise DefdropError(f"gradient statistics need at least 2 samples, got {g.shape[0]}")
    chosen = np.asarray(chosen, dtype=np.int64)
    out: dict[str, float] = {}
    for scope, sub in (("chosen", g[:, chosen]), ("all", g)):
        for name, value in _scope_statistics(sub).items():
            out[f"{name}_{scope}"] = value
    mean, var = _mean_and_var(g)
    total_var = float(var.sum())
    signal = float(_loo_signal(g).sum())  # leave-one-out, as for ``snr``
    mnorm = float(np.linalg.norm(mean))
    out["snr_vec"] = (_signed_root(signal / total_var) if total_var > 0
                      else (math.inf if mnorm > 0 else math.nan))
    norms = np.linalg.norm(g, axis=1)
    out["grad_norm"] = float(norms.mean())
    out["zero_frac"] = float((norms == 0).mean())
    return {k: out[k] for k in STATISTICS}


def bootstrap_mean(values: np.ndarray, seed: int = 0, resamples: int = 2000,
                   level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, low, high, std_error)`` of the mean of ``values`` by percentile bootstrap; NaNs dropped.

    Infinite values are allowed (quantiles use the inverted CDF, no interpolation between inf and finite).
    Fewer than 2 values give NaN bounds.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (math.nan,) * 4
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha], method="inverted_cdf")
    finite = means[np.isfinite(means)]
    se = float(finite.std(ddof=1)) if finite.size == means.size else math.inf
    return mean, float(min(low, mean)), float(max(high, mean)), se


# --------------------------------------------------------------------------- the analysis
@dataclass(frozen=True, eq=False)
class GradVarResult:
    """Sampled-gradient statistics for several defender strategies on the same model and inputs.

    ``table``: one row per defender (columns ``defender, defense, test_dropout, sap_draws, train_dropout, model,
    n_images, samples, dims, dim_selection`` then, per statistic, ``<stat>, <stat>_low, <stat>_high,
    <stat>_se``). ``per_image``: one row per (image, defender) with the raw statistics. ``values``: the sampled
    gradient values at the chosen dims, shape (N images, K defenders, S samples, D dims); ``dims``: the
    chosen flat indices, shape (N, D). (``eq=False``: it holds arrays and DataFrames.)
    """

    table: pd.DataFrame
    per_image: pd.DataFrame
    values: np.ndarray
    dims: np.ndarray
    labels: tuple[str, ...]
    input_shape: tuple[int, ...]
    true_labels: np.ndarray
    targets: np.ndarray
    samples: int
    dim_selection: str
    seed: int
    kappa: float
    train_dropout: float | None = None
    model: str | None = None
    interval: str = INTERVAL
    model_label: str | None = None
    slot: str | None = None
    num_classes: int = 10

    def dim_name(self, flat: int) -> str:
        """``x[c,h,w]`` for a flat index into the input."""
        c, h, w = np.unravel_index(int(flat), self.input_shape)
        return f"x[{c},{h},{w}]"


def _validate(x: torch.Tensor, target: torch.Tensor, defenders: Sequence[Defender], samples: int, dims: int,
              dim_selection: str, kappa: float) -> None:
    if x.dim() != 4 or len(x) < 1:
        raise DefdropError(f"gradvar inputs must be a non-empty batch N x C x H x W, got shape {tuple(x.shape)}")
    if target.shape != (len(x),):
        raise DefdropError(f"gradvar targets must have shape ({len(x)},), got {tuple(target.shape)}")
    if not defenders:
        raise DefdropError("gradvar needs at least one defender strategy")
    labels = [label for label, _ in defenders]
    if len(set(labels)) != len(labels):
        raise DefdropError(f"defender labels must be unique, got {labels}")
    if samples < 2:
        raise DefdropError(f"samples {samples} must be at least 2 (a variance needs two gradients)")
    size = int(np.prod(x.shape[1:]))
    if not 1 <= dims <= size:
        raise DefdropError(f"dims {dims} must be between 1 and the input size {size}")
    if dim_selection not in DIM_SELECTIONS:
        raise DefdropError(f"dim_selection {dim_selection!r} must be one of {', '.join(DIM_SELECTIONS)}")
    if not (kappa >= 0 and math.isfinite(kappa)):
        raise DefdropError(f"kappa {kappa} must be a finite number >= 0")


def _model_id(model: nn.Module) -> str:
    """The model's identity, as its source and the payoff table's ``model`` column name it."""
    from payoffs.checkpoint import weights_hash
    return weights_hash(undefended(model))


@torch.no_grad()
def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    return int(model(x[:1].to(next(model.parameters()).device)).shape[-1])


def run_gradvar(model: nn.Module, x: torch.Tensor, target: torch.Tensor, defenders: Sequence[Defender],
                samples: int = 50, dims: int = 5, dim_selection: str = "magnitude", seed: int = 0,
                kappa: float = 0.0, batch_size: int = 1000,
                true_labels: torch.Tensor | None = None, slot: str | None = None,
                model_label: str | None = None,
                progress: Callable[[int, int, str], None] | None = None) -> GradVarResult:
    """Sample S gradients of the C&W objective per input and defender, and summarize them.

    ``model``: any classifier giving logits (each defender is placed after its layer ``slot`` with
    :func:`payoffs.slots.with_defense`, default the model's own slot, the paper CNN's dropout layer; its mode is
    left alone); ``model_label`` names it on the page. ``x``: N x C x H x W inputs in [0, 1];
    ``target``: (N,) target classes; ``true_labels`` (optional) only label the figures. ``defenders``:
    ``(label, module)`` pairs. The RNG is seeded per defender from ``seed`` (and restored afterwards), so
    results are reproducible on the same device. ``batch_size`` bounds the rows of one forward/backward pass.
    ``progress(done, total, label)``: gradients sampled so far (N x S per defender) after each defender.
    """
    _validate(x, target, defenders, samples, dims, dim_selection, kappa)
    n, size = len(x), int(np.prod(x.shape[1:]))

    reference = sample_gradients(with_defense(model, nn.Identity(), slot), x, target, 1, kappa, batch_size)
    reference = reference.reshape(n, size).numpy()
    from payoffs.defenses import is_deterministic
    dim_rng = np.random.default_rng(seed)
    chosen = np.stack([choose_dims(reference[i], dims, dim_selection, dim_rng) for i in range(n)])

    values = np.empty((n, len(defenders), samples, dims))
    rows: list[dict] = []
    for k, (label, defense) in enumerate(defenders):
        kind, rate = describe_defense(defense)
        if is_deterministic(defense) and not model.training:
            # Deterministic: every sample is the undefended gradient (computed once, not S times).
            grads = np.repeat(reference[:, None, :], samples, axis=1).astype(np.float64)
        else:
            defender_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
            grads = sample_gradients(with_defense(model, defense, slot), x, target, samples, kappa, batch_size,
                                     seed=defender_seed)
            grads = grads.reshape(n, samples, size).double().numpy()
        for i in range(n):
            values[i, k] = grads[i][:, chosen[i]]
            rows.append({"image": i, "defender": label, "defense": kind, "test_dropout": rate,
                         **gradient_statistics(grads[i], chosen[i])})
        if progress is not None:
            progress((k + 1) * n * samples, len(defenders) * n * samples, label)
    per_image = pd.DataFrame(rows)

    from payoffs.sources import declared_train_dropout
    train_dropout = declared_train_dropout(undefended(model))
    model_id = _model_id(model)
    summary: list[dict] = []
    for label, defense in defenders:
        kind, rate = describe_defense(defense)
        sub = per_image[per_image["defender"] == label]
        draws = getattr(defense, "draws", None) if kind == "sap" else None
        row = {"defender": label, "defense": kind, "test_dropout": rate,
               "sap_draws": math.nan if draws is None else float(draws), "train_dropout": train_dropout,
               "model": model_id, "n_images": n, "samples": samples, "dims": dims, "dim_selection": dim_selection}
        for stat in STATISTICS:
            mean, low, high, se = bootstrap_mean(sub[stat].to_numpy(), seed=seed)
            row.update({stat: mean, f"{stat}_low": low, f"{stat}_high": high, f"{stat}_se": se})
        summary.append(row)
    return GradVarResult(
        table=pd.DataFrame(summary), per_image=per_image, values=values, dims=chosen,
        labels=tuple(label for label, _ in defenders), input_shape=tuple(int(s) for s in x.shape[1:]),
        true_labels=np.full(n, -1) if true_labels is None else np.asarray(true_labels).copy(),
        targets=target.cpu().numpy().copy(), samples=samples, dim_selection=dim_selection, seed=seed,
        kappa=float(kappa),
        train_dropout=None if train_dropout is None else float(train_dropout), model=model_id,
        model_label=model_label, slot=with_defense(model, nn.Identity(), slot).slot,
        num_classes=_num_classes(model, x))


# --------------------------------------------------------------------------- reading the result
def summary_table(result: GradVarResult,
                  columns: Sequence[str] = ("var_chosen", "var_all", "snr_all", "snr_vec", "cos_all",
                                            "kurt_chosen")) -> pd.DataFrame:
    """The statistics table as strings for people, ``mean [low, high]`` per statistic, one row per defender
    (:func:`analysis.formatting.format_column`: readable headers, 3 significant digits, a column of tiny values
    scaled by a power of 1000 named in its header instead of scientific notation)."""
    t = result.table.reset_index(drop=True)
    out = pd.DataFrame({"defender": t["defender"]}, dtype=object)
    for stat in columns:
        title, cells = format_column(stat, t[stat], t[f"{stat}_low"], t[f"{stat}_high"])
        out[title] = cells
    return out


def _steps_text(steps: list[tuple[str, str, float, float, float]], label) -> str:
    """``a -> b: +1.23 [+0.456, +2.01]; ...`` with one scale for all steps (no scientific notation)."""
    exponent = scale_exponent([v for *_, m, low, high in steps for v in (m, low, high)])
    k = 10.0 ** -exponent

    def one(v: float) -> str:
        return sig(v * k, signed=True)
    text = "; ".join(f"{label(lo, hi)}: {one(m)} [{one(low)}, {one(high)}]" for lo, hi, m, low, high in steps)
    return text + (f" (values{scale_text(exponent).removeprefix(',')})" if exponent else "")


@dataclass(frozen=True)
class Check:
    """One claim of the paper, tested on this result: ``verdict`` is agrees / disagrees / inconclusive
    (:mod:`analysis.verdicts`)."""

    claim: str
    verdict: str
    detail: str

    @property
    def holds(self) -> bool | None:
        """True (agrees), False (disagrees) or None (inconclusive)."""
        return {AGREES: True, DISAGREES: False}.get(self.verdict)


def _paired_steps(result: GradVarResult, statistic: str, pairs: list[tuple[str, str]],
                  seed: int) -> list[tuple[str, str, float, float, float]]:
    """For each (lower, upper) defender pair: the mean over images of ``upper - lower`` (per image, so the images
    pair up) with its percentile-bootstrap interval over images at :data:`analysis.verdicts.LEVEL`."""
    wide = result.per_image.pivot(index="image", columns="defender", values=statistic)
    out = []
    for k, (lo, hi) in enumerate(pairs):
        diff = (wide[hi] - wide[lo]).to_numpy(float)
        mean, low, high, _ = bootstrap_mean(diff[np.isfinite(diff)], seed=seed + k, level=LEVEL)
        out.append((lo, hi, mean, low, high))
    return out


def paper_checks(result: GradVarResult, statistic: str = "var_all", seed: int = 0) -> list[Check]:
    """Test section 3.3's two claims about Figure 4 on this result, from intervals over images.

    1. Variance grows with r': for each pair of neighbouring rates, the per-image difference (higher rate minus
       lower) with its bootstrap interval over images; agrees when every step's interval lies above 0, disagrees
       when some step's lies at or below 0, else inconclusive (:func:`analysis.verdicts.combine`).
    2. SAP's variance is below every r' > 0 dropout strategy's: per dropout strategy, the per-image difference
       (dropout minus SAP), combined the same way.
    """
    t = result.table
    checks: list[Check] = []
    drop = t[t["defense"].isin(["none", "dropout"])].sort_values("test_dropout")
    if len(drop) >= 2:
        labels = list(drop["defender"])
        steps = _paired_steps(result, statistic, list(zip(labels[:-1], labels[1:])), seed)
        verdict = combine([against_sign(low, high, +1) for *_, low, high in steps])
        checks.append(Check(
            f"{STAT_LABELS.get(statistic, statistic)} grows with r'", verdict,
            "per step, mean over images of the increase [" + level_text() + " bootstrap interval over images]: "
            + _steps_text(steps, lambda lo, hi: f"{lo} -> {hi}")))
    sap = t[t["defense"] == "sap"]
    dropout = t[(t["defense"] == "dropout") & (t["test_dropout"] > 0)]
    for _, s in sap.iterrows():
        if dropout.empty:
            break
        steps = _paired_steps(result, statistic, [(s["defender"], d) for d in dropout["defender"]], seed)
        verdict = combine([against_sign(low, high, +1) for *_, low, high in steps])
        checks.append(Check(
            f"{s['defender']}: {STAT_LABELS.get(statistic, statistic)} below every dropout strategy (Fig. 4f)", verdict,
            f"per dropout strategy, mean over images of (dropout - {s['defender']}) [{level_text()} bootstrap "
            "interval over images]: "
            + _steps_text(steps, lambda lo, hi: hi)))
    return checks


# --------------------------------------------------------------------------- against a payoff table
EXPECTED_SIGN = {"var": -1, "snr": 1, "cos": 1, "grad": 0, "kurt": 0, "zero": 0}


def _strategy_key(defense: str, rate: float, draws: float) -> tuple[str, float, float]:
    """``(defense, r' or -1 for SAP, SAP draws or -1 for one per unit)``: what identifies a defender strategy."""
    def num(v: float) -> float:
        return -1.0 if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)
    return defense, (-1.0 if defense == "sap" else num(rate)), (num(draws) if defense == "sap" else -1.0)


def read_payoff_frame(path: str | Path) -> pd.DataFrame:
    """A payoff CSV (written by ``defdrop payoffs``) as a DataFrame, validated by
    :func:`gameplay.table.read_payoff_csv` (one-line ``DefdropError`` on any problem)."""
    from gameplay.table import read_payoff_csv

    read_payoff_csv(path)
    return pd.read_csv(path)


def read_payoff_images(path: str | Path) -> ImageData | None:
    """The per-image sidecar ``X.images.npz`` of a payoff CSV ``X.csv`` (validated), or None if there is none."""
    from gameplay.images import read_image_data, sidecar_path

    side = sidecar_path(path)
    return read_image_data(side) if side.is_file() else None


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.unique(x).size < 2 or np.unique(y).size < 2:
        return math.nan
    return float(sps.spearmanr(x, y).statistic)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of (R, n) arrays (Pearson of average ranks); NaN for constant rows."""
    rx, ry = sps.rankdata(x, axis=1), sps.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=1) / den, np.nan)


PERMUTATIONS = 9999
"""Random pairings of the permutation test when not all n! are enumerated (exact when n! <= 9999: n <= 7)."""


def _permutation_p(x: np.ndarray, y: np.ndarray, seed: int, resamples: int = PERMUTATIONS) -> float:
    """Two-sided permutation p-value of Spearman's rho = 0: exact (all n! pairings, the observed one among them)
    when n! <= ``resamples`` (n <= 7 at the default 9999, since 7! = 5040 and 8! = 40320), otherwise
    ``resamples`` random pairings plus the observed one."""
    rho = _spearman(x, y)
    if math.isnan(rho):
        return math.nan
    n = len(x)
    if math.factorial(n) <= resamples:
        perms = np.array(list(itertools.permutations(range(n))))
        extra = 0
    else:
        rng = np.random.default_rng(seed)
        perms = np.argsort(rng.random((resamples, n)), axis=1)
        extra = 1
    rhos = _spearman_rows(np.broadcast_to(x, perms.shape), y[perms])
    hits = int(np.sum(np.abs(rhos) >= abs(rho) - 1e-12))
    return (hits + extra) / (len(perms) + extra)


NOISE_INTERVAL = ("measurement-noise interval: every estimate redrawn within its standard error, independently "
                  "(not a bootstrap over images or strategies)")


@dataclass(frozen=True, eq=False)
class VarianceAsrRelation:
    """Does a gradient statistic predict ASR across defender strategies?

    ``table``: one row per (attacker[, model], statistic): ``n`` strategies, Spearman ``rho``, ``rho_low`` /
    ``rho_high`` (its interval at :data:`analysis.verdicts.LEVEL`; ``interval`` says which kind: a bootstrap over
    images when the per-image statistics are given, else a measurement-noise interval), ``p_value`` (permutation
    test of rho = 0 over the strategies, exact for n <= 7), ``rho_dropout_only`` (SAP left out), ``expected``
    (the sign the paper's explanation predicts: variance -, SNR/cosine +) and ``verdict``.
    ``points``: the merged (statistic, ASR) pairs.
    """

    table: pd.DataFrame
    points: pd.DataFrame
    statistics: tuple[str, ...]


def _statistic_draws(g: pd.DataFrame, stat: str, per_image: pd.DataFrame | None, resamples: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(resamples, k) draws of each strategy's mean statistic: images resampled jointly across strategies when
    ``per_image`` is given, else each estimate redrawn within its standard error."""
    x = g[stat].to_numpy(float)
    if per_image is not None:
        wide = per_image.pivot(index="image", columns="defender", values=stat)[list(g["defender"])].to_numpy(float)
        idx = rng.integers(0, len(wide), size=(resamples, len(wide)))
        with np.errstate(invalid="ignore"):
            return np.nanmean(wide[idx], axis=1)
    se = np.nan_to_num(g[f"{stat}_se"].to_numpy(float), posinf=0.0) if f"{stat}_se" in g else np.zeros(len(g))
    return x + rng.standard_normal((resamples, len(x))) * se


def _asr_draws(g: pd.DataFrame, images: ImageData | None, resamples: int,
               rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """(resamples, k) draws of each strategy's ASR: paired over the payoff table's images when ``images`` holds
    every cell, else each ASR redrawn within its standard error; and whether paired."""
    keys = list(g["key"]) if "key" in g else []
    if images is not None and keys and all(images.has(k) for k in keys):
        return images.resample(images.cell_rows(keys), np.array([], dtype=np.int64), resamples, rng)[0], True
    asr = g["asr"].to_numpy(float)
    se = np.nan_to_num(g["asr_std_error"].to_numpy(float)) if "asr_std_error" in g else np.zeros(len(g))
    return np.clip(asr + rng.standard_normal((resamples, len(asr))) * se, 0.0, 1.0), False


def variance_asr_relation(stats_df: pd.DataFrame, payoff_df: pd.DataFrame,
                          statistics: Sequence[str] = ("var_all", "var_chosen", "snr_all", "snr_vec", "cos_all"),
                          resamples: int = 2000, seed: int = 0, alpha: float = ALPHA,
                          per_image: pd.DataFrame | None = None,
                          images: ImageData | None = None) -> VarianceAsrRelation:
    """Relate gradient statistics (a :attr:`GradVarResult.table`) to ASR (a payoff table) over defenders.

    Rows are matched on the defender strategy ``(defense, test_dropout, sap_draws)`` (``sap_draws`` NaN = one
    draw per unit; a table without the column counts as all NaN). The
    payoff table is narrowed to the statistics' model: its ``train_dropout`` and, where the payoff table names
    it, its ``model``. Groups are attackers (and models, if several remain).

    The interval of rho: with ``per_image`` (:attr:`GradVarResult.per_image`) a percentile bootstrap over images,
    the gradient images resampled jointly across strategies and the ASRs paired over the payoff table's images
    (``images``, :class:`gameplay.images.ImageData`) or, without them, redrawn within their standard errors;
    without ``per_image`` a measurement-noise interval (every estimate redrawn within its standard error). The
    ``interval`` column names which. Verdict (statistics with a predicted sign): ``agrees`` when p < alpha and the
    interval lies on the predicted side of 0, ``disagrees`` when p < alpha and it lies on the other side,
    ``inconclusive`` otherwise; statistics the paper makes no prediction for get ``n/a``.
    """
    for col in ("defense", "test_dropout", *statistics):
        if col not in stats_df.columns:
            raise DefdropError(f"statistics table lacks column {col!r}")
    for col in ("attacker", "defense", "test_dropout", "asr"):
        if col not in payoff_df.columns:
            raise DefdropError(f"payoff table lacks column {col!r}")
    if per_image is not None and "defender" not in stats_df:
        raise DefdropError("per-image statistics need the statistics table's defender column")
    pay = payoff_df.copy()
    if "train_dropout" in stats_df and "train_dropout" in pay and stats_df["train_dropout"].notna().all():
        rates = stats_df["train_dropout"].unique()
        if len(rates) == 1:
            pay = pay[np.isclose(pay["train_dropout"].astype(float), float(rates[0]))]
    if "model" in stats_df and "model" in pay:
        ids = set(stats_df["model"].dropna())
        if ids & set(pay["model"].astype(str)):
            pay = pay[pay["model"].astype(str).isin(ids)]
    if pay.empty:
        raise DefdropError("payoff table has no rows for the statistics' model (train_dropout/model do not match)")

    st = stats_df.copy()
    for frame in (st, pay):
        draws = frame["sap_draws"] if "sap_draws" in frame else pd.Series(math.nan, index=frame.index)
        frame["_key"] = [_strategy_key(d, r, n) for d, r, n in zip(frame["defense"], frame["test_dropout"], draws)]
    if st["_key"].duplicated().any():
        raise DefdropError("statistics table has two defenders with the same (defense, test_dropout, sap_draws)")
    groups = ["attacker"] + (["model"] if "model" in pay and pay["model"].nunique() > 1 else [])
    if pay.duplicated(groups + ["_key"]).any():
        raise DefdropError("payoff table has several cells for one attacker and defender strategy; "
                           "filter it to one model and one SAP variant")
    keep = [c for c in ("defender", "defense", "test_dropout", "_key") if c in st] + [
        c for s in statistics for c in (s, f"{s}_low", f"{s}_high", f"{s}_se") if c in st]
    asr_cols = [c for c in ("asr", "asr_low", "asr_high", "asr_std_error", "key") if c in pay]
    points = pay[groups + ["_key"] + asr_cols].merge(st[keep], on="_key", how="inner")
    points = points[points["asr"].notna()].drop(columns="_key").reset_index(drop=True)

    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for gkey, g in points.groupby(groups, sort=True):
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        asr = g["asr"].to_numpy(float)
        asr_draws, paired = _asr_draws(g, images, resamples, rng)
        for stat in statistics:
            x = g[stat].to_numpy(float)
            rho = _spearman(x, asr)
            draws = _spearman_rows(_statistic_draws(g, stat, per_image, resamples, rng), asr_draws)
            draws = draws[~np.isnan(draws)]
            half = (1.0 - LEVEL) / 2.0
            low, high = np.quantile(draws, [half, 1.0 - half]) if draws.size else (math.nan, math.nan)
            p = _permutation_p(x, asr, seed)
            drop_only = (g["defense"] != "sap").to_numpy()
            expected = EXPECTED_SIGN.get(stat.split("_")[0], 0)
            significant = not math.isnan(rho) and not math.isnan(p) and p < alpha
            if expected == 0:
                verdict = "n/a"
            else:
                verdict = against_sign(float(low), float(high), expected) if significant else INCONCLUSIVE
            if per_image is None:
                interval = NOISE_INTERVAL
            else:
                interval = ("bootstrap over images: gradient images resampled jointly across strategies, ASR "
                            + ("paired over the payoff table's images" if paired
                               else "redrawn within its standard errors"))
            rows.append({**dict(zip(groups, gkey)), "statistic": stat, "n": len(g), "rho": rho,
                         "rho_low": float(low), "rho_high": float(high), "interval": interval, "p_value": p,
                         "rho_dropout_only": _spearman(x[drop_only], asr[drop_only]),
                         "expected": {-1: "-", 1: "+", 0: "?"}[expected], "verdict": verdict})
    return VarianceAsrRelation(pd.DataFrame(rows), points, tuple(statistics))
