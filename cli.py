"""defdrop: the command-line app. Thin: parse, call the library, print."""
from __future__ import annotations

import functools
import inspect
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from gameplay.rules import DEFAULT_BUDGET_SOURCE, DEFAULT_MAX_ACCURACY_DROP
from payoffs.errors import DefdropError, Terminated

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Decide, with measured evidence, how a classifier should defend itself with test-time dropout.")
# No markup: messages and tables carry user data (labels like dropout[r'=0.3], paths, attack names) that rich
# would otherwise read as style tags, dropping text or crashing on "[/x]".
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def print_error(message: str) -> None:
    """One line on stderr, ``error:`` in red, the message as plain text."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)


def package_version() -> str:
    """defdrop's version from the installed package's metadata (``unknown`` when run from an uninstalled tree)."""
    from importlib import metadata

    try:
        return metadata.version("defdrop")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"defdrop {package_version()}")
        raise typer.Exit()


@app.callback()
def _app(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                      help="Print defdrop's version and exit.")) -> None:
    """Decide, with measured evidence, how a classifier should defend itself with test-time dropout."""
    fit_consoles()


PIPED_WIDTH = 100_000
"""Console width when output goes to a file or a pipe: lines (paths, table rows) are never wrapped or cut there."""


def fit_consoles() -> None:
    """Wrap at the terminal's width on a terminal; never wrap when piped (rich would wrap at 80 columns)."""
    for c in (console, err_console):
        c.width = None  # back to measuring: a terminal's width, or 80 when not one
        if not c.is_terminal:
            c.width = PIPED_WIDTH


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


class CountColumn(ProgressColumn):
    """``3/10 images``: done, total and the task's unit (only the count while the total is unknown; nothing
    before the first step, rather than rich's ``0/?``)."""

    def render(self, task) -> Text:
        unit = task.fields.get("unit", "")
        if task.total is None:
            return Text(f"{int(task.completed)} {unit}".rstrip() if task.completed else "", style="progress.download")
        return Text(f"{int(task.completed)}/{int(task.total)} {unit}".rstrip(), style="progress.download")


class LogProgress:
    """What a command's progress does when stderr is not a terminal: no bar (a finished bar would be dumped
    into the log); the command prints its own line per finished step instead. The same methods as rich's
    :class:`~rich.progress.Progress`, doing nothing."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._next = 0

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, **kwargs) -> int:
        self._next += 1
        return self._next

    def update(self, task: int, **kwargs) -> None:
        return None

    def advance(self, task: int, advance: float = 1) -> None:
        return None

    def remove_task(self, task: int) -> None:
        return None


def progress_bar() -> Progress | LogProgress:
    """A bar per task with its unit (``12/40 cells``) on a terminal; :class:`LogProgress` when piped."""
    if not err_console.is_terminal:
        return LogProgress(err_console)
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), CountColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False)


def log_line(text: str) -> None:
    """One progress line on stderr, never wrapped (for logs; a terminal shows the bars)."""
    err_console.print(text, highlight=False, markup=False, soft_wrap=True)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A titled table on stdout. The title is its own line (a rich title wraps at the table's width); the first
    column (the strategy ids) is never cut or wrapped, on a terminal of any width or in a pipe."""
    console.print(title, highlight=False, markup=False, soft_wrap=True)
    rows = [[str(v) for v in row] for row in rows]
    if not console.is_terminal:  # logs and pipes: plain aligned columns, no box drawing, nothing cut
        widths = [max([len(str(h))] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
        for line in [list(map(str, header))] + rows:
            console.print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip(), highlight=False,
                          markup=False, soft_wrap=True)
        return
    table = Table()
    for i, name in enumerate(header):
        width = max([len(str(name))] + [len(r[i]) for r in rows]) if i == 0 else None
        table.add_column(str(name), no_wrap=i == 0, min_width=width)
    for row in rows:
        table.add_row(*row)
    console.print(table, highlight=False)


def cell_line(kind: str, i: int, n: int, record: dict) -> str:
    """One log line per finished job, for logs (a terminal shows the progress bar instead)."""
    from analysis.formatting import pct
    from payoffs.cell import headline

    what = record.get("attacker", "") + (" vs " if "attacker" in record else "") + record.get("defender", "")
    name, value = headline(record)
    result = f"{name} {pct(value)}"
    model = f" ({record['model_label']})" if record.get("model_label") else ""
    return f"[{i}/{n}] {kind} {what}{model}: {result} in {record.get('seconds', float('nan')):.1f} s"


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


# Option groups in --help (rich_help_panel), the same names in every command.
MODEL_PANEL = "Model and data"
ATTACKER_PANEL = "Attacker strategies"
ATTACK_PARAMS_PANEL = "Attack parameters (default: each attack's declared value)"
DEFENDER_PANEL = "Defender strategies"
PROTOCOL_PANEL = "Protocol"
RUN_PANEL = "Running"
OUTPUT_PANEL = "Output"

DeviceOpt = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="auto: CUDA when present.",
                         rich_help_panel=RUN_PANEL)
_PLOTLY_HELP = ("Where pages get plotly.js: inline (embedded in each page, one self-contained file of about 5 MB) | "
                "directory (one plotly.min.js in the page's folder, shared by its pages) | cdn (cdn.plot.ly: a small "
                "page that needs the network to display).")
PlotlyOpt = typer.Option("inline", "--plotly", metavar="inline|directory|cdn", help=_PLOTLY_HELP,
                         rich_help_panel=OUTPUT_PANEL)
PngOpt = typer.Option(False, "--png/--no-png", help="Also write every figure as a PNG beside the page "
                                                    "(<page>-figures/figure-N.png); needs kaleido and a "
                                                    "Chrome/Chromium, else one line says why and the page is written "
                                                    "without them.", rich_help_panel=OUTPUT_PANEL)
BatchOpt = typer.Option(900, "--batch-size", metavar="ROWS",
                        help="Attacks x EOT samples per forward pass: a speed knob only (randomness is keyed per "
                             "example, so results do not depend on it); larger on a GPU, e.g. 7200.",
                        rich_help_panel=RUN_PANEL)
JobsOpt = typer.Option(1, "--jobs", metavar="N", help="Payoff cells in parallel processes here (cores are shared, "
                                                      "not oversubscribed).", rich_help_panel=RUN_PANEL)
ExecutorOpt = typer.Option(None, "--executor", metavar="local|dask",
                           help="Where cells run: local (--jobs processes here) or dask (a Dask cluster: "
                                "--scheduler's, else a local one, one worker per core). Default: dask with "
                                "--scheduler, else local.", rich_help_panel=RUN_PANEL)
SchedulerOpt = typer.Option(None, "--scheduler", metavar="tcp://HOST:PORT",
                            help="A running Dask scheduler (or its scheduler file); workers need no shared files.",
                            rich_help_panel=RUN_PANEL)
WorkerThreadsOpt = typer.Option(1, "--worker-threads", metavar="N",
                                help="Torch threads per cell on Dask workers (a rerun cell is identical at the same "
                                     "count).", rich_help_panel=RUN_PANEL)
SeedOpt = typer.Option(0, "--seed", help="Seed of every random draw (defender samples, attacks).",
                       rich_help_panel=PROTOCOL_PANEL)
DataDirOpt = typer.Option(None, "--data-dir", metavar="DIR",
                          help="Directory with the named dataset's files (mnist, cifar10; fashion-mnist defaults to "
                               "/usr/share/datasets/fashion-mnist; default: where the checkpoint's model was "
                               "trained from).", rich_help_panel=MODEL_PANEL)
# Your own model and data (accuracy, payoff, gradvar, audit): one definition each, shared by the commands.
CheckpointOpt = typer.Option(None, "--model", metavar="CHECKPOINT",
                             help="A defdrop checkpoint (or your own model: --model-factory and --weights).",
                             rich_help_panel=MODEL_PANEL)
FactoryOpt = typer.Option(None, "--model-factory", metavar="MODULE:CALLABLE",
                          help="Your own model: a callable returning an nn.Module that gives logits, e.g. "
                               "mypkg.nets:build (imported from the current directory or the installed packages, "
                               "never evaluated); with --weights.", rich_help_panel=MODEL_PANEL)
WeightsOpt = typer.Option(None, "--weights", metavar="FILE",
                          help="The --model-factory model's state dict (torch.save(model.state_dict(), FILE)); "
                               "loaded with weights_only=True.", rich_help_panel=MODEL_PANEL)
WeightsListOpt = typer.Option(None, "--weights", metavar="FILE",
                              help="The --model-factory model's state dict (torch.save(model.state_dict(), FILE)), "
                                   "loaded with weights_only=True; repeat for several models of that architecture.",
                              rich_help_panel=MODEL_PANEL)
ModelLabelOpt = typer.Option(None, "--model-label", metavar="LABEL",
                             help="How tables and reports name the --model-factory model (default: the factory's "
                                  "name); one per --weights.", rich_help_panel=MODEL_PANEL)
DefenseAtOpt = typer.Option(None, "--defense-at", metavar="LAYER",
                            help="The layer whose output the defense follows: a name from model.named_modules(), "
                                 "e.g. layer2.0 (default: the checkpoint's, the paper CNN's dropout layer; required "
                                 "for --model-factory models).", rich_help_panel=MODEL_PANEL)
DataOpt = typer.Option(None, "--data", metavar="FILE",
                       help="Test data file: .npz or .pt with x (N, C, H, W) float in [0, 1] or uint8, y (N,) "
                            "integer labels, optional num_classes.", rich_help_panel=MODEL_PANEL)
DatasetOpt = typer.Option(None, "--dataset", metavar="NAME",
                          help="Test data by name: mnist-5k | fashion-mnist | mnist | cifar10 (default: the "
                               "checkpoint's dataset).", rich_help_panel=MODEL_PANEL)
TestDropoutHelp = "Test dropout rates r' in [0, 1), one defender strategy each (0: undefended)."
SapOpt = typer.Option(False, "--sap", help="Add SAP (one draw per unit) as a defender strategy.",
                      rich_help_panel=DEFENDER_PANEL)
SapDrawsOpt = typer.Option(None, "--sap-draws", metavar="N1,N2,...",
                           help="Add SAP with these fixed numbers of draws, one defender strategy each.",
                           rich_help_panel=DEFENDER_PANEL)
NImagesHelp = "N: the first N test images the undefended model classifies correctly"
EvalSamplesHelp = "M: fresh defender samples each example is evaluated under"


def _renamed(value, flag: str, old_value, old_flag: str, default):
    """An option's value where an old spelling (a hidden, deprecated alias) may have been used instead."""
    if old_value is None:
        return value
    if value != default:
        raise DefdropError(f"give {flag} (or its old name {old_flag}), not both")
    err_console.print(f"warning: {old_flag} is deprecated; it is now {flag}", highlight=False, markup=False,
                      soft_wrap=True)
    return old_value


def _at_least(value: int, flag: str, low: int = 1, why: str = "") -> int:
    """Checked before any work: an integer option's lower bound, in one line."""
    if value < low:
        raise DefdropError(f"{flag} {value} must be at least {low}{why}")
    return value


def examples(*lines: str) -> str:
    """A command's epilog: its examples, one paragraph each (typer renders help texts as rich markup)."""
    from rich.markup import escape

    return "Examples:\n\n" + "\n\n".join(escape(f"  {line}") for line in lines)


MODEL_FLAGS = {"checkpoints": "--model CHECKPOINT", "factory": "--model-factory MODULE:CALLABLE",
               "weights": "--weights FILE", "labels": "--model-label"}
"""The model options as a refusal names them (payoffs.sources.check_model_options holds the rules)."""


def _check_model_options(checkpoints: list, factory: Optional[str], weights: list, labels: list,
                         data: Optional[Path], dataset: Optional[str], data_dir: Optional[Path]) -> None:
    """The combinations of the model and data options, named as the user typed them."""
    from payoffs.sources import check_model_options

    check_model_options(checkpoints, factory, weights, labels, names=MODEL_FLAGS)
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


TRAIN_PANEL = "Training"


@app.command(epilog=examples(
    "defdrop train --dataset mnist-5k --train-dropout 0.3 --epochs 20 --out r0.3.pt",
    "defdrop train --recipe adversarial --recipe-param method=fgsm --epochs 20 --out adv.pt",
    "defdrop train --dataset cifar10 --data-dir ~/data/cifar-10-batches-py --device cuda --out cifar.pt")
    + "\n\n" + _recipe_epilog())
@user_errors
def train(
    dataset: str = typer.Option("mnist-5k", "--dataset", metavar="NAME",
                                help="mnist-5k | fashion-mnist | mnist | cifar10", rich_help_panel=MODEL_PANEL),
    data_dir: Optional[Path] = DataDirOpt,
    train_dropout: float = typer.Option(0.3, "--train-dropout", metavar="R", help="Training dropout rate r in [0, 1).",
                                        rich_help_panel=TRAIN_PANEL),
    epochs: int = typer.Option(20, "--epochs", metavar="N", help="Training epochs (>= 1).",
                               rich_help_panel=TRAIN_PANEL),
    batch_size: int = typer.Option(128, "--batch-size", metavar="ROWS", help="Training minibatch size.",
                                   rich_help_panel=TRAIN_PANEL),
    learning_rate: float = typer.Option(1e-3, "--learning-rate", metavar="LR", help="Adam learning rate.",
                                        rich_help_panel=TRAIN_PANEL),
    dropout_layer: str = typer.Option("fc1", "--dropout-layer", metavar="fc1|fc2", help="fc1 (the paper) or fc2.",
                                      rich_help_panel=TRAIN_PANEL),
    recipe: str = typer.Option("standard", "--recipe", metavar="NAME", help=_recipe_help(),
                               rich_help_panel=TRAIN_PANEL),
    recipe_param: list[str] = typer.Option([], "--recipe-param", metavar="NAME=VALUE",
                                           help="A parameter of the recipe (repeatable), e.g. --recipe-param eps=0.1.",
                                           rich_help_panel=TRAIN_PANEL),
    seed: int = typer.Option(0, "--seed", help="Seed of the initialization and the batch order.",
                             rich_help_panel=TRAIN_PANEL),
    out: Path = typer.Option(Path("model.pt"), "--out", metavar="CHECKPOINT", help="Checkpoint to write.",
                             rich_help_panel=OUTPUT_PANEL),
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


ATTACK_FLAGS = {"kappa": "kappa", "c": "initial_c", "search-steps": "search_steps", "iterations": "iterations",
                "learning-rate": "learning_rate", "eps": "eps", "steps": "steps", "theta": "theta", "gamma": "gamma"}
"""Attack parameters with an option of their own (``--flag`` -> declared name); any other one: ``--param``."""


def _attack_param_help(name: str, many: bool) -> str:
    """Which attacks take a parameter, what it is there, its allowed values and default: from the declarations."""
    from rich.markup import escape

    from payoffs.registry import ATTACKS

    parts = [f"{a}: {ATTACKS[a].params[name].help} ({ATTACKS[a].params[name].allowed()}, default "
             f"{_default_text(ATTACKS[a].params[name].default)})" for a in ATTACKS if name in ATTACKS[a].params]
    tail = " A comma list gives one attacker strategy per value." if many else ""
    return escape("; ".join(parts) + "." + tail)


def _attack_opt(flag: str, many: bool):
    return typer.Option(None, f"--{flag}", metavar="V1,V2,..." if many else "VALUE",
                        help=_attack_param_help(ATTACK_FLAGS[flag], many), show_default=False,
                        rich_help_panel=ATTACK_PARAMS_PANEL)


@dataclass(frozen=True)
class AttackParams:
    """The attack parameters a command was given: declared name -> its values as typed (one strategy each), and
    which names came through ``--param`` (so a refusal names the option the user typed)."""

    values: dict[str, list[str]]
    from_param: frozenset[str]


NO_ATTACK_PARAMS = AttackParams({}, frozenset())
"""The default of a command's ``attack_params``: ``attack_param_options`` replaces it by the options given."""


def attack_param_options(many: bool) -> Callable[[Callable], Callable]:
    """Give a command one option per ``ATTACK_FLAGS`` entry and ``--param NAME=V``, built from the attack
    registry's declarations, in place of its ``attack_params: AttackParams`` parameter (``many``: comma lists, one
    strategy per value). A new attack parameter is a registry entry, and an ``ATTACK_FLAGS`` entry for its own
    option; no command lists it."""
    options = [inspect.Parameter(flag.replace("-", "_"), inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                 default=_attack_opt(flag, many), annotation=Optional[str]) for flag in ATTACK_FLAGS]
    options.append(inspect.Parameter(
        "param", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[list[str]],
        default=typer.Option(None, "--param", metavar="NAME=V1,V2,..." if many else "NAME=VALUE",
                             help="Any declared attack parameter (repeatable), e.g. --param abort_early=false.",
                             rich_help_panel=ATTACK_PARAMS_PANEL)))

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        parameters = []
        for p in signature.parameters.values():
            parameters.extend(options if p.name == "attack_params" else [p])
        if len(parameters) == len(signature.parameters):
            raise TypeError(f"{fn.__name__} has no attack_params parameter")

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            values: dict[str, list[str]] = {}
            for flag, name in ATTACK_FLAGS.items():
                text = kwargs.pop(flag.replace("-", "_"))
                if text is not None:
                    values[name] = _split(text)
            items = kwargs.pop("param") or []
            for item in items:
                name, value = _name_value(item, "--param")
                values.setdefault(name, []).extend(_split(value))
            kwargs["attack_params"] = AttackParams(values, frozenset(_name_value(i, "--param")[0] for i in items))
            return fn(*args, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=parameters)
        wrapper.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k != "attack_params"},
                                   **{p.name: p.annotation for p in options}}
        return wrapper

    return decorate


@app.command(epilog=examples(
    "defdrop accuracy --model model.pt --test-dropout 0,0.3,0.5 --sap --eval-samples 20",
    "defdrop accuracy --model-factory mynets:build --weights net.pt --data test.npz --defense-at relu2"))
@user_errors
def accuracy(
    model: Optional[Path] = CheckpointOpt,
    model_factory: Optional[str] = FactoryOpt,
    weights: Optional[Path] = WeightsOpt,
    model_label: Optional[str] = ModelLabelOpt,
    defense_at: Optional[str] = DefenseAtOpt,
    data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt,
    data_dir: Optional[Path] = DataDirOpt,
    test_dropout: str = typer.Option("0,0.1,0.3,0.5,0.7,0.9", "--test-dropout", metavar="R1,R2,...",
                                     help=TestDropoutHelp, rich_help_panel=DEFENDER_PANEL),
    sap: bool = SapOpt,
    sap_draws: Optional[str] = SapDrawsOpt,
    eval_samples: int = typer.Option(20, "--eval-samples", metavar="M", help=f"{EvalSamplesHelp}: here each test "
                                     "image.", rich_help_panel=PROTOCOL_PANEL),
    samples_old: Optional[int] = typer.Option(None, "--samples", hidden=True),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
) -> None:
    """Clean test accuracy under each defense, averaged over M defender samples, with 95% intervals."""
    from analysis.formatting import pct, pct_interval
    from gameplay.strategies import defender_space
    from payoffs.evaluation import defended_accuracy
    from payoffs.parsing import parse_floats, parse_ints
    from payoffs.preflight import check_model
    from payoffs.slots import with_defense
    from payoffs.sources import data_for, open_data

    eval_samples = _at_least(_renamed(eval_samples, "--eval-samples", samples_old, "--samples", 20),
                             "--eval-samples")
    defenders = defender_space(parse_floats(test_dropout, "--test-dropout", low=0.0, high=1.0), sap,
                               parse_ints(sap_draws, "--sap-draws", low=1) if sap_draws else [])
    dev = _device(device)
    source = _one_model(model, model_factory, weights, model_label, data, dataset, data_dir)
    test = data_for(source, open_data(data, dataset, data_dir), data_dir)
    slot = check_model(source, test, defense_at, defenders, dev)
    net, split = source.load(dev), test.load_test()
    rows = []
    with progress_bar() as bar:
        overall = bar.add_task("accuracy", total=len(defenders), unit="defenders")
        for i, d in enumerate(defenders, start=1):
            task = bar.add_task(f"  {d.id}", total=len(split.x), unit="images")
            start = time.perf_counter()
            est = defended_accuracy(with_defense(net, d.module(), slot), split.x, split.y, eval_samples, seed,
                                    progress=lambda k, n, task=task: bar.update(task, completed=k, total=n))
            bar.remove_task(task)
            bar.update(overall, completed=i)
            if not bar.console.is_terminal:
                log_line(f"[{i}/{len(defenders)}] accuracy {d.id}: {pct(est.mean)} on {len(split.x)} images "
                         f"x M={eval_samples} in {time.perf_counter() - start:.1f} s")
            rows.append((d.id, pct_interval(est.mean, est.low, est.high)))
    print_table(f"clean accuracy, {test.name} test split ({len(split.x)} images), model {source.description.label}, "
                f"defense after {slot}, M={eval_samples}", ("defender", "clean accuracy [95% interval]"), rows)


@app.command(epilog=examples(
    "defdrop reproduce --profile quick --dataset mnist-5k --out runs/quick --jobs 2",
    "defdrop reproduce --profile paper --dataset cifar10 --data-dir ~/data/cifar-10-batches-py --device cuda "
    "--batch-size 7200 --out runs/paper",
    "defdrop reproduce --profile paper --scheduler tcp://HOST:8786 --out runs/paper"))
@user_errors
def reproduce(
    profile: str = typer.Option("quick", "--profile", metavar="quick|paper",
                                help="quick (minutes) | paper (the paper's protocol: about 15 min on an H100, days "
                                     "on 2 CPU cores).", rich_help_panel=PROTOCOL_PANEL),
    dataset: str = typer.Option("mnist-5k", "--dataset", metavar="NAME",
                                help="mnist-5k | fashion-mnist | mnist | cifar10", rich_help_panel=MODEL_PANEL),
    data_dir: Optional[Path] = DataDirOpt,
    out: Path = typer.Option(Path("runs/reproduce"), "--out", metavar="DIR",
                             help="Output directory (report, tables, cache; a rerun resumes from it).",
                             rich_help_panel=OUTPUT_PANEL),
    seed: int = SeedOpt,
    jobs: int = JobsOpt,
    batch_size: int = BatchOpt,
    device: str = DeviceOpt,
    executor: Optional[str] = ExecutorOpt,
    scheduler: Optional[str] = SchedulerOpt,
    worker_threads: int = WorkerThreadsOpt,
    plotly: str = typer.Option("directory", "--plotly", metavar="inline|directory|cdn", help=_PLOTLY_HELP,
                               rich_help_panel=OUTPUT_PANEL),
) -> None:
    """The paper end to end: train, payoff sweeps (paper and adaptive attackers), artefacts, games, report."""
    from analysis.html import check_plotly_mode
    from analysis.reproduce import check_profile, run_study
    from payoffs.dask_executor import check_executor_options, open_executor
    from payoffs.data import DATASETS
    from payoffs.io import check_outputs

    prof = check_profile(profile)
    check_plotly_mode(plotly)
    for flag, value in (("--jobs", jobs), ("--batch-size", batch_size), ("--worker-threads", worker_threads)):
        _at_least(value, flag)
    check_executor_options(executor, scheduler, jobs)
    _warn_oversubscription(jobs)
    if dataset not in DATASETS:
        raise DefdropError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    check_outputs(dirs={"--out": out})
    dev = _device(device)
    with open_executor(executor, scheduler, jobs=jobs, threads=worker_threads, device=str(dev),
                       log=_executor_note) as cells_on, progress_bar() as bar:
        counts = CellCounts(bar, detailed=False)

        def train_progress(r: float):
            task = bar.add_task(f"train r={r:g}", total=None, unit="batches")
            start = time.perf_counter()

            def update(p) -> None:
                bar.update(task, completed=p.step, total=p.total, description=f"train r={r:g}: {p}")
                if not bar.console.is_terminal and p.epoch_done:
                    log_line(f"train r={r:g}: {p} ({time.perf_counter() - start:.1f} s)")
            return update

        html_path, md_path, result = run_study(prof, dataset, out, data_dir=data_dir, jobs=jobs, device=dev,
                                               batch_size=batch_size, executor=cells_on, seed=seed,
                                               log=lambda m: bar.console.print(m, highlight=False, markup=False,
                                                                               soft_wrap=True),
                                               on_done=counts.done, on_plan=counts.plan,
                                               train_progress=train_progress, plotly=plotly)
    console.print(md_path.read_text().split("## The paper's tables")[0], markup=False, highlight=False)
    console.print(f"report: {html_path.resolve()}\nmarkdown: {md_path.resolve()}", markup=False, highlight=False)


@app.command(epilog=examples("defdrop demo --out runs/demo --jobs 2"))
@user_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", metavar="DIR", help="Output directory.",
                             rich_help_panel=OUTPUT_PANEL),
    jobs: int = JobsOpt,
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


def _given(ctx: typer.Context, *names: str) -> list[str]:
    """The options among ``names`` (parameter names) that the user typed, as ``--flags``."""
    given = []
    for p in ctx.command.params:
        source = ctx.get_parameter_source(p.name) if p.name in names else None
        if source is not None and source.name != "DEFAULT":
            given.append(max(p.opts, key=len))
    return given


def _check_applies(attacks: list[str], given: AttackParams) -> None:
    """Every attack parameter given applies to at least one chosen attack, named as the user typed it."""
    from payoffs.registry import ATTACKS

    params, from_param = given.values, given.from_param

    flag_of = {name: f"--{flag}" for flag, name in ATTACK_FLAGS.items()}
    if not attacks or any(a not in ATTACKS for a in attacks):
        return  # an unknown attack: attacker_space names it and its closest matches
    for name in params:
        if not any(name in ATTACKS[a].params for a in attacks):
            takes = "; ".join(f"{a} takes " + (", ".join(flag_of.get(n, f"--param {n}=...")
                                                        for n in ATTACKS[a].params.names) or "nothing")
                              for a in attacks)
            what = f"--param {name}" if name in from_param else flag_of.get(name, f"--param {name}")
            raise DefdropError(f"{what} does not apply to --attack {','.join(attacks)} ({takes})")


def partial_path(out: Path) -> Path:
    """Where an interrupted payoff run writes the table of its finished cells: ``payoff.partial.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.partial{out.suffix or '.csv'}")


def _write_partial(refs, attackers, defenders, partial: Path, args: dict) -> None:
    """After Ctrl-C or SIGTERM: the table of the finished cells (read back from the cache; nothing runs)."""
    from payoffs.table import build_payoff_table, payoff_outputs, write_payoff_table

    total = len(refs) * len(attackers) * len(defenders)
    try:
        table = build_payoff_table(refs, attackers, defenders, only_cached=True, **args)
        if not len(table):
            err_console.print(f"no attack cell of the {total} had finished; no partial table written",
                              highlight=False, markup=False, soft_wrap=True)
            return
        write_payoff_table(table, partial, models=refs, attackers=attackers, defenders=defenders,
                           n_images=args["n_images"], eval_samples=args["eval_samples"], seed=args["seed"],
                           extra={"partial": True, "cells_total": total})
    except (DefdropError, OSError) as exc:  # the interruption is what the user hears about; say why, go on
        print_error(f"could not write the partial table: {exc}")
        return
    err_console.print(f"wrote the partial table of the {len(table)} finished of {total} attack cells: "
                      f"{' and '.join(str(p) for p in payoff_outputs(partial).values() if p.exists())}",
                      highlight=False, markup=False, soft_wrap=True)


def _remove_stale_partial(partial: Path) -> None:
    """A complete table supersedes the partial one an earlier, interrupted run of the command left."""
    from payoffs.table import payoff_outputs

    for path in payoff_outputs(partial).values():
        path.unlink(missing_ok=True)


def _check_before_work(refs, test, slot, defenders, n_images: int, data_dir, device: str) -> None:
    """The payoff table's own checks (data, model, slot, defenders, enough correctly classified images), before
    anything runs or a cluster starts: on CPU where this machine has no GPU."""
    import torch

    from payoffs.preflight import check_model
    from payoffs.sources import data_for
    from payoffs.table import check_n_images

    here = "cpu" if device.startswith("cuda") and not torch.cuda.is_available() else device
    for m in refs:
        data = data_for(m, test, data_dir)
        check_model(m, data, slot, defenders, here)
        check_n_images(m, data, n_images, here)


KIND_LABELS = {"cell": "attack cell", "accuracy": "clean-accuracy cell"}


class CellCounts:
    """The progress of a payoff sweep: attack cells and clean-accuracy cells counted apart, each against the
    number still to run (cached ones are announced, not counted); on a terminal one bar per kind and, when cells
    run one at a time here, a bar for the running one; when piped, one line per finished cell."""

    def __init__(self, bar, detailed: bool) -> None:
        self.bar, self.detailed = bar, detailed
        self.tasks: dict[str, int] = {}
        self.todo: dict[str, int] = {}
        self.finished = {"cell": 0, "accuracy": 0}
        self.running: int | None = None

    def plan(self, to_run: dict[str, int], cached: dict[str, int]) -> None:
        """Called once per table built (``reproduce`` builds one per sweep): the counts start again."""
        self.todo = dict(to_run)
        self.finished = {"cell": 0, "accuracy": 0}
        log_line(f"to run: {to_run.get('cell', 0)} attack cells, {to_run.get('accuracy', 0)} clean-accuracy cells "
                 f"(in the cache: {cached.get('cell', 0)} and {cached.get('accuracy', 0)})")
        for kind in ("accuracy", "cell"):
            if kind in self.tasks:
                self.bar.update(self.tasks[kind], total=to_run.get(kind, 0), completed=0)
            elif to_run.get(kind):
                self.tasks[kind] = self.bar.add_task(f"{KIND_LABELS[kind]}s", total=to_run[kind], unit="cells")

    def done(self, kind: str, i: int, n: int, record: dict) -> None:
        self.finished[kind] += 1
        k = self.finished[kind]
        if self.running is not None:  # that job's own bar is done
            self.bar.remove_task(self.running)
            self.running = None
        if kind in self.tasks:
            self.bar.update(self.tasks[kind], completed=k)
        if not self.bar.console.is_terminal:
            log_line(cell_line(KIND_LABELS.get(kind, kind), k, self.todo.get(kind, n), record))

    def job_progress(self, kind: str):
        """The running job's own bar: a clean-accuracy cell counts test images; an attack cell its two stages
        (the attack, then the M-sample evaluation)."""
        if not self.detailed or not self.bar.console.is_terminal:
            return None
        unit = "images" if kind == "accuracy" else "stages (attack, evaluation)"
        task = self.running = self.bar.add_task(f"  this {KIND_LABELS.get(kind, kind)}", total=None, unit=unit)
        return lambda i, n: self.bar.update(task, completed=i, total=n)


@app.command(epilog=examples(
    "defdrop payoff --model model.pt --attack cw --kappa 0,10 --eot 1,8 --test-dropout 0,0.3,0.5 --sap "
    "--n-images 100 --eval-samples 20 --jobs 2 --out payoff.csv",
    "defdrop payoff --model r0.3.pt --model r0.5.pt --attack fgsm,pgd --eps 0.1,0.3 --success-test single,expected",
    "defdrop payoff --model model.pt --strategies sweep.toml --out sweep.csv",
    "defdrop payoff --model-factory mynets:build --weights net.pt --data test.npz --defense-at relu2 --attack cw",
    "(rerun the same command to resume: finished cells come from --cache-dir)"))
@user_errors
@attack_param_options(many=True)
def payoff(
    ctx: typer.Context,
    model: Optional[list[Path]] = typer.Option(None, "--model", metavar="CHECKPOINT",
                                               help="A defdrop checkpoint; repeat for several models (e.g. training "
                                                    "rates).", rich_help_panel=MODEL_PANEL),
    model_factory: Optional[str] = FactoryOpt,
    weights: Optional[list[Path]] = WeightsListOpt,
    model_label: Optional[list[str]] = ModelLabelOpt,
    defense_at: Optional[str] = DefenseAtOpt,
    data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt,
    data_dir: Optional[Path] = DataDirOpt,
    attack: str = typer.Option("cw", "--attack", metavar="A1,A2,...", help="Attacks: fgsm, jsma, cw, pgd.",
                               rich_help_panel=ATTACKER_PANEL),
    eot: str = typer.Option("1", "--eot", metavar="K1,K2,...",
                            help="EOT: defender samples averaged per gradient step, one strategy each (1: the "
                                 "paper's attacker).", rich_help_panel=ATTACKER_PANEL),
    success_test: str = typer.Option("single", "--success-test", metavar="single,expected",
                                     help="How the attacker judges success while searching: single (the sampled "
                                          "sub-network, the paper) and/or expected (the mean of the EOT samples).",
                                     rich_help_panel=ATTACKER_PANEL),
    strategies: Optional[Path] = typer.Option(None, "--strategies", metavar="TOML",
                                              help="Both strategy spaces from a TOML file, instead of the attacker "
                                                   "and defender options (which it refuses beside it).",
                                              rich_help_panel=ATTACKER_PANEL),
    attack_params: AttackParams = NO_ATTACK_PARAMS,
    test_dropout: str = typer.Option("0,0.1,0.3,0.5,0.7,0.9", "--test-dropout", metavar="R1,R2,...",
                                     help=TestDropoutHelp, rich_help_panel=DEFENDER_PANEL),
    sap: bool = SapOpt,
    sap_draws: Optional[str] = SapDrawsOpt,
    n_images: int = typer.Option(100, "--n-images", metavar="N", help=f"{NImagesHelp}, each attacked towards every "
                                 "other class.", rich_help_panel=PROTOCOL_PANEL),
    eval_samples: int = typer.Option(20, "--eval-samples", metavar="M", help=f"{EvalSamplesHelp}: here each "
                                     "adversarial example, and each test image for clean accuracy.",
                                     rich_help_panel=PROTOCOL_PANEL),
    seed: int = SeedOpt,
    out: Path = typer.Option(Path("payoff.csv"), "--out", metavar="CSV",
                             help="Table to write, with its sidecars (.json settings, .images.npz per image).",
                             rich_help_panel=OUTPUT_PANEL),
    cache_dir: Path = typer.Option(Path(".defdrop-cache/cells"), "--cache-dir", metavar="DIR",
                                   help="Finished cells, kept as they finish: a rerun resumes from them.",
                                   rich_help_panel=OUTPUT_PANEL),
    jobs: int = JobsOpt,
    batch_size: int = BatchOpt,
    device: str = DeviceOpt,
    executor: Optional[str] = ExecutorOpt,
    scheduler: Optional[str] = SchedulerOpt,
    worker_threads: int = WorkerThreadsOpt,
) -> None:
    """Evaluate every attacker strategy against every defender strategy into a payoff table."""
    import time as _time

    from analysis.formatting import text_table
    from gameplay.strategies import attacker_space, defender_space, spaces_from_toml
    from payoffs.dask_executor import check_executor_options, open_executor
    from payoffs.io import check_outputs
    from payoffs.parsing import parse_floats, parse_ints
    from payoffs.sources import open_data, open_models
    from payoffs.table import build_payoff_table, payoff_outputs, write_payoff_table

    for flag, value in (("--jobs", jobs), ("--n-images", n_images), ("--eval-samples", eval_samples),
                        ("--batch-size", batch_size), ("--worker-threads", worker_threads)):
        _at_least(value, flag)
    check_executor_options(executor, scheduler, jobs)
    _warn_oversubscription(jobs)
    partial = partial_path(out)
    check_outputs({**{("--out" if role == "CSV" else f"its {role}"): path
                      for role, path in payoff_outputs(out).items()},
                   **{f"its partial {role}": path for role, path in payoff_outputs(partial).items()}},
                  dirs={"--cache-dir": cache_dir}, inputs={"--model": model, "--weights": weights, "--data": data,
                                                            "--strategies": strategies})
    if strategies is not None:
        beside = _given(ctx, "attack", "eot", "success_test", *(n.replace("-", "_") for n in ATTACK_FLAGS), "param",
                        "test_dropout", "sap", "sap_draws")
        if beside:
            raise DefdropError(f"--strategies gives both strategy spaces; drop {', '.join(beside)} (or put them in "
                               f"{strategies})")
        attackers, defenders = spaces_from_toml(strategies)
    else:
        _check_applies(_split(attack), attack_params)
        attackers = attacker_space(_split(attack), attack_params.values, _split(eot), _split(success_test), text=True)
        defenders = defender_space(parse_floats(test_dropout, "--test-dropout", low=0.0, high=1.0), sap,
                                   parse_ints(sap_draws, "--sap-draws", low=1) if sap_draws else [])
    dev = _cell_device(device, executor, scheduler)
    _check_model_options(model or [], model_factory, weights or [], model_label or [], data, dataset, data_dir)
    refs = open_models(model or [], model_factory, weights or [], model_label or [], dataset)
    test = open_data(data, dataset, data_dir)
    # the table's own checks, here before the plan is announced and before a cluster starts (a second, cheap run)
    _check_before_work(refs, test, defense_at, defenders, n_images, data_dir, dev)
    n_models, n_def, n_att = len(refs), len(defenders), len(attackers)
    console.print(f"{n_models} model(s) x {n_def} defender(s) x {n_att} attacker(s) = {n_models * n_def * n_att} "
                  f"attack cells, and {n_models * n_def} clean-accuracy cells (one per model and defender); "
                  f"N={n_images} images x every other class, M={eval_samples}, seed {seed}, cache {cache_dir}",
                  highlight=False, markup=False)
    start = _time.perf_counter()
    args = dict(n_images=n_images, eval_samples=eval_samples, seed=seed, cache_dir=cache_dir, device=dev,
                batch_size=batch_size, data=test, slot=defense_at, data_dir=data_dir)
    try:
        with open_executor(executor, scheduler, jobs=jobs, threads=worker_threads, device=dev,
                           log=_executor_note) as cells_on, progress_bar() as bar:
            counts = CellCounts(bar, detailed=jobs == 1 and cells_on is None)
            table = build_payoff_table(refs, attackers, defenders, jobs=jobs, executor=cells_on, on_plan=counts.plan,
                                       on_done=counts.done, progress_for=counts.job_progress, **args)
            where = cells_on.describe() if cells_on is not None else {"executor": "local", "jobs": jobs}
    except KeyboardInterrupt:
        _write_partial(refs, attackers, defenders, partial, args)
        raise
    write_payoff_table(table, out, models=refs, attackers=attackers, defenders=defenders, n_images=n_images,
                       eval_samples=eval_samples, seed=seed, seconds=_time.perf_counter() - start,
                       extra={"executor": where})
    _remove_stale_partial(partial)
    show = table[["attacker", "defender", "asr", "asr_low", "asr_high", "asr_majority", "l2_mean",
                  "clean_accuracy", "forwards", "backwards"]]
    console.print(text_table(show), highlight=False, markup=False, soft_wrap=True)
    console.print(f"wrote {' and '.join(str(p) for p in payoff_outputs(out).values())}", highlight=False,
                  markup=False)


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


@app.command(epilog=examples(
    "defdrop gradvar --model model.pt --test-dropout 0.1,0.3,0.5,0.7,0.9 --sap --grad-samples 50 --dims 5 "
    "--n-images 20 --out gradvar.html --csv stats.csv",
    "defdrop gradvar --model model.pt --payoffs payoff.csv --out gradvar.html"))
@user_errors
def gradvar(
    model: Optional[Path] = CheckpointOpt,
    model_factory: Optional[str] = FactoryOpt,
    weights: Optional[Path] = WeightsOpt,
    model_label: Optional[str] = ModelLabelOpt,
    defense_at: Optional[str] = DefenseAtOpt,
    data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt,
    data_dir: Optional[Path] = DataDirOpt,
    test_dropout: str = typer.Option("0.1,0.3,0.5,0.7,0.9", "--test-dropout", metavar="R1,R2,...",
                                     help=TestDropoutHelp, rich_help_panel=DEFENDER_PANEL),
    sap: bool = typer.Option(False, "--sap", help="Add SAP (draws = number of units) as a defender strategy.",
                             rich_help_panel=DEFENDER_PANEL),
    kappa: float = typer.Option(0.0, "--kappa", metavar="VALUE", help=_attack_param_help("kappa", False)
                                + " Here the confidence in the sampled C&W objective f.",
                                rich_help_panel=ATTACK_PARAMS_PANEL),
    grad_samples: int = typer.Option(50, "--grad-samples", metavar="S",
                                     help="S: sampled gradients per image and defender (>= 2).",
                                     rich_help_panel=PROTOCOL_PANEL),
    samples_old: Optional[int] = typer.Option(None, "--samples", hidden=True),
    n_images: int = typer.Option(20, "--n-images", metavar="N", help=f"{NImagesHelp}; target class (label + 1) mod "
                                 "classes.", rich_help_panel=PROTOCOL_PANEL),
    images_old: Optional[int] = typer.Option(None, "--images", hidden=True),
    dims: int = typer.Option(5, "--dims", metavar="D", help="Dimensions D drawn in Figure 4 and summarized on their "
                                                            "own.", rich_help_panel=PROTOCOL_PANEL),
    dim_selection: str = typer.Option("magnitude", "--dim-selection", metavar="magnitude|random",
                                      help="magnitude (largest undefended |grad f| per image) or random (--seed).",
                                      rich_help_panel=PROTOCOL_PANEL),
    seed: int = SeedOpt,
    out: Path = typer.Option(Path("gradvar.html"), "--out", metavar="HTML", help="HTML page to write.",
                             rich_help_panel=OUTPUT_PANEL),
    csv: Optional[Path] = typer.Option(None, "--csv", metavar="CSV", help="Also save the statistics table as CSV.",
                                       rich_help_panel=OUTPUT_PANEL),
    payoffs: Optional[Path] = typer.Option(None, "--payoffs", metavar="CSV",
                                           help="A payoff CSV (defdrop payoff): adds the variance-ASR relation and "
                                                "Figures 3/5.", rich_help_panel=MODEL_PANEL),
    device: str = DeviceOpt,
    plotly: str = PlotlyOpt,
    png: bool = PngOpt,
) -> None:
    """Gradient variance under each defender (paper section 3.3, Figure 4): write the page, print the statistics."""
    from analysis.formatting import text_table
    from analysis.gradvar import (
        build_defenders,
        paper_checks,
        read_payoff_frame,
        read_payoff_images,
        run_gradvar,
        select_inputs,
        summary_table,
    )
    from analysis.gradvar_page import write_gradvar_html
    from analysis.html import check_plotly_mode
    from payoffs.io import atomic_write_text, check_outputs
    from payoffs.parsing import parse_floats
    from payoffs.preflight import check_model
    from payoffs.registry import ATTACKS
    from payoffs.sources import data_for, open_data

    samples = _at_least(_renamed(grad_samples, "--grad-samples", samples_old, "--samples", 50), "--grad-samples", 2,
                        " (a variance needs two gradients)")
    images = _at_least(_renamed(n_images, "--n-images", images_old, "--images", 20), "--n-images")
    _at_least(dims, "--dims")
    if dim_selection not in ("magnitude", "random"):
        raise DefdropError(f"--dim-selection {dim_selection!r} must be magnitude or random")
    kappa = ATTACKS["cw"].params["kappa"].check(kappa, "--kappa: cw")
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
    with progress_bar() as bar:
        task = bar.add_task("gradvar: sampled gradients", total=None, unit="gradients")
        start = time.perf_counter()

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total)
            if not bar.console.is_terminal:
                log_line(f"gradvar: {label} done, {done:,}/{total:,} gradients in {time.perf_counter() - start:.1f} s")

        result = run_gradvar(net, x, target, defenders, samples=samples, dims=dims, dim_selection=dim_selection,
                             seed=seed, kappa=kappa, true_labels=y, slot=slot, model_label=source.description.label,
                             progress=progress)
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


@app.command(epilog=examples(
    "defdrop audit --model model.pt --test-dropout 0.5 --sap --attack cw --kappa 5 --eot 8 --success-test expected "
    "--n-images 40 --eval-samples 20 --eot-max 32 --out audit.html",
    "defdrop audit --model model.pt --attack pgd --eps 0.3 --checks 3,4,7 --json"))
@user_errors
@attack_param_options(many=False)
def audit(
    model: Optional[Path] = CheckpointOpt,
    model_factory: Optional[str] = FactoryOpt,
    weights: Optional[Path] = WeightsOpt,
    model_label: Optional[str] = ModelLabelOpt,
    defense_at: Optional[str] = DefenseAtOpt,
    data: Optional[Path] = DataOpt,
    dataset: Optional[str] = DatasetOpt,
    data_dir: Optional[Path] = DataDirOpt,
    attack: str = typer.Option("cw", "--attack", metavar="ATTACK", help="The attack: fgsm, jsma, cw or pgd.",
                               rich_help_panel=ATTACKER_PANEL),
    eot: str = typer.Option("1", "--eot", metavar="K", help="EOT: defender samples averaged per gradient step.",
                            rich_help_panel=ATTACKER_PANEL),
    success_test: str = typer.Option("single", "--success-test", metavar="single|expected",
                                     help="How the attacker judges success while searching: single (the sampled "
                                          "sub-network, the paper) or expected (the mean of the EOT samples).",
                                     rich_help_panel=ATTACKER_PANEL),
    attack_params: AttackParams = NO_ATTACK_PARAMS,
    test_dropout: str = typer.Option("0.5", "--test-dropout", metavar="R1,R2,...",
                                     help="Test dropout rates r' to audit, one defender each.",
                                     rich_help_panel=DEFENDER_PANEL),
    sap: bool = typer.Option(False, "--sap", help="Also audit SAP (one draw per unit).",
                             rich_help_panel=DEFENDER_PANEL),
    sap_draws: Optional[str] = typer.Option(None, "--sap-draws", metavar="N1,N2,...",
                                            help="Also audit SAP with these numbers of draws.",
                                            rich_help_panel=DEFENDER_PANEL),
    n_images: int = typer.Option(40, "--n-images", metavar="N", help=f"{NImagesHelp}, attacked.",
                                 rich_help_panel=PROTOCOL_PANEL),
    targets: int = typer.Option(1, "--targets", metavar="T", help="Targets per image: (label + j) mod K, "
                                                                  "j = 1..T.", rich_help_panel=PROTOCOL_PANEL),
    eval_samples: int = typer.Option(20, "--eval-samples", metavar="M", help=f"{EvalSamplesHelp}: here each "
                                     "adversarial example.", rich_help_panel=PROTOCOL_PANEL),
    eot_max: int = typer.Option(32, "--eot-max", metavar="K", help="Largest k of the EOT-saturation curve (k = 1, 2, "
                                                                   "4, ...).", rich_help_panel=PROTOCOL_PANEL),
    probe_images: int = typer.Option(100, "--probe-images", metavar="N", help="Images of the forward-only checks "
                                                                             "(1 and 7).",
                                     rich_help_panel=PROTOCOL_PANEL),
    setting: Optional[list[str]] = typer.Option(None, "--setting", metavar="NAME=VALUE",
                                                help="Any audit setting (repeatable), e.g. unbounded_c=1e5.",
                                                rich_help_panel=PROTOCOL_PANEL),
    checks: Optional[str] = typer.Option(None, "--checks", metavar="C1,C2,...",
                                         help="Which checks, e.g. 3,4,7 (default: 1-7; the cost of each, check 8, "
                                              "is always recorded).", rich_help_panel=PROTOCOL_PANEL),
    seed: int = SeedOpt,
    out: Path = typer.Option(Path("audit.html"), "--out", metavar="HTML",
                             help="Page to write; its JSON form goes beside it (audit.json).",
                             rich_help_panel=OUTPUT_PANEL),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON instead of the summary.",
                                 rich_help_panel=OUTPUT_PANEL),
    batch_size: int = BatchOpt,
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
    _check_applies([attack.strip()], attack_params)
    attackers = attacker_space([attack.strip()], attack_params.values, _split(eot), _split(success_test), text=True)
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

        def log(message: str) -> None:
            bar.update(task, description=message)
            if not bar.console.is_terminal:
                log_line(f"audit: {message}")

        evidence, verdict = run_audit(source, defenders, attackers[0], settings=settings, data=test, slot=slot,
                                      device=dev, log=log)
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
