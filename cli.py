"""defdrop: the command-line app. Thin: parse, call the library, print."""
from __future__ import annotations

import functools
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from gameplay.rules import DEFAULT_BUDGET_SOURCE, DEFAULT_MAX_ACCURACY_DROP
from payoffs.errors import DefdropError, Terminated

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Decide, with measured evidence, how a classifier should defend itself with test-time dropout.")
# No markup: messages and tables carry user data (labels like dropout[r'=0.3], paths, attack names) that rich
# would otherwise read as style tags, dropping text or crashing on "[/x]".
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def print_error(message: str) -> None:
    """One line on stderr, ``error:`` in red, the message as plain text."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(signum)


def user_errors(fn: Callable) -> Callable:
    """One line on stderr for bad input (DefdropError) and file-system failures (OSError), exit code 2;
    Ctrl-C exits 130 and SIGTERM 143, both keeping every finished cell."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = None
        try:
            previous = signal.signal(signal.SIGTERM, _raise_terminated)  # SIGTERM unwinds like Ctrl-C
        except ValueError:  # not the main thread: leave signals alone
            pass
        try:
            return fn(*args, **kwargs)
        except DefdropError as exc:
            print_error(str(exc))
            raise typer.Exit(2) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            print_error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt as exc:
            what, code = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
            err_console.print(f"{what}; everything finished so far is kept: run the same command again to resume",
                              highlight=False)
            raise typer.Exit(code) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return wrapper


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False)


def cell_line(kind: str, i: int, n: int, record: dict) -> str:
    """One log line per finished job, for logs (a terminal shows the progress bar instead)."""
    from payoffs.cell import headline

    what = record.get("attacker", "") + (" vs " if "attacker" in record else "") + record.get("defender", "")
    name, value = headline(record)
    result = f"{name} {100 * value:.1f}%" if name == "ASR" else f"{name} {100 * value:.2f}%"
    model = f" ({record['model_label']})" if record.get("model_label") else ""
    return f"[{i}/{n}] {kind} {what}{model}: {result} in {record.get('seconds', float('nan')):.1f} s"


def log_when_piped(bar: Progress) -> Callable[[str, int, int, dict], None]:
    """``on_done`` that also prints :func:`cell_line` when stderr is not a terminal."""
    def on_done(kind: str, i: int, n: int, record: dict) -> None:
        if not bar.console.is_terminal:
            bar.console.print(cell_line(kind, i, n, record), highlight=False, markup=False, soft_wrap=True)
    return on_done


def _warn_oversubscription(jobs: int) -> None:
    from payoffs.executor import oversubscription_warning
    line = oversubscription_warning(jobs)
    if line:
        err_console.print(f"warning: {line}", highlight=False)


def _device(name: str):
    from payoffs.device import resolve_device
    return resolve_device(name)


def _cell_device(name: str, executor: str | None, scheduler: str | None) -> str:
    """The device cells run on: on a remote Dask cluster ``cuda`` names the workers' GPUs, not this machine's."""
    remote = scheduler is not None and executor in (None, "dask")
    return name if remote and name.startswith("cuda") else str(_device(name))


def _note(line: str) -> None:
    """One line for the user on stderr (stdout stays the command's result)."""
    err_console.print(line, highlight=False, markup=False, soft_wrap=True)


def _executor_note(line: str) -> None:
    err_console.print(line, highlight=False, markup=False, soft_wrap=True)


DeviceOpt = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda.")
_PLOTLY_HELP = ("Where pages get plotly.js: inline (embedded in each page, one self-contained file of about 5 MB) | "
                "directory (one plotly.min.js in the page's folder, shared by its pages) | cdn (cdn.plot.ly: a small "
                "page that needs the network to display).")
PlotlyOpt = typer.Option("inline", "--plotly", metavar="inline|directory|cdn", help=_PLOTLY_HELP)
PngOpt = typer.Option(False, "--png/--no-png", help="Also write every figure as a PNG beside the page "
                                                    "(<page>-figures/figure-N.png); needs kaleido and a "
                                                    "Chrome/Chromium, else one line says why and the page is written "
                                                    "without them.")
ModelOpt = typer.Option(..., "--model", help="A defdrop checkpoint.")
BatchOpt = typer.Option(900, "--batch-size", help="Attacks x EOT samples per forward pass: a speed knob (same "
                                                  "protocol, other random draws); larger on a GPU, e.g. 7200.")
ExecutorOpt = typer.Option(None, "--executor", help="Where cells run: local (--jobs processes here) or dask (a Dask "
                                                    "cluster: --scheduler's, else a local one, one worker per core). "
                                                    "Default: dask with --scheduler, else local.")
SchedulerOpt = typer.Option(None, "--scheduler", help="A running Dask scheduler, tcp://HOST:PORT (or its scheduler "
                                                      "file); workers need no shared files.")
WorkerThreadsOpt = typer.Option(1, "--worker-threads", help="Torch threads per cell on Dask workers (a rerun cell "
                                                            "is identical at the same count).")
DataDirOpt = typer.Option(None, "--data-dir", help="Directory with the dataset's files (mnist, cifar10; "
                                                    "fashion-mnist defaults to /usr/share/datasets/fashion-mnist).")
# Your own model and data (accuracy, payoff, gradvar): one definition each, shared by the commands.
CheckpointOpt = typer.Option(None, "--model", help="A defdrop checkpoint (or your own model: --model-factory and "
                                                   "--weights).")
FactoryOpt = typer.Option(None, "--model-factory", help="Your own model: MODULE:CALLABLE returning an nn.Module that "
                                                        "gives logits, e.g. mypkg.nets:build (imported from the "
                                                        "current directory or the installed packages, never "
                                                        "evaluated); with --weights.")
WeightsOpt = typer.Option(None, "--weights", help="The --model-factory model's state dict "
                                                  "(torch.save(model.state_dict(), FILE)); loaded with "
                                                  "weights_only=True.")
WeightsListOpt = typer.Option(None, "--weights", help="The --model-factory model's state dict "
                                                      "(torch.save(model.state_dict(), FILE)), loaded with "
                                                      "weights_only=True; repeat for several models of that "
                                                      "architecture.")
ModelLabelOpt = typer.Option(None, "--model-label", help="How tables and reports name the --model-factory model "
                                                         "(default: the factory's name); one per --weights.")
DefenseAtOpt = typer.Option(None, "--defense-at", help="The layer whose output the defense follows: a name from "
                                                       "model.named_modules(), e.g. layer2.0 (default: the "
                                                       "checkpoint's, the paper CNN's dropout layer; required for "
                                                       "--model-factory models).")
DataOpt = typer.Option(None, "--data", help="Test data file: .npz or .pt with x (N, C, H, W) float in [0, 1] or "
                                            "uint8, y (N,) integer labels, optional num_classes.")
DatasetOpt = typer.Option(None, "--dataset", help="Test data by name: mnist-5k | fashion-mnist | mnist | cifar10 "
                                                  "(default: the checkpoint's dataset).")


def _check_model_options(checkpoints: list, factory: Optional[str], weights: list, labels: list,
                         data: Optional[Path], dataset: Optional[str], data_dir: Optional[Path]) -> None:
    """The combinations of the model and data options, named as the user typed them."""
    if labels and factory is None:
        raise DefdropError("--model-label names a --model-factory model; a checkpoint carries its own label")
    if weights and factory is None:
        raise DefdropError("--weights needs --model-factory MODULE:CALLABLE (the code that builds the model)")
    if factory is not None and not weights:
        raise DefdropError(f"--model-factory {factory} needs --weights FILE (a state dict of the model it builds)")
    if labels and len(labels) != len(weights):
        raise DefdropError(f"--model-label: give one per --weights file ({len(labels)} label(s) for {len(weights)} "
                           "file(s))")
    if not checkpoints and factory is None:
        raise DefdropError("give a model: --model CHECKPOINT, or --model-factory MODULE:CALLABLE --weights FILE")
    if data is not None and dataset is not None:
        raise DefdropError("give --data FILE or --dataset NAME, not both")
    if data is not None and data_dir is not None:
        raise DefdropError("--data-dir belongs to --dataset; --data names the file itself")


def _one_model(checkpoint: Optional[Path], factory: Optional[str], weights: Optional[Path], label: Optional[str],
               data: Optional[Path], dataset: Optional[str], data_dir: Optional[Path]):
    """The one model of accuracy/gradvar: a checkpoint or a factory with its weights."""
    from payoffs.sources import open_models

    if checkpoint is not None and factory is not None:
        raise DefdropError("give --model CHECKPOINT or --model-factory with --weights, not both")
    checkpoints = [checkpoint] if checkpoint else []
    files = [weights] if weights else []
    labels = [label] if label else []
    _check_model_options(checkpoints, factory, files, labels, data, dataset, data_dir)
    return open_models(checkpoints, factory, files, labels, dataset)[0]


def _default_text(value: object) -> str:
    """A declared default as a user types it on the command line (``true``, not ``1``)."""
    from payoffs.params import format_value

    return str(value).lower() if isinstance(value, bool) else format_value(value)


def _recipe_help() -> str:
    """The --recipe help: each recipe with its parameters and defaults, read from the declarations."""
    from rich.markup import escape  # typer renders help texts as rich markup

    from payoffs.recipes import RECIPES

    parts = []
    for name in RECIPES:
        params = RECIPES[name].params.params
        listed = ", ".join(f"{p.name}={_default_text(p.default)}" for p in params)
        parts.append(f"{name}" + (f" ({listed})" if listed else ""))
    return escape("Training recipe: " + " | ".join(parts) + ". Parameters are explained below.")


def _recipe_epilog() -> str:
    """One paragraph per recipe parameter (allowed values, default, meaning), from the declarations."""
    from rich.markup import escape

    from payoffs.recipes import RECIPES

    lines = []
    for name in RECIPES:
        entry = RECIPES[name]
        lines.append(f"{name}: {entry.summary}.")
        lines.extend(f"  {name} {p.name} ({p.allowed()}, default {_default_text(p.default)}): {p.help}"
                     for p in entry.params.params)
    return "\n\n".join(escape(line) for line in lines)


@contextmanager
def train_progress(title: str):
    """A bar with the epoch, batch and running loss on a terminal; one line per epoch when stderr is piped."""
    if err_console.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[where]}"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=err_console) as bar:
            task = bar.add_task(title, total=None, where="")
            yield lambda p: bar.update(task, completed=p.step, total=p.total, where=str(p))
        return
    start = time.perf_counter()

    def log(p) -> None:
        if p.epoch_done:
            err_console.print(f"{title}: {p} ({time.perf_counter() - start:.1f} s)", highlight=False, markup=False,
                              soft_wrap=True)
    yield log


@app.command(epilog=_recipe_epilog())
@user_errors
def train(
    dataset: str = typer.Option("mnist-5k", help="mnist-5k | fashion-mnist | mnist | cifar10"),
    train_dropout: float = typer.Option(0.3, "--train-dropout", help="Training dropout rate r in [0, 1)."),
    epochs: int = typer.Option(20, help="Training epochs (>= 1)."),
    batch_size: int = typer.Option(128, "--batch-size"),
    learning_rate: float = typer.Option(1e-3, "--learning-rate", help="Adam learning rate."),
    dropout_layer: str = typer.Option("fc1", "--dropout-layer", help="fc1 (the paper) or fc2."),
    recipe: str = typer.Option("standard", "--recipe", help=_recipe_help()),
    recipe_param: list[str] = typer.Option([], "--recipe-param", metavar="NAME=VALUE",
                                           help="A parameter of the recipe (repeatable), e.g. --recipe-param eps=0.1."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("model.pt"), help="Checkpoint to write."),
    data_dir: Optional[Path] = DataDirOpt,
    device: str = DeviceOpt,
) -> None:
    """Train the paper's Table 1 CNN with dropout rate r under a training recipe and write a checkpoint.

    Example: defdrop train --recipe adversarial --recipe-param method=fgsm --epochs 20 --out adv.pt
    """
    from payoffs.checkpoint import save_checkpoint
    from payoffs.data import load_dataset
    from payoffs.io import check_outputs
    from payoffs.recipes import recipe_params_from_text
    from payoffs.training import TrainConfig, checkpoint_meta
    from payoffs.training import train as train_model

    config = TrainConfig(train_dropout=train_dropout, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, seed=seed, dropout_layer=dropout_layer, recipe=recipe,
                         recipe_params=recipe_params_from_text(recipe, recipe_param))
    config.validate()
    check_outputs({"--out": out})  # before training: an unwritable --out must not cost the model
    dev = _device(device)
    data = load_dataset(dataset, data_dir)
    with train_progress(f"train {dataset} r={train_dropout:g} {recipe}") as progress:
        result = train_model(data, config, dev, progress=progress)
    meta = checkpoint_meta(dataset, config, result)
    meta["data_dir"] = str(data_dir.resolve()) if data_dir else None
    save_checkpoint(out, result.model, meta)
    console.print(f"{result.recipe_label}: test accuracy {result.test_accuracy:.4f} on {len(data.x_test)} {dataset} "
                  f"test images ({result.seconds_per_epoch:.1f} s/epoch on {dev}); wrote {out}", highlight=False,
                  markup=False, soft_wrap=True)


@app.command()
@user_errors
def accuracy(
    model: Optional[Path] = CheckpointOpt,
    model_factory: Optional[str] = FactoryOpt,
    weights: Optional[Path] = WeightsOpt,
    model_label: Optional[str] = ModelLabelOpt,
    defense_at: Optional[str] = DefenseAtOpt,
    test_dropout: str = typer.Option("0,0.1,0.3,0.5,0.7,0.9", "--test-dropout", help="Test dropout rates r'."),
    sap: bool = typer.Option(False, "--sap", help="Also evaluate SAP."),
    samples: int = typer.Option(20, "--samples", help="Defender samples M per test image."),
    seed: int = typer.Option(0),
    data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt,
    data_dir: Optional[Path] = DataDirOpt,
    device: str = DeviceOpt,
) -> None:
    """Clean test accuracy under each defense, averaged over M defender samples, with 95% intervals."""
    from analysis.formatting import pct_interval
    from gameplay.strategies import defender_space
    from payoffs.evaluation import defended_accuracy
    from payoffs.parsing import parse_floats
    from payoffs.preflight import check_model
    from payoffs.slots import with_defense
    from payoffs.sources import data_for, open_data

    rates = parse_floats(test_dropout, "--test-dropout", low=0.0, high=1.0)
    if samples < 1:
        raise DefdropError(f"--samples {samples} must be at least 1")
    dev = _device(device)
    source = _one_model(model, model_factory, weights, model_label, data, dataset, data_dir)
    test = data_for(source, open_data(data, dataset, data_dir), data_dir)
    defenders = defender_space(rates, sap)
    slot = check_model(source, test, defense_at, defenders, dev)
    net, split = source.load(dev), test.load_test()
    console.print(f"clean accuracy, {test.name} test split ({len(split.x)} images), model {source.description.label}, "
                  f"defense after {slot}, M={samples}", highlight=False, markup=False, soft_wrap=True)
    table = Table()
    for col in ("defender", "clean accuracy [95% interval]"):
        table.add_column(col, no_wrap=True)
    for d in defenders:
        est = defended_accuracy(with_defense(net, d.module(), slot), split.x, split.y, samples, seed)
        table.add_row(d.id, pct_interval(est.mean, est.low, est.high))
    console.print(table)


@app.command()
@user_errors
def reproduce(
    profile: str = typer.Option("quick", "--profile", help="quick (minutes) | paper (the paper's protocol: "
                                                           "about 15 min on an H100, days on 2 CPU cores)."),
    dataset: str = typer.Option("mnist-5k", "--dataset", help="mnist-5k | fashion-mnist | mnist | cifar10"),
    out: Path = typer.Option(Path("runs/reproduce"), "--out", help="Output directory (report, tables, cache)."),
    jobs: int = typer.Option(1, "--jobs", help="Payoff cells in parallel processes."),
    batch_size: int = BatchOpt,
    seed: int = typer.Option(0),
    data_dir: Optional[Path] = DataDirOpt,
    device: str = DeviceOpt,
    executor: Optional[str] = ExecutorOpt,
    scheduler: Optional[str] = SchedulerOpt,
    worker_threads: int = WorkerThreadsOpt,
    plotly: str = typer.Option("directory", "--plotly", metavar="inline|directory|cdn", help=_PLOTLY_HELP),
) -> None:
    """The paper end to end: train, payoff sweeps (paper and adaptive attackers), artefacts, games, report."""
    from analysis.html import check_plotly_mode
    from analysis.reproduce import check_profile, run_study
    from payoffs.dask_executor import open_executor
    from payoffs.data import DATASETS
    from payoffs.io import check_outputs

    prof = check_profile(profile)
    check_plotly_mode(plotly)
    if jobs < 1:
        raise DefdropError(f"--jobs {jobs} must be at least 1")
    _warn_oversubscription(jobs)
    if dataset not in DATASETS:
        raise DefdropError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    check_outputs(dirs={"--out": out})
    dev = _device(device)
    with open_executor(executor, scheduler, jobs=jobs, threads=worker_threads, device=str(dev),
                       log=_executor_note) as cells_on, progress_bar() as bar:
        task = bar.add_task("payoff cells", total=None)

        piped = log_when_piped(bar)

        def done(kind: str, i: int, n: int, record: dict) -> None:
            bar.update(task, completed=i, total=n)
            piped(kind, i, n, record)

        html_path, md_path, result = run_study(prof, dataset, out, data_dir=data_dir, jobs=jobs, device=dev,
                                               batch_size=batch_size, executor=cells_on,
                                               seed=seed, log=lambda m: bar.console.print(m, highlight=False,
                                                                                          markup=False),
                                               on_done=done, plotly=plotly)
    console.print(md_path.read_text().split("## The paper's tables")[0], markup=False, highlight=False)
    console.print(f"report: {html_path.resolve()}\nmarkdown: {md_path.resolve()}", markup=False, highlight=False)


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Output directory."),
    jobs: int = typer.Option(1, "--jobs"),
    device: str = DeviceOpt,
) -> None:
    """The main job on embedded data: `reproduce --profile quick --dataset mnist-5k`."""
    reproduce(profile="quick", dataset="mnist-5k", out=out, jobs=jobs, batch_size=900, seed=0, data_dir=None,
              device=device, executor=None, scheduler=None, worker_threads=1, plotly="directory")


def _split(text: str) -> list[str]:
    """``"0, 10"`` -> ``["0", "10"]`` (values are checked later, against their declarations)."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _name_value(item: str, option: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise DefdropError(f"{option} {item!r} must be NAME=VALUE[,VALUE...]")
    return name.strip(), value.strip()


@app.command()
@user_errors
def payoff(
    model: Optional[list[Path]] = typer.Option(None, "--model", help="Checkpoint(s); repeat for several training "
                                                                     "rates."),
    model_factory: Optional[str] = FactoryOpt,
    weights: Optional[list[Path]] = WeightsListOpt,
    model_label: Optional[list[str]] = ModelLabelOpt,
    defense_at: Optional[str] = DefenseAtOpt,
    data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt,
    data_dir: Optional[Path] = DataDirOpt,
    attack: str = typer.Option("cw", "--attack", help="Comma list of fgsm, jsma, cw, pgd."),
    kappa: Optional[str] = typer.Option(None, "--kappa", help="C&W confidence(s) kappa, e.g. 0,10."),
    c: Optional[str] = typer.Option(None, "--c", help="C&W initial constant(s) c."),
    search_steps: Optional[str] = typer.Option(None, "--search-steps", help="C&W binary-search steps."),
    iterations: Optional[str] = typer.Option(None, "--iterations", help="C&W Adam iterations per step."),
    learning_rate: Optional[str] = typer.Option(None, "--learning-rate", help="C&W Adam step size(s)."),
    eps: Optional[str] = typer.Option(None, "--eps", help="FGSM/PGD Linf budget(s)."),
    steps: Optional[str] = typer.Option(None, "--steps", help="PGD steps."),
    theta: Optional[str] = typer.Option(None, "--theta", help="JSMA perturbation per feature."),
    gamma: Optional[str] = typer.Option(None, "--gamma", help="JSMA max fraction of features changed."),
    eot: str = typer.Option("1", "--eot", help="EOT samples per gradient step, e.g. 1,8."),
    success_test: str = typer.Option("single", "--success-test", help="single (the paper) and/or expected."),
    test_dropout: str = typer.Option("0,0.1,0.3,0.5,0.7,0.9", "--test-dropout", help="Test dropout rates r'."),
    sap: bool = typer.Option(False, "--sap", help="Add SAP (one draw per unit) as a defender strategy."),
    sap_draws: Optional[str] = typer.Option(None, "--sap-draws", help="SAP with fixed numbers of draws."),
    param: Optional[list[str]] = typer.Option(None, "--param", help="Any declared attack parameter as NAME=V1,V2 "
                                                                     "(repeatable), e.g. --param abort_early=false."),
    strategies: Optional[Path] = typer.Option(None, "--strategies", help="TOML file with both spaces "
                                                                           "(replaces the options above)."),
    n_images: int = typer.Option(100, "--n-images", help="N correctly classified test images (x every other class)."),
    eval_samples: int = typer.Option(20, "--eval-samples", help="M defender samples per adversarial example."),
    seed: int = typer.Option(0),
    jobs: int = typer.Option(1, "--jobs", help="Cells in parallel processes (cores are shared, not oversubscribed)."),
    batch_size: int = BatchOpt,
    cache_dir: Path = typer.Option(Path(".defdrop-cache/cells"), "--cache-dir", help="Finished cells (resume)."),
    out: Path = typer.Option(Path("payoff.csv"), "--out", help="CSV to write (+ a .json sidecar)."),
    device: str = DeviceOpt,
    executor: Optional[str] = ExecutorOpt,
    scheduler: Optional[str] = SchedulerOpt,
    worker_threads: int = WorkerThreadsOpt,
) -> None:
    """Evaluate every attacker strategy against every defender strategy into a payoff table."""
    import time as _time

    from analysis.formatting import text_table
    from gameplay.strategies import attacker_space, defender_space, spaces_from_toml
    from payoffs.dask_executor import open_executor
    from payoffs.io import check_outputs
    from payoffs.parsing import parse_floats, parse_ints
    from payoffs.sources import open_data, open_models
    from payoffs.table import build_payoff_table, payoff_outputs, write_payoff_table

    if jobs < 1:
        raise DefdropError(f"--jobs {jobs} must be at least 1")
    _warn_oversubscription(jobs)
    check_outputs({("--out" if role == "CSV" else f"its {role}"): path for role, path in payoff_outputs(out).items()},
                  dirs={"--cache-dir": cache_dir}, inputs={"--model": model, "--weights": weights, "--data": data,
                                                            "--strategies": strategies})
    if strategies is not None:
        attackers, defenders = spaces_from_toml(strategies)
    else:
        flags = {"kappa": kappa, "initial_c": c, "search_steps": search_steps, "iterations": iterations,
                 "learning_rate": learning_rate, "eps": eps, "steps": steps, "theta": theta, "gamma": gamma}
        params = {name: _split(text) for name, text in flags.items() if text is not None}
        for item in param or []:
            name, value = _name_value(item, "--param")
            params.setdefault(name, []).extend(_split(value))
        attackers = attacker_space([a.strip() for a in attack.split(",") if a.strip()], params,
                                   _split(eot), _split(success_test), text=True)
        defenders = defender_space(parse_floats(test_dropout, "--test-dropout", low=0.0, high=1.0), sap,
                                   parse_ints(sap_draws, "--sap-draws", low=1) if sap_draws else [])
    dev = _cell_device(device, executor, scheduler)
    _check_model_options(model or [], model_factory, weights or [], model_label or [], data, dataset, data_dir)
    refs = open_models(model or [], model_factory, weights or [], model_label or [], dataset)
    test = open_data(data, dataset, data_dir)
    console.print(f"{len(refs)} model(s) x {len(defenders)} defender(s) x {len(attackers)} attacker(s) = "
                  f"{len(refs) * len(defenders) * len(attackers)} cells; N={n_images} images x every other class, "
                  f"M={eval_samples}, seed {seed}, cache {cache_dir}")
    start = _time.perf_counter()
    with open_executor(executor, scheduler, jobs=jobs, threads=worker_threads, device=dev,
                       log=_executor_note) as cells_on, progress_bar() as bar:
        overall = bar.add_task("payoff cells", total=None)
        current: dict[str, int] = {}

        def cell_progress(kind: str):
            if jobs > 1 or cells_on is not None:
                return None
            if kind in current:
                bar.remove_task(current.pop(kind))
            current[kind] = bar.add_task(f"  {kind}", total=None)
            return lambda i, n: bar.update(current[kind], completed=i, total=n)

        piped = log_when_piped(bar)

        def done(kind: str, i: int, n: int, record: dict) -> None:
            bar.update(overall, completed=i, total=n)
            piped(kind, i, n, record)

        table = build_payoff_table(refs, attackers, defenders, n_images=n_images, eval_samples=eval_samples,
                                   seed=seed, cache_dir=cache_dir, jobs=jobs, executor=cells_on, device=dev,
                                   on_done=done, progress_for=cell_progress, batch_size=batch_size, data=test,
                                   slot=defense_at, data_dir=data_dir)
        where = cells_on.describe() if cells_on is not None else {"executor": "local", "jobs": jobs}
    write_payoff_table(table, out, models=refs, attackers=attackers, defenders=defenders, n_images=n_images,
                       eval_samples=eval_samples, seed=seed, seconds=_time.perf_counter() - start,
                       extra={"executor": where})
    show = table[["attacker", "defender", "asr", "asr_low", "asr_high", "asr_majority", "l2_mean",
                  "clean_accuracy", "forwards", "backwards"]]
    console.print(text_table(show), highlight=False, markup=False, soft_wrap=True)
    console.print(f"wrote {' and '.join(str(p) for p in payoff_outputs(out).values())}", highlight=False)


@app.command()
@user_errors
def solve(
    payoff: Path = typer.Argument(..., help="Payoff table CSV (from `defdrop payoff`, or reproduce's "
                                            "tables/payoff.csv / tables/game-*.csv), or any CSV with the columns "
                                            "attacker, defender, asr, clean_accuracy."),
    max_accuracy_drop: Optional[str] = typer.Option(
        None, "--max-accuracy-drop", metavar="FRACTION|none",
        help="Paper's epsilon: keep defender strategies losing less clean accuracy than this fraction (0.01 = one "
             "point; a drop of exactly epsilon is out, as in Algorithm 1). Default "
             f"{DEFAULT_MAX_ACCURACY_DROP:g}, {DEFAULT_BUDGET_SOURCE}; 'none' lifts the limit (the recommendation "
             "still states its accuracy cost; Algorithm 1 is then not run)."),
    model: Optional[str] = typer.Option(
        None, "--model", metavar="LABEL",
        help="Solve one model's game: its name in the table (r=0.3, your model's label) or the start of its hash. "
             "Needed where the table holds several games (reproduce's tables/payoff.csv); the error lists them."),
    game: Optional[str] = typer.Option(
        None, "--game", metavar="ATTACKS-SPACE",
        help="Which attackers: ATTACKS joined by + (cw, fgsm+jsma) and/or a SPACE, paper (the paper's attackers "
             "only) or eot (the adaptive ones too: EOT, expected test, kappa > 0), e.g. cw-eot, as in reproduce's "
             "tables/game-r0.3-cw-eot.csv. Default: every attacker."),
    solver: str = typer.Option("all", "--solver", help="all | algorithm1 | minimax | nash | stackelberg"),
    mu: float = typer.Option(0.0, "--mu", help="Attacker's cost per unit of L2 paid per attack (> 0: general-sum)."),
    lam: float = typer.Option(0.0, "--lam", help="Defender's cost per unit of accuracy lost (> 0: general-sum)."),
    robustness_samples: int = typer.Option(200, "--robustness-samples",
                                           help="Resampled payoff tables for the robustness figures (0: skip)."),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the self-contained HTML report here."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON instead of markdown."),
    audit: Optional[Path] = typer.Option(None, "--audit", help="An audit JSON (defdrop audit): say whether it backs "
                                                               "the recommended defender and Algorithm 1's."),
    plotly: str = PlotlyOpt,
    png: bool = PngOpt,
) -> None:
    """Which test dropout rate to deploy: Algorithm 1, best responses, minimax, Nash, Stackelberg, robustness.

    Examples: `defdrop solve payoff.csv --out report.html` (the paper's 1-point accuracy budget);
    `defdrop solve runs/demo/tables/payoff.csv --model r=0.3 --game cw-eot`;
    `defdrop solve mine.csv --max-accuracy-drop none --json`.
    """
    from analysis.html import check_plotly_mode
    from analysis.solve_text import report_json_text, solve_markdown
    from gameplay.solve import parse_budget, solve_payoff_csv
    from payoffs.io import check_outputs

    check_plotly_mode(plotly)

    check_outputs({"--out": out}, inputs={"PAYOFF": payoff, "--audit": audit})
    summary = None
    if audit is not None:  # read first: a bad audit file must not cost the solve
        from gameplay.audit_backing import read_audit_json
        summary = read_audit_json(audit)
    report = solve_payoff_csv(payoff, max_accuracy_drop=parse_budget(max_accuracy_drop), solver=solver, mu=mu, lam=lam,
                              robustness_samples=robustness_samples, seed=seed, model=model, game=game)
    if out is not None:
        from analysis.solve_report import write_solve_report_html
        write_solve_report_html(report, out, plotly=plotly, png=png, log=_note)
    if summary is not None:
        from analysis.audit_page import solve_json_with_audit, solve_markdown_with_audit
        from gameplay.audit_backing import report_backings
        backings = report_backings(summary, report)
        typer.echo(solve_json_with_audit(report, backings) if as_json else solve_markdown_with_audit(report, backings))
    else:
        typer.echo(report_json_text(report) if as_json else solve_markdown(report))
    if out is not None:
        err_console.print(f"wrote {out}", highlight=False)


@app.command()
@user_errors
def gradvar(
    model: Optional[Path] = CheckpointOpt,
    model_factory: Optional[str] = FactoryOpt,
    weights: Optional[Path] = WeightsOpt,
    model_label: Optional[str] = ModelLabelOpt,
    defense_at: Optional[str] = DefenseAtOpt,
    test_dropout: str = typer.Option("0.1,0.3,0.5,0.7,0.9", "--test-dropout", help="Test dropout rates r'."),
    sap: bool = typer.Option(False, "--sap", help="Also sample SAP (draws = number of units)."),
    samples: int = typer.Option(50, "--samples", help="Gradients S per image and defender (>= 2)."),
    dims: int = typer.Option(5, "--dims", help="Dimensions D drawn in Figure 4 and summarized on their own."),
    dim_selection: str = typer.Option("magnitude", "--dim-selection",
                                      help="magnitude (largest undefended |grad f| per image) or random (--seed)."),
    images: int = typer.Option(20, "--images", help="The first N test images the undefended model classifies "
                                                    "correctly; target class (label + 1) mod classes."),
    kappa: float = typer.Option(0.0, "--kappa", help="C&W confidence kappa in f."),
    out: Path = typer.Option(Path("gradvar.html"), "--out", help="HTML page to write."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also save the statistics table as CSV."),
    payoffs: Optional[Path] = typer.Option(None, "--payoffs", help="A payoff CSV (defdrop payoff): adds the "
                                                                   "variance-ASR relation and Figures 3/5."),
    data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt,
    seed: int = typer.Option(0),
    data_dir: Optional[Path] = DataDirOpt,
    device: str = DeviceOpt,
    plotly: str = PlotlyOpt,
    png: bool = PngOpt,
) -> None:
    """Gradient variance under each defender (paper section 3.3, Figure 4): write the page, print the statistics."""
    from analysis.formatting import text_table
    from analysis.gradvar import (build_defenders, paper_checks, read_payoff_frame, read_payoff_images, run_gradvar,
                                  select_inputs, summary_table)
    from analysis.gradvar_page import write_gradvar_html
    from analysis.html import check_plotly_mode
    from payoffs.io import atomic_write_text, check_outputs
    from payoffs.parsing import parse_floats
    from payoffs.preflight import check_model
    from payoffs.sources import data_for, open_data

    check_plotly_mode(plotly)
    rates = parse_floats(test_dropout, "--test-dropout", low=0.0, high=1.0)
    check_outputs({"--out": out, "--csv": csv}, inputs={"--model": model, "--weights": weights, "--data": data,
                                                        "--payoffs": payoffs})
    payoff_df = read_payoff_frame(payoffs) if payoffs is not None else None
    payoff_images = read_payoff_images(payoffs) if payoffs is not None else None
    dev = _device(device)
    source = _one_model(model, model_factory, weights, model_label, data, dataset, data_dir)
    test = data_for(source, open_data(data, dataset, data_dir), data_dir)
    defenders = build_defenders(rates, sap)
    slot = check_model(source, test, defense_at, defenders, dev)
    net, split = source.load(dev), test.load_test()
    x, y, target = select_inputs(net, split.x, split.y, images, split.num_classes)
    result = run_gradvar(net, x, target, defenders, samples=samples, dims=dims, dim_selection=dim_selection,
                         seed=seed, kappa=kappa, true_labels=y, slot=slot, model_label=source.description.label)
    if csv is not None:  # the small table first: if the page then fails to fit on disk, the numbers are kept
        atomic_write_text(csv, result.table.to_csv(index=False))
    write_gradvar_html(result, out, payoff_df=payoff_df, images=payoff_images, plotly=plotly, png=png, log=_note)
    rows = summary_table(result)
    title = (f"sampled C&W gradients, {test.name}, model {source.description.label}, defense after {slot}, "
             f"{images} images, S={samples}, D={dims} ({dim_selection}); mean [95% bootstrap interval over images]")
    console.print(title + "\n" + text_table(rows), highlight=False, markup=False, soft_wrap=True)
    for check in paper_checks(result):
        console.print(f"{check.verdict}: {check.claim}. {check.detail}", highlight=False, markup=False)
    console.print(f"wrote {out}" + (f" and {csv}" if csv is not None else ""), highlight=False, markup=False)


@app.command()
@user_errors
def audit(
    model: Optional[Path] = CheckpointOpt,
    model_factory: Optional[str] = FactoryOpt,
    weights: Optional[Path] = WeightsOpt,
    model_label: Optional[str] = ModelLabelOpt,
    defense_at: Optional[str] = DefenseAtOpt,
    test_dropout: str = typer.Option("0.5", "--test-dropout", help="Test dropout rates r' to audit."),
    sap: bool = typer.Option(False, "--sap", help="Also audit SAP (one draw per unit)."),
    sap_draws: Optional[str] = typer.Option(None, "--sap-draws", help="Also audit SAP with these numbers of draws."),
    attack: str = typer.Option("cw", "--attack", help="The attack: fgsm, jsma, cw or pgd."),
    kappa: Optional[str] = typer.Option(None, "--kappa", help="C&W confidence kappa."),
    c: Optional[str] = typer.Option(None, "--c", help="C&W initial constant c."),
    search_steps: Optional[str] = typer.Option(None, "--search-steps", help="C&W binary-search steps."),
    iterations: Optional[str] = typer.Option(None, "--iterations", help="C&W Adam iterations per step."),
    learning_rate: Optional[str] = typer.Option(None, "--learning-rate", help="C&W Adam step size."),
    eps: Optional[str] = typer.Option(None, "--eps", help="FGSM/PGD Linf budget."),
    steps: Optional[str] = typer.Option(None, "--steps", help="PGD steps."),
    eot: str = typer.Option("1", "--eot", help="The attacker's EOT samples per gradient step."),
    success_test: str = typer.Option("single", "--success-test", help="single (the paper) or expected."),
    param: Optional[list[str]] = typer.Option(None, "--param", help="Any declared attack parameter as NAME=VALUE "
                                                                     "(repeatable)."),
    n_images: int = typer.Option(40, "--n-images", help="Correctly classified test images attacked."),
    targets: int = typer.Option(1, "--targets", help="Targets per image: (label + j) mod K, j = 1..targets."),
    eval_samples: int = typer.Option(20, "--eval-samples", help="M fresh defender samples per adversarial example."),
    eot_max: int = typer.Option(32, "--eot-max", help="Largest k of the EOT-saturation curve (k = 1, 2, 4, ...)."),
    probe_images: int = typer.Option(100, "--probe-images", help="Images of the forward-only checks (1 and 7)."),
    setting: Optional[list[str]] = typer.Option(None, "--setting", help="Any audit setting as NAME=VALUE "
                                                                         "(repeatable), e.g. unbounded_c=1e5."),
    checks: Optional[str] = typer.Option(None, "--checks", help="Which checks, e.g. 3,4,7 (default: 1-7; the cost "
                                                                 "of each, check 8, is always recorded)."),
    seed: int = typer.Option(0),
    batch_size: int = BatchOpt,
    out: Path = typer.Option(Path("audit.html"), "--out", help="Page to write; its JSON form goes beside it "
                                                               "(audit.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON instead of the summary."),
    data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt,
    data_dir: Optional[Path] = DataDirOpt,
    device: str = DeviceOpt,
    plotly: str = PlotlyOpt,
    png: bool = PngOpt,
) -> None:
    """Is the attacker strong enough? The validity checks of a randomized-defense evaluation, per defender."""
    import json as _json

    from analysis.audit_page import audit_json, json_path_for, run_audit, summary_lines, write_audit
    from analysis.html import check_plotly_mode
    from gameplay.strategies import attacker_space, defender_space
    from payoffs.audit.settings import AuditSettings
    from payoffs.io import check_outputs
    from payoffs.parsing import parse_floats, parse_ints
    from payoffs.preflight import check_model
    from payoffs.sources import data_for, open_data

    check_plotly_mode(plotly)
    check_outputs({"--out": out, "its JSON": json_path_for(out)},
                  inputs={"--model": model, "--weights": weights, "--data": data})
    flags = {"kappa": kappa, "initial_c": c, "search_steps": search_steps, "iterations": iterations,
             "learning_rate": learning_rate, "eps": eps, "steps": steps}
    params = {name: _split(text) for name, text in flags.items() if text is not None}
    for item in param or []:
        name, value = _name_value(item, "--param")
        params.setdefault(name, []).extend(_split(value))
    attackers = attacker_space([attack.strip()], params, _split(eot), _split(success_test), text=True)
    if len(attackers) != 1:
        raise DefdropError(f"the audit takes one attacker strategy; the options give {len(attackers)}: "
                           f"{', '.join(a.id for a in attackers[:4])}")
    defenders = defender_space(parse_floats(test_dropout, "--test-dropout", low=0.0, high=1.0), sap,
                               parse_ints(sap_draws, "--sap-draws", low=1) if sap_draws else [])
    given = {"n_images": n_images, "targets": targets, "eval_samples": eval_samples, "eot_max": eot_max,
             "probe_images": probe_images, "seed": seed, "batch_size": batch_size}
    for item in setting or []:
        name, value = _name_value(item, "--setting")
        given[name] = value
    settings = AuditSettings.from_text({k: str(v) for k, v in given.items()}, checks)
    dev = _device(device)
    source = _one_model(model, model_factory, weights, model_label, data, dataset, data_dir)
    test = data_for(source, open_data(data, dataset, data_dir), data_dir)
    slot = check_model(source, test, defense_at, defenders, dev)  # before any work: bad models are one line
    with progress_bar() as bar:
        task = bar.add_task("audit", total=None)
        evidence, verdict = run_audit(source, defenders, attackers[0], settings=settings, data=test, slot=slot,
                                      device=dev, log=lambda m: bar.update(task, description=m))
    html_path, json_path = write_audit(evidence, verdict, out, plotly=plotly, png=png, log=_note)
    if as_json:
        typer.echo(_json.dumps(audit_json(evidence, verdict), indent=1, allow_nan=False))
    else:
        typer.echo("\n".join(summary_lines(evidence, verdict)))
    err_console.print(f"wrote {html_path} and {json_path}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
