"""``defdrop reproduce``: the paper end to end on one dataset, ours beside the paper's numbers, plus EOT.

Stages (each cached, so a rerun or a resumed run is cheap):

1. train the Table 1 CNN at each training dropout rate r of the profile;
2. payoff sweeps: the paper's attackers (single-sample gradients and success test) and adaptive ones
   (EOT, the ``expected`` success test, kappa > 0) against r' in the profile's grid and SAP;
3. the paper's artefacts beside ours (Tables 2-6, the headline, Figures 3-5);
4. Algorithm 1 and the game's answers, against the paper's attacker and with EOT in the attacker's space;
4c. the audit of the defenders the decision rests on;
4d. the cited defenses (adversarial training, distillation) trained at the headline's r and attacked by the same
    C&W attackers, with and without test-time dropout, in one joint table with the standard model
    (:mod:`analysis.cited`);
5. conclusions written from the numbers.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from analysis.cited import CitedSettings, params_digest, section_rows
from analysis.paper import paper_numbers
from analysis.report import write_report
from gameplay.algorithm1 import algorithm1_table
from gameplay.images import ImageData
from gameplay.table import PayoffTable, payoff_table_from_frame
from payoffs.audit.settings import AuditSettings
from payoffs.checkpoint import load_checkpoint, save_checkpoint
from payoffs.data import load_dataset
from payoffs.errors import DefdropError
from payoffs.executor import Executor
from payoffs.io import atomic_write_text
from payoffs.strategy import AttackerStrategy, DefenderStrategy
from payoffs.table import TABLE_COLUMNS, build_payoff_table, load_model_refs
from payoffs.training import TrainConfig, checkpoint_meta, train

Log = Callable[[str], None]
PAPER = paper_numbers()
PROTOCOL, FIGURE4 = PAPER["protocol"], PAPER["figures"]["figure4"]


@dataclass(frozen=True)
class Sweep:
    """Attacks (paper and adaptive variants) to run against every defender of the models trained at ``train_rates``."""

    train_rates: tuple[float, ...]
    attacks: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    """A study's budget: which models, sweeps, N images, M samples, and the C&W / EOT settings."""

    name: str
    train_rates: tuple[float, ...]
    epochs: int
    test_rates: tuple[float, ...]
    sweeps: tuple[Sweep, ...]
    n_images: int
    eval_samples: int
    cw_search_steps: int = PROTOCOL["cw_search_steps"]  # the paper's C&W: 10 binary-search steps x 100 iterations
    cw_iterations: int = PROTOCOL["cw_iterations"]
    fgsm_eps: float = PROTOCOL["fgsm_eps"]
    adaptive_eot: int = 8
    adaptive_kappa: float = 5.0
    adaptive_search_steps: int | None = None  # None: the same as the paper attacker's
    gradvar_images: int = 20
    gradvar_samples: int = FIGURE4["samples"]  # Figure 4: 50 sampled gradients in 5 dimensions, r' = 0.1..0.9
    gradvar_dims: int = FIGURE4["dims"]
    gradvar_test_rates: tuple[float, ...] = tuple(FIGURE4["test_dropout"])
    gradvar_train_rate: float = PAPER["headline"]["train_dropout"]  # our C&W model (the paper's Fig. 4: CIFAR r = 0.7)
    max_accuracy_drop: float = PAPER["mnist_accuracy_limit"]["max_accuracy_drop"]  # Tables 4-6: "<1%" drop
    description: str = ""
    audit: AuditSettings | None = None  # sizes of the audit of the decision's defenders (None: no audit)
    audit_note: str = ""
    cited: CitedSettings | None = None  # the cited defenses' models and test rates (None: no such section)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick", train_rates=(0.3, 0.7), epochs=10, test_rates=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9),
        sweeps=(Sweep((0.3,), ("cw",)), Sweep((0.7,), ("fgsm", "jsma"))),
        n_images=5, eval_samples=10, adaptive_eot=4, adaptive_kappa=5.0, adaptive_search_steps=5, gradvar_images=5,
        description="two models (r = 0.3 for C&W as in Table 6, r = 0.7 for FGSM/JSMA as in Tables 4-5), "
                    "5 images x 9 targets per cell, M = 10; the adaptive C&W uses EOT 4 and 5 x 100 to fit "
                    "the 10-minute budget",
        audit=AuditSettings(n_images=10, eval_samples=10, eot_max=8, probe_images=50, checks=(1, 2, 3, 4, 7)),
        audit_note="kept small to fit the 10-minute budget: 10 images x 1 target, M = 10, EOT up to k = 8, and "
                   "checks 1-4 and 7 only (5 and 6 cost most); with 10 images \"about 100%\" and 5-point margins "
                   "cannot be shown, so several checks are inconclusive by design",
        cited=CitedSettings(
            adversarial=(("steps", 5), ("step_size", 0.1), ("clean_weight", 0.5)), epochs=5, test_rates=(0.0, 0.5),
            note="small recipe settings to fit the 10-minute budget: PGD adversarial training at eps = 0.3 with 5 "
                 "steps of 0.1 (not 40 of 0.01) and half clean, half adversarial loss (not adversarial only), "
                 "5 epochs; distillation at T = 100, teacher and student 5 epochs each; r' = 0 and 0.5 only")),
    "paper": Profile(
        name="paper", train_rates=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9), epochs=20,
        test_rates=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9),
        sweeps=(Sweep((0.0, 0.1, 0.3, 0.5, 0.7, 0.9), ("cw",)), Sweep((0.3, 0.7), ("fgsm", "jsma"))),
        n_images=100, eval_samples=20, gradvar_images=20,
        description="the paper's protocol: 100 images x 9 targets per cell, C&W 10 x 100, M = 20, every "
                    "training rate for C&W (Figure 3), r = 0.3 and 0.7 for FGSM and JSMA",
        audit=AuditSettings(n_images=100, eval_samples=20, eot_max=32),
        audit_note="every check, 100 images x 1 target, M = 20, EOT up to k = 32",
        cited=CitedSettings(
            test_rates=(0.0, 0.3, 0.5),
            note="the documented defaults: PGD adversarial training at eps = 0.3, 40 steps of 0.01, random start, "
                 "adversarial loss only (Madry et al. 2018); distillation at T = 100 (as Carlini & Wagner "
                 "evaluated it); the profile's 20 epochs (the teacher's too)")),
    "smoke": Profile(
        name="smoke", train_rates=(0.3,), epochs=3, test_rates=(0.0, 0.5), sweeps=(Sweep((0.3,), ("cw", "fgsm")),),
        n_images=1, eval_samples=3, cw_search_steps=2, cw_iterations=10, adaptive_eot=2, adaptive_kappa=5.0,
        gradvar_images=1, gradvar_samples=5,
        description="a seconds-long run of every stage for tests; its numbers mean nothing",
        audit=AuditSettings(n_images=1, eval_samples=2, eot_max=2, probe_images=2, checks=(1, 4)),
        audit_note="1 image, checks 1 and 4: a smoke test",
        cited=CitedSettings(adversarial=(("steps", 2), ("step_size", 0.2)), epochs=2, test_rates=(0.0, 0.5),
                            note="2 epochs, PGD with 2 steps of 0.2: a smoke test")),
}


def paper_attacker(attack: str, profile: Profile) -> AttackerStrategy:
    """The paper's attacker: one sampled sub-network per gradient, success judged on that sample; C&W with the
    profile's search (the paper's 10 x 100 by default), FGSM with the paper's eps."""
    if attack == "cw":
        return AttackerStrategy("cw", (("kappa", 0.0), ("search_steps", profile.cw_search_steps),
                                       ("iterations", profile.cw_iterations)))
    if attack == "fgsm":
        return AttackerStrategy("fgsm", _fgsm_params(profile))
    return AttackerStrategy(attack)


def _fgsm_params(profile: Profile) -> tuple[tuple[str, float], ...]:
    """FGSM's eps given explicitly only where it departs from the attack's declared default (so strategy ids
    and cache keys of the paper's FGSM stay ``fgsm``); either way the cell runs at ``profile.fgsm_eps``."""
    from payoffs.registry import ATTACKS

    return () if ATTACKS["fgsm"].resolve({})["eps"] == profile.fgsm_eps else (("eps", profile.fgsm_eps),)


def adaptive_attacker(attack: str, profile: Profile) -> AttackerStrategy:
    """EOT over ``adaptive_eot`` samples, the ``expected`` success test, and kappa > 0 for C&W."""
    if attack == "cw":
        steps = profile.adaptive_search_steps or profile.cw_search_steps
        return AttackerStrategy("cw", (("kappa", profile.adaptive_kappa), ("search_steps", steps),
                                       ("iterations", profile.cw_iterations)), profile.adaptive_eot, "expected")
    if attack == "fgsm":
        return AttackerStrategy("fgsm", _fgsm_params(profile), profile.adaptive_eot, "expected")
    return AttackerStrategy(attack, (), profile.adaptive_eot, "expected")


def defenders(profile: Profile) -> list[DefenderStrategy]:
    return [DefenderStrategy.dropout(r) for r in profile.test_rates] + [DefenderStrategy("sap")]


@dataclass
class StudyResult:
    out_dir: Path
    profile: Profile
    dataset: str
    table: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    model_meta: list[dict] = field(default_factory=list)
    seed: int = 0
    device: str = "cpu"
    jobs: int = 1
    batch_size: int = 900
    executor: dict | None = None  # where the payoff cells ran, when not in local processes


def machine_description(device: str) -> str:
    """Processor, torch threads, platform, and the GPU's name when the run used one."""
    text = f"{platform.machine()}, {torch.get_num_threads()} threads, {platform.platform()}"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name(torch.device(device))}"
    return text


def train_models(profile: Profile, dataset: str, out_dir: Path, data_dir: Path | None, device: torch.device,
                 seed: int, log: Log, progress=None) -> dict[float, Path]:
    """Stage 1: one checkpoint per training rate, reused when already there. ``progress(r)``: the training
    progress callback for rate r (see :func:`payoffs.training.train`), if any."""
    paths: dict[float, Path] = {}
    data = None
    for r in profile.train_rates:
        path = out_dir / "models" / f"{dataset}-r{r:g}-e{profile.epochs}-s{seed}.pt"
        if path.is_file():
            load_checkpoint(path)  # a broken file is an error now, not mid-sweep
            log(f"model r={r:g}: reusing {path}")
        else:
            data = data or load_dataset(dataset, data_dir)
            result = train(data, TrainConfig(train_dropout=r, epochs=profile.epochs, seed=seed), device,
                           progress=progress(r) if progress is not None else None)
            save_checkpoint(path, result.model, {
                "dataset": dataset, "train_dropout": r, "epochs": profile.epochs, "seed": seed,
                "test_accuracy": result.test_accuracy, "seconds_per_epoch": result.seconds_per_epoch,
                "data_dir": str(Path(data_dir).resolve()) if data_dir else None})
            log(f"model r={r:g}: trained, test accuracy {result.test_accuracy:.4f} "
                f"({result.seconds_per_epoch:.1f} s/epoch)")
        paths[r] = path
    return paths


def recipe_model_path(out_dir: Path, dataset: str, r: float, config: TrainConfig) -> Path:
    """Where a recipe model of the cited-defenses stage lives (its recipe parameters hashed into the name)."""
    digest = params_digest(config.recipe, config.resolved_recipe_params())
    return out_dir / "models" / f"{dataset}-r{r:g}-{config.recipe}-{digest}-e{config.epochs}-s{config.seed}.pt"


def recipe_configs(profile: Profile, seed: int) -> list[TrainConfig]:
    """The cited defenses' training configurations: each recipe at the headline's r (Table 6's model)."""
    settings = profile.cited
    if settings is None:
        return []
    r = float(PAPER["headline"]["train_dropout"])
    return [TrainConfig(train_dropout=r, epochs=settings.epochs or profile.epochs, seed=seed, recipe=recipe,
                        recipe_params=given) for recipe, given in settings.recipes()]


def train_recipe_models(profile: Profile, dataset: str, out_dir: Path, data_dir: Path | None,
                        device: torch.device, seed: int, log: Log) -> list[Path]:
    """Stage 4d's models: one checkpoint per cited recipe, reused when already there."""
    paths, data = [], None
    for config in recipe_configs(profile, seed):
        path = recipe_model_path(out_dir, dataset, config.train_dropout, config)
        if path.is_file():
            load_checkpoint(path)
            log(f"model {config.recipe} r={config.train_dropout:g}: reusing {path}")
        else:
            data = data or load_dataset(dataset, data_dir)
            result = train(data, config, device)
            save_checkpoint(path, result.model, {
                **checkpoint_meta(dataset, config, result),
                "data_dir": str(Path(data_dir).resolve()) if data_dir else None})
            log(f"model {result.recipe_label} r={config.train_dropout:g}: trained, test accuracy "
                f"{result.test_accuracy:.4f} ({result.seconds_per_epoch:.1f} s/epoch)")
        paths.append(path)
    return paths


def prefix_defenders(table: pd.DataFrame) -> pd.DataFrame:
    """With several models, every defender label carries its model's label: ``r=0.3/dropout[r'=0.5]``."""
    from payoffs.table import defender_label

    table = table.copy()
    several = table["model"].nunique() > 1
    table["defender"] = [defender_label(m, d.removeprefix(f"{m}/"), several)
                         for d, m in zip(table["defender"], table["model_label"])]
    return table


def run_payoffs(profile: Profile, models: dict[float, Path], out_dir: Path, seed: int, jobs: int, device: str,
                on_done=None, batch_size: int = 900, executor: Executor | None = None, *, on_plan=None,
                log: Log | None = None) -> pd.DataFrame:
    """Stage 2: every sweep's paper and adaptive attackers against every defender, one cached cell at a time
    (by ``executor``, e.g. a :class:`payoffs.dask_executor.DaskExecutor`, or ``jobs`` local processes).
    ``on_plan``/``on_done``: as :func:`payoffs.table.build_payoff_table`'s, per sweep. Interrupted (Ctrl-C,
    SIGTERM), it writes the table of the finished cells, ``tables/payoff.partial.csv``, before passing it on."""
    frames = []
    try:
        for sweep in profile.sweeps:
            refs, attackers = _sweep_space(profile, models, sweep)
            frames.append(build_payoff_table(refs, attackers, defenders(profile), n_images=profile.n_images,
                                             eval_samples=profile.eval_samples, seed=seed,
                                             cache_dir=out_dir / "cache", jobs=jobs, device=device,
                                             on_done=on_done, on_plan=on_plan, batch_size=batch_size,
                                             executor=executor))
    except KeyboardInterrupt:
        write_partial_payoffs(profile, models, out_dir, seed, device, batch_size, log)
        raise
    for path in (partial_payoff_path(out_dir), partial_payoff_path(out_dir).with_suffix(".images.npz")):
        path.unlink(missing_ok=True)  # superseded by the complete table
    return _merge_sweeps(frames)


def _sweep_space(profile: Profile, models: dict[float, Path], sweep) -> tuple[list, list]:
    refs = load_model_refs([models[r] for r in sweep.train_rates])
    return refs, [f(a, profile) for a in sweep.attacks for f in (paper_attacker, adaptive_attacker)]


def _merge_sweeps(frames: list[pd.DataFrame]) -> pd.DataFrame:
    from payoffs.table import PerImage

    table = pd.concat(frames, ignore_index=True)[TABLE_COLUMNS]
    table.attrs["per_image"] = PerImage.merge([f.attrs.get("per_image") for f in frames])
    return prefix_defenders(table)


def partial_payoff_path(out_dir: Path) -> Path:
    return Path(out_dir) / "tables" / "payoff.partial.csv"


def write_partial_payoffs(profile: Profile, models: dict[float, Path], out_dir: Path, seed: int, device: str,
                          batch_size: int = 900, log: Log | None = None) -> Path | None:
    """The payoff table of the cells already in the cache (nothing runs), with its per-image sidecar."""
    from payoffs.table import write_per_image

    frames, total = [], 0
    for sweep in profile.sweeps:
        refs, attackers = _sweep_space(profile, models, sweep)
        total += len(refs) * len(attackers) * len(defenders(profile))
        frames.append(build_payoff_table(refs, attackers, defenders(profile), n_images=profile.n_images,
                                         eval_samples=profile.eval_samples, seed=seed, cache_dir=out_dir / "cache",
                                         device=device, batch_size=batch_size, only_cached=True))
    table = _merge_sweeps(frames)
    if not len(table):
        return None
    path = partial_payoff_path(out_dir)
    path.parent.mkdir(exist_ok=True)
    write_per_image(table, path)
    write_csv(path, table)
    if log is not None:
        log(f"wrote the partial table of the {len(table)} finished of {total} attack cells: {path}")
    return path


def settings_json(result: StudyResult) -> dict:
    return {"profile": asdict(result.profile), "dataset": result.dataset, "seconds": result.seconds,
            "models": result.model_meta, "machine": platform.platform(), "processor": platform.machine(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "device": result.device,
            "device_description": machine_description(result.device), "jobs": result.jobs,
            "executor": result.executor or {"executor": "local", "jobs": result.jobs},
            "batch_size": result.batch_size}


def check_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise DefdropError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def write_json(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """A table written atomically: a full disk or a kill keeps the previous file whole."""
    atomic_write_text(path, frame.to_csv(index=False))


def now() -> float:
    return time.perf_counter()


# --------------------------------------------------------------------------- stages 3-5 and the report
def run_gradvar_stage(profile: Profile, models: dict[float, Path], data_dir: Path | None, device: torch.device,
                      seed: int):
    """Stage 3b: the paper's Figure 4 on our model (r' = 0.1..0.9 and SAP)."""
    from analysis.gradvar import build_defenders, run_gradvar, select_inputs

    r = min(models, key=lambda x: abs(x - profile.gradvar_train_rate))
    model, meta = load_checkpoint(models[r], device)
    data = load_dataset(meta["dataset"], data_dir)
    x, y, target = select_inputs(model, data.x_test, data.y_test, profile.gradvar_images)
    return run_gradvar(model, x.to(device), target.to(device), build_defenders(profile.gradvar_test_rates, sap=True),
                       samples=profile.gradvar_samples, dims=profile.gradvar_dims, seed=seed, true_labels=y)


def model_tables(table: pd.DataFrame, images: ImageData | None = None) -> dict[float, PayoffTable]:
    """One validated in-memory payoff table per model (training rate r), with its per-image data."""
    return {float(r): payoff_table_from_frame(group, f"<r={r:g}>", images)
            for r, group in table.groupby("train_dropout", sort=True)}


def algorithm1_stage(table: pd.DataFrame, profile: Profile, images: ImageData | None = None) -> pd.DataFrame:
    """Stage 4a: the library's Algorithm 1 (:func:`gameplay.algorithm1.algorithm1_table`) on each model's table,
    and every attacker's ASR at the rate it picks (clean accuracy does not depend on the attacker, so one walk per
    model serves all its attackers)."""
    rows = []
    for r, sub in model_tables(table, images).items():
        a1 = algorithm1_table(sub, profile.max_accuracy_drop)
        for row in a1.rows:
            if row.defender is None:
                continue
            d = sub.defenders[sub.defender_labels.index(row.defender)]
            rows.append({"train_dropout": r, "attacker": row.attacker, "chosen_test_dropout": a1.choice.rate,
                         "clean_accuracy": d.accuracy, "reference_accuracy": a1.choice.reference_accuracy,
                         "epsilon": profile.max_accuracy_drop, "stopped_at": a1.choice.stopped_at,
                         "asr": row.asr, "asr_low": row.asr_low, "asr_high": row.asr_high})
    return pd.DataFrame(rows)


def solve_stage(table: pd.DataFrame, out_dir: Path, profile: Profile, seed: int,
                images: ImageData | None = None) -> list[dict]:
    """Stage 4b: per sweep (one model's game), solve against the paper's attackers and with EOT added, in memory
    (:func:`gameplay.solve.solve_table`); each game's table is also written as a CSV (with its per-image sidecar
    when there is one) for ``defdrop solve``.

    A space with a single attacker strategy is not a game; Algorithm 1 (stage 4a) answers it alone.
    """
    from analysis.paper import is_adaptive
    from gameplay.images import sidecar_path
    from gameplay.solve import solve_table
    from payoffs.checkpoint import atomic_write_bytes

    answers = []
    for (attack_set, r), group in table.groupby([table["attack"].map(_sweep_key(profile)), "train_dropout"],
                                                sort=True):
        for label, rows in (("paper attacker", group[~is_adaptive(group)]), ("with EOT", group)):
            if rows["attacker"].nunique() < 2 or rows["defender"].nunique() < 2:
                continue
            space = "paper" if label == "paper attacker" else "eot"
            path = out_dir / "tables" / f"game-r{r:g}-{attack_set}-{space}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_csv(path, rows)
            game = payoff_table_from_frame(rows, str(path), images)
            if game.images is not None:
                keys = [k for k in game.cell_key.ravel()]
                atomic_write_bytes(sidecar_path(path), game.images.subset(
                    keys, [d.accuracy_key for d in game.defenders]).to_bytes())
            else:
                sidecar_path(path).unlink(missing_ok=True)  # never leave a stale sidecar beside a new CSV
            report = solve_table(game, max_accuracy_drop=profile.max_accuracy_drop, solver="all",
                                 robustness_samples=200, seed=seed)
            answers.append({"train_dropout": r, "attacks": attack_set, "space": label, "report": report,
                            "csv": path})
    return answers


def _sweep_key(profile: Profile):
    names = {a: "+".join(s.attacks) for s in profile.sweeps for a in s.attacks}
    return lambda attack: names.get(attack, attack)


def algorithm1_rates(alg1: pd.DataFrame) -> dict[float, float]:
    """Algorithm 1's r' per training rate."""
    if alg1.empty:
        return {}
    return {float(r): float(g["chosen_test_dropout"].iloc[0]) for r, g in alg1.groupby("train_dropout")}


def build_report_blocks(result: StudyResult, comparison: pd.DataFrame, findings, answers: list[dict], gradvar,
                        relation, alg1: pd.DataFrame, images: ImageData | None = None) -> list:
    from analysis.conclusions import summary_line
    from analysis.figures import figure_accuracy_asr_l2_heatmaps, figure_gradient_densities, figure_statistics_vs_rate
    from analysis.formatting import pct
    from analysis.paper import is_adaptive, paper_numbers, paper_tables_section
    from analysis.solve_report import figure_payoff_heatmap
    from analysis.solve_text import headline, reasons
    from analysis.verdicts import level_text

    p = result.profile
    table = result.table
    total = sum(result.seconds.values())
    pairing = ("paired over test images (per-image data `tables/payoff.images.npz`)" if images is not None else
               "cells taken as independent (no per-image data `tables/payoff.images.npz`)")
    models = ", ".join(f"r = {m['train_dropout']:g} ({pct(m['test_accuracy'])})" for m in result.model_meta)
    blocks: list = [
        f"Reproduction of *{paper_numbers()['source']}* with defdrop.",
        "## Run\n\n"
        f"- dataset: `{result.dataset}` ({result.model_meta[0].get('n_train', '?')} train / "
        f"{result.model_meta[0].get('n_test', '?')} test images)\n"
        f"- profile: `{p.name}`: {p.description}\n"
        f"- models (test accuracy): {models}; {p.epochs} epochs each\n"
        f"- per cell: N = {p.n_images} images x 9 targets = {9 * p.n_images} attacks, M = {p.eval_samples} defender "
        f"samples per adversarial example; {level_text()} intervals by bootstrap over images (an image's 9 "
        f"attacks resampled together)\n"
        f"- comparisons between cells (differences, trends, robustness): {pairing}\n"
        f"- C&W {p.cw_search_steps} x {p.cw_iterations}; adaptive attacker: EOT {p.adaptive_eot}, `expected` success "
        f"test, C&W kappa = {p.adaptive_kappa:g}, {p.adaptive_search_steps or p.cw_search_steps} x "
        f"{p.cw_iterations}\n"
        f"- seed {result.seed}; this invocation took {total:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in result.seconds.items())}; cached cells cost nothing); computing "
        f"the {len(table)} payoff cells took {table['seconds'].sum():.0f} s in all\n"
        f"- machine: {machine_description(result.device)}; device `{result.device}`, --jobs {result.jobs}, "
        f"--batch-size {result.batch_size}",
        "## Conclusions\n\n**" + summary_line(findings) + "**\n\n" + "\n".join(f"- {f.text}" for f in findings),
    ]
    blocks.extend(paper_tables_section(comparison))
    paper_rows = table[~is_adaptive(table)]
    blocks.append("## Figures 3 and 5: accuracy, ASR and L2 over training x test dropout rate (paper's attacker)")
    blocks.extend(figure_accuracy_asr_l2_heatmaps(paper_rows))
    adaptive_rows = table[is_adaptive(table)]
    if not adaptive_rows.empty:
        blocks.append("### The same with the adaptive attacker (EOT, expected success)")
        blocks.extend(figure_accuracy_asr_l2_heatmaps(adaptive_rows))
    if gradvar is not None:
        blocks.append("## Figure 4: sampled C&W gradients, defensive dropout against SAP")
        blocks.append(figure_gradient_densities(gradvar))
        blocks.append(figure_statistics_vs_rate(gradvar))
        keep = [c for c in gradvar.table.columns if c in ("defender", "var_all", "var_all_low", "var_all_high",
                                                          "snr_all", "cos_all", "kurt_chosen")]
        blocks.append(gradvar.table[keep])
        if relation is not None:
            blocks.append("Does gradient variance predict ASR across defender strategies here?")
            blocks.append(relation.table)
    blocks.append(f"## Algorithm 1 and the game\n\nAlgorithm 1 (the paper's section 3.4) walks r' upward while the "
                  f"drop in clean accuracy from the undefended model's stays below epsilon = "
                  f"{pct(p.max_accuracy_drop)}, and "
                  f"deploys the last rate where it did; below, every attacker's ASR at that rate (the adaptive ones "
                  "included).")
    if not alg1.empty:
        blocks.append(alg1)
    for a in answers:
        rec = a["report"].recommendation
        blocks.append(f"### r = {a['train_dropout']:g}, {a['attacks']}, {a['space']}\n\n"
                      f"**{headline(rec)}** (worst-case ASR {_fmt_pct(rec.worst_case_asr)} against "
                      f"`{rec.worst_attacker}`); Algorithm 1 (epsilon = {pct(p.max_accuracy_drop)}): "
                      f"`{rec.algorithm1}` with worst-case ASR {_fmt_pct(rec.algorithm1_worst_asr)}.\n\n"
                      + "\n".join(f"- {w}" for w in reasons(a["report"])))
        blocks.append(figure_payoff_heatmap(a["report"]))
    blocks.append("## The payoff table")
    show = ["attacker", "defender", "asr", "asr_low", "asr_high", "asr_majority", "asr_believed", "l2_mean",
            "clean_accuracy", "forwards", "backwards", "seconds"]
    blocks.append(table[show])
    return blocks


def _fmt_pct(v) -> str:
    from analysis.formatting import pct

    return pct(v)


def run_study(profile: Profile, dataset: str, out_dir: Path, *, data_dir: Path | None = None, jobs: int = 1,
              device: torch.device | str = "cpu", seed: int = 0, log: Log = print, on_done=None,
              gradvar: bool = True, batch_size: int = 900,
              executor: Executor | None = None, plotly: str = "directory", on_plan=None,
              train_progress=None) -> tuple[Path, Path, StudyResult]:
    """All stages; returns (report.html, report.md, result). Every finished cell is cached under ``out_dir``.
    Payoff cells run on ``executor`` when given (e.g. a Dask cluster), else in ``jobs`` local processes;
    training and the gradient statistics run here. Pages get plotly.js per ``plotly``
    (:data:`analysis.html.PLOTLY_MODES`; ``directory``: one ``plotly.min.js`` in ``out_dir`` for all of them), and
    their figures as PNGs beside them where static export works here."""
    from analysis.html import check_plotly_mode

    check_plotly_mode(plotly)
    from analysis.conclusions import write_conclusions
    from analysis.paper import compare_with_paper

    device = torch.device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t0 = now()
    models = train_models(profile, dataset, out_dir, data_dir, device, seed, log, progress=train_progress)
    seconds["training"] = now() - t0
    data = load_dataset(dataset, data_dir)
    meta = []
    for r, path in models.items():
        _, m = load_checkpoint(path)
        meta.append({"train_dropout": r, "test_accuracy": m.get("test_accuracy"), "path": str(path),
                     "n_train": len(data.x_train), "n_test": len(data.x_test)})
    t0 = now()
    log(f"payoff sweeps: cache {out_dir / 'cache'}")
    table = run_payoffs(profile, models, out_dir, seed, jobs, str(device), on_done, batch_size, executor,
                        on_plan=on_plan, log=log)
    seconds["payoffs"] = now() - t0
    (out_dir / "tables").mkdir(exist_ok=True)
    from payoffs.table import write_per_image

    write_per_image(table, out_dir / "tables" / "payoff.csv")
    write_csv(out_dir / "tables" / "payoff.csv", table)
    images = payoff_images(out_dir / "tables" / "payoff.csv")
    result = StudyResult(out_dir, profile, dataset, table, seconds, meta, seed, str(device), jobs, batch_size,
                         executor.describe() if hasattr(executor, "describe") else None)
    comparison = compare_with_paper(table)
    write_csv(out_dir / "tables" / "paper_vs_ours.csv", comparison)
    t0 = now()
    grad, relation, variance = None, None, None
    if gradvar:
        from analysis.gradvar import variance_asr_relation
        log("gradient variance (Figure 4)")
        grad = run_gradvar_stage(profile, models, data_dir, device, seed)
        write_csv(out_dir / "tables" / "gradvar.csv", grad.table)
        sub = table[np.isclose(table["train_dropout"], grad.train_dropout if grad.train_dropout is not None else
                               profile.gradvar_train_rate)]
        if not sub.empty:
            relation = variance_asr_relation(grad.table, sub, per_image=grad.per_image, images=images)
            variance = variance_of_paper_attacker(relation, sub)
    seconds["gradient variance"] = now() - t0
    t0 = now()
    log("solving the games")
    alg1 = algorithm1_stage(table, profile, images)
    write_csv(out_dir / "tables" / "algorithm1.csv", alg1)
    answers = solve_stage(table, out_dir, profile, seed, images)
    seconds["games"] = now() - t0
    t0 = now()
    audit = audit_stage(profile, models, answers, out_dir, data_dir, device, seed, log, plotly)
    seconds["audit"] = now() - t0
    t0 = now()
    cited = cited_stage(profile, models, table, out_dir, data_dir, device, seed, log, jobs, on_done, batch_size,
                        executor, on_plan=on_plan)
    if cited is not None:
        seconds["cited defenses"] = now() - t0
    findings = write_conclusions(table, comparison, algorithm1_rates(alg1), variance, images)
    findings += cited.findings if cited is not None else []
    blocks = build_report_blocks(result, comparison, findings, answers, grad, relation, alg1, images)
    blocks = with_audit_blocks(blocks, audit, profile)
    blocks = with_cited_blocks(blocks, cited, profile)
    html_path, md_path = write_report(out_dir, f"defdrop reproduce: {dataset}, profile {profile.name}", blocks,
                                      plotly=plotly, log=log)
    write_json(out_dir / "run.json", {**settings_json(result), "seed": seed,
                                      "findings": [asdict(f) for f in findings]})
    return html_path, md_path, result


def audit_stage(profile: Profile, models: dict[float, Path], answers: list[dict], out_dir: Path,
                data_dir: Path | None, device: torch.device, seed: int, log: Log, plotly: str = "directory"):
    """Stage 4c: ``defdrop audit`` of the adaptive C&W attacker against the defenders the decision rests on (the
    recommended mix and Algorithm 1's pick, in the C&W game with EOT) on the headline model (Table 6's r), with the
    profile's sizes; writes ``audit.html`` and ``audit.json``. Returns (evidence, verdict, backings) or None."""
    from analysis.audit_page import run_audit, write_audit
    from gameplay.audit_backing import audit_summary, report_backings
    from payoffs.sources import CheckpointSource, data_for

    if profile.audit is None:
        return None
    r = PAPER["headline"]["train_dropout"]
    game = next((a for a in answers if a["space"] == "with EOT" and "cw" in a["attacks"].split("+")
                 and np.isclose(a["train_dropout"], r)), None)
    if game is None or r not in models:
        return None
    rec = game["report"].recommendation
    labels = [label for label, _ in rec.mix] + ([rec.algorithm1] if rec.algorithm1 else [])
    by_id = {d.id: d for d in defenders(profile)}
    chosen = [by_id[x] for x in dict.fromkeys(lbl.rsplit("/", 1)[-1] for lbl in labels) if x in by_id]
    if not chosen:
        return None
    log(f"audit of {len(chosen)} defender(s): {', '.join(d.id for d in chosen)}")
    source = CheckpointSource.open(models[r])
    data = data_for(source, None, data_dir)
    settings = replace(profile.audit, seed=seed)
    evidence, verdict = run_audit(source, chosen, adaptive_attacker("cw", profile), settings=settings, data=data,
                                  device=device)
    write_audit(evidence, verdict, out_dir / "audit.html", plotly=plotly, png=True, log=log)
    return evidence, verdict, report_backings(audit_summary(evidence, verdict), game["report"])


def with_audit_blocks(blocks: list, audit, profile: Profile) -> list:
    """The audit's section right after the conclusions (so ``reproduce`` prints it too)."""
    if audit is None:
        return blocks
    from analysis.audit_page import audit_report_blocks

    evidence, verdict, backings = audit
    at = next((i for i, b in enumerate(blocks) if isinstance(b, str) and b.startswith("## The paper's tables")),
              len(blocks))
    return blocks[:at] + audit_report_blocks(evidence, verdict, backings, profile.audit_note) + blocks[at:]


def payoff_images(csv_path: Path) -> ImageData | None:
    """The per-image sidecar of the study's payoff table (``tables/payoff.images.npz``), if stage 2 wrote one."""
    from gameplay.images import read_image_data, sidecar_path

    side = sidecar_path(csv_path)
    return read_image_data(side) if side.is_file() else None


def variance_of_paper_attacker(relation, table: pd.DataFrame):
    """The finding of gradient variance (``var_all``) against the ASR of the paper's C&W attacker (the attacker
    the paper's explanation is about; fixed before looking at the numbers), or None if the relation lacks it."""
    from analysis.conclusions import variance_finding
    from analysis.paper import is_adaptive

    rows = relation.table
    if rows.empty:
        return None
    paper = set(table.loc[~is_adaptive(table) & (table["attack"] == "cw"), "attacker"])
    var = rows[(rows["statistic"] == "var_all") & rows["attacker"].isin(paper)]
    return None if var.empty else variance_finding(var.iloc[0])


@dataclass
class CitedResult:
    """Stage 4d's outputs: the joint table (standard and recipe models, C&W), the section's rows, the findings,
    the joint game's solve report, the recipe models' metadata and where the table was written."""

    joint: pd.DataFrame
    rows: pd.DataFrame
    findings: list
    report: object | None
    models: list[dict]
    csv: Path


def cited_stage(profile: Profile, models: dict[float, Path], table: pd.DataFrame, out_dir: Path,
                data_dir: Path | None, device: torch.device, seed: int, log: Log, jobs: int = 1, on_done=None,
                batch_size: int = 900, executor: Executor | None = None, *, on_plan=None) -> CitedResult | None:
    """Stage 4d: the cited defenses (adversarial training, distillation) at the headline's r, attacked by the
    study's C&W attackers (paper and adaptive) at the settings' r', put beside the standard model of that r in one
    joint table ``tables/cited.csv`` (with its per-image sidecar; ``defdrop solve`` reads it); the section's rows,
    the findings of :func:`analysis.conclusions.cited_claim` and
    :func:`analysis.conclusions.dropout_on_adversarial_training`, and the game over the joint space."""
    from analysis.conclusions import cited_claim, dropout_on_adversarial_training
    from gameplay.solve import solve_table
    from payoffs.table import PerImage, write_per_image

    settings = profile.cited
    r = float(PAPER["headline"]["train_dropout"])
    if settings is None or r not in models:
        return None
    dataset = str(table["dataset"].iloc[0])
    paths = train_recipe_models(profile, dataset, out_dir, data_dir, device, seed, log)
    refs = load_model_refs(paths)
    attackers = [paper_attacker("cw", profile), adaptive_attacker("cw", profile)]
    log(f"cited defenses: {', '.join(m.description.label for m in refs)} x C&W x r' = "
        f"{', '.join(f'{x:g}' for x in settings.test_rates)}")
    cells = build_payoff_table(refs, attackers, [DefenderStrategy.dropout(x) for x in settings.test_rates],
                               n_images=profile.n_images, eval_samples=profile.eval_samples, seed=seed,
                               cache_dir=out_dir / "cache", jobs=jobs, device=str(device), on_done=on_done,
                               on_plan=on_plan, batch_size=batch_size, executor=executor)
    ids = {a.id for a in attackers}
    standard = table[(table["attack"] == "cw") & np.isclose(table["train_dropout"], r)
                     & table["attacker"].isin(ids) & table["recipe"].fillna("standard").isin(["standard", ""])]
    joint = pd.concat([standard, cells], ignore_index=True)[TABLE_COLUMNS]
    joint.attrs["per_image"] = PerImage.merge([table.attrs.get("per_image"), cells.attrs.get("per_image")])
    joint = prefix_defenders(joint)
    path = out_dir / "tables" / "cited.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_per_image(joint, path)
    write_csv(path, joint)
    images = payoff_images(path)
    findings = cited_claim(joint, images) + dropout_on_adversarial_training(joint, images)
    report = None
    if joint["defender"].nunique() > 1 and joint["attacker"].nunique() > 1:
        report = solve_table(payoff_table_from_frame(joint, str(path), images),
                             max_accuracy_drop=profile.max_accuracy_drop, solver="all", robustness_samples=200,
                             seed=seed)
    meta = []
    for ref, p in zip(refs, paths):
        _, m = load_checkpoint(p)
        meta.append({"label": ref.description.label, "recipe": m.get("recipe"), "recipe_params": m.get("recipe_params"),
                     "test_accuracy": m.get("test_accuracy"), "epochs": m.get("epochs"),
                     "seconds_per_epoch": m.get("seconds_per_epoch"), "path": str(p)})
    return CitedResult(joint, section_rows(joint, settings.test_rates), findings, report, meta, path)


def cited_blocks(cited: CitedResult, profile: Profile) -> list:
    """The report's section on the cited defenses."""
    from analysis.conclusions import _pct as pct
    from analysis.solve_text import headline
    from analysis.verdicts import AGREEMENT_MARGIN, level_text

    numbers = PAPER["cited_defenses"]
    settings = profile.cited
    models = "; ".join(f"{m['label']}: {pct(m['test_accuracy'])} test accuracy, {m['epochs']} epochs "
                       f"({m['seconds_per_epoch']:.1f} s/epoch)" for m in cited.models)
    blocks: list = [
        "## The cited defenses, measured: adversarial training and defensive distillation\n\n"
        f"The paper does not measure these defenses; it cites them as \"totally vulnerable\" to C&W (100% success; "
        f"{numbers['where']}). Source: {numbers['source']}. {numbers['note']}\n\n"
        f"Here each is trained at r = {PAPER['headline']['train_dropout']:g} on the study's data and attacked by the "
        f"same C&W attackers as Table 6's model (the paper's and the adaptive one; N = {profile.n_images} images x 9 "
        f"targets, M = {profile.eval_samples}), at r' = {', '.join(f'{x:g}' for x in settings.test_rates)}. "
        f"Training: {settings.note}. Models: {models}.\n\n"
        f"`accuracy_cost`: the standard model's undefended clean accuracy minus the row's; `cited`: the paper's "
        f"value, judged for the paper's attacker at r' = 0 (`verdict`: agrees when our {level_text()} interval lies "
        f"within {100 * AGREEMENT_MARGIN:g} pp of it). The joint table (standard and recipe models, every r') is "
        f"`{cited.csv.relative_to(cited.csv.parent.parent)}`.",
        cited.rows,
    ]
    if cited.findings:
        blocks.append("\n".join(f"- {f.text}" for f in cited.findings))
    if cited.report is not None:
        rec = cited.report.recommendation
        removed = cited.report.removed
        blocks.append(
            f"**Over the joint space** ({len(cited.report.defenders)} defender strategies (recipe, r) x r', the C&W "
            f"attackers; a recipe's accuracy cost counted from the standard model's undefended accuracy, epsilon = "
            f"{profile.max_accuracy_drop:g}): {headline(rec)} (worst-case ASR {_fmt_pct(rec.worst_case_asr)} against "
            f"`{rec.worst_attacker}`)"
            + (f"; outside the accuracy limit: {', '.join(f'`{x}`' for x in removed)}." if removed else "."))
    return blocks


def with_cited_blocks(blocks: list, cited: CitedResult | None, profile: Profile) -> list:
    """The cited defenses' section before the full payoff table."""
    if cited is None:
        return blocks
    at = next((i for i, b in enumerate(blocks) if isinstance(b, str) and b.startswith("## The payoff table")),
              len(blocks))
    return blocks[:at] + cited_blocks(cited, profile) + blocks[at:]
