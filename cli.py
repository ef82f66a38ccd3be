"""defdrop: the command-line app. Thin: parse, call the library, print."""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from payoffs.errors import DefdropError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Decide, with measured evidence, how a classifier should defend itself with test-time dropout.")
console = Console()
err_console = Console(stderr=True)


def user_errors(fn: Callable) -> Callable:
    """Turn DefdropError into one line on stderr and exit code 2; Ctrl-C into exit code 130."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DefdropError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; everything finished so far is kept", highlight=False)
            raise typer.Exit(130) from None
    return wrapper


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err_console, transient=False)


def _device(name: str):
    from payoffs.device import resolve_device
    return resolve_device(name)


DeviceOpt = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda.")
DataDirOpt = typer.Option(None, "--data-dir", help="Directory with the dataset's files (mnist, cifar10; "
                                                    "fashion-mnist defaults to /usr/share/datasets/fashion-mnist).")


@app.command()
@user_errors
def train(
    dataset: str = typer.Option("mnist-5k", help="mnist-5k | fashion-mnist | mnist | cifar10"),
    train_dropout: float = typer.Option(0.3, "--train-dropout", help="Training dropout rate r in [0, 1)."),
    epochs: int = typer.Option(20, help="Training epochs (>= 1)."),
    batch_size: int = typer.Option(128, "--batch-size"),
    learning_rate: float = typer.Option(1e-3, "--learning-rate", help="Adam learning rate."),
    dropout_layer: str = typer.Option("fc1", "--dropout-layer", help="fc1 (the paper) or fc2."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("model.pt"), help="Checkpoint to write."),
    data_dir: Optional[Path] = DataDirOpt,
    device: str = DeviceOpt,
) -> None:
    """Train the paper's Table 1 CNN with dropout rate r and write a checkpoint."""
    from payoffs.checkpoint import save_checkpoint
    from payoffs.data import load_dataset
    from payoffs.training import TrainConfig, train as train_model

    config = TrainConfig(train_dropout=train_dropout, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, seed=seed, dropout_layer=dropout_layer)
    config.validate()
    dev = _device(device)
    data = load_dataset(dataset, data_dir)
    with progress_bar() as bar:
        task = bar.add_task(f"train {dataset} r={train_dropout:g}", total=None)
        result = train_model(data, config, dev, progress=lambda i, n: bar.update(task, completed=i, total=n))
    save_checkpoint(out, result.model, {
        "dataset": dataset, "train_dropout": train_dropout, "epochs": epochs, "seed": seed,
        "batch_size": batch_size, "learning_rate": learning_rate, "test_accuracy": result.test_accuracy,
        "seconds_per_epoch": result.seconds_per_epoch, "dropout_layer": dropout_layer})
    console.print(f"test accuracy {result.test_accuracy:.4f} on {len(data.x_test)} {dataset} test images "
                  f"({result.seconds_per_epoch:.1f} s/epoch on {dev}); wrote {out}")


@app.command()
@user_errors
def accuracy(
    model: Path = typer.Option(..., "--model", help="A defdrop checkpoint."),
    test_dropout: str = typer.Option("0,0.1,0.3,0.5,0.7,0.9", "--test-dropout", help="Test dropout rates r'."),
    sap: bool = typer.Option(False, "--sap", help="Also evaluate SAP."),
    samples: int = typer.Option(20, "--samples", help="Defender samples M per test image."),
    seed: int = typer.Option(0),
    data_dir: Optional[Path] = DataDirOpt,
    device: str = DeviceOpt,
) -> None:
    """Clean test accuracy under each defense, averaged over M defender samples, with 95% intervals."""
    from payoffs.checkpoint import load_checkpoint
    from payoffs.parsing import parse_floats

    rates = parse_floats(test_dropout, "--test-dropout", low=0.0, high=1.0)
    if samples < 1:
        raise DefdropError(f"--samples {samples} must be at least 1")
    net, meta = load_checkpoint(model, _device(device))
    _print_accuracy_table(net, meta, rates, sap, samples, seed, data_dir)


def _print_accuracy_table(net, meta: dict, rates: list[float], sap: bool, samples: int, seed: int,
                          data_dir: Optional[Path]) -> None:
    from payoffs.data import load_dataset
    from payoffs.defenses import SAP, TestTimeDropout
    from payoffs.evaluation import defended_accuracy
    from payoffs.models import with_defense

    data = load_dataset(meta.get("dataset", "mnist-5k"), data_dir)
    defenders = [(("none" if r == 0 else f"dropout[r'={r:g}]"), TestTimeDropout(r)) for r in rates]
    if sap:
        defenders.append(("sap[frac=1]", SAP()))
    table = Table(title=f"clean accuracy, {data.name} test split ({len(data.x_test)} images), "
                        f"r={meta.get('train_dropout')}, M={samples}")
    for col in ("defender", "accuracy", "95% interval"):
        table.add_column(col)
    for label, defense in defenders:
        est = defended_accuracy(with_defense(net, defense), data.x_test, data.y_test, samples, seed)
        table.add_row(escape(label), f"{est.mean:.4f}", f"[{est.low:.4f}, {est.high:.4f}]")
    console.print(table)


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Output directory."),
    epochs: int = typer.Option(20),
    device: str = DeviceOpt,
) -> None:
    """The main job on embedded data: train on mnist-5k (r=0.3), then accuracy with and without test dropout."""
    from payoffs.checkpoint import load_checkpoint, save_checkpoint
    from payoffs.data import load_dataset
    from payoffs.training import TrainConfig, train as train_model

    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "mnist-5k-r0.3.pt"
    dev = _device(device)
    if ckpt.is_file():
        net, meta = load_checkpoint(ckpt, dev)
        console.print(f"reusing {ckpt} (test accuracy {meta['test_accuracy']:.4f})")
    else:
        data = load_dataset("mnist-5k")
        with progress_bar() as bar:
            task = bar.add_task("train mnist-5k r=0.3", total=None)
            result = train_model(data, TrainConfig(train_dropout=0.3, epochs=epochs), dev,
                                 progress=lambda i, n: bar.update(task, completed=i, total=n))
        meta = {"dataset": "mnist-5k", "train_dropout": 0.3, "epochs": epochs, "seed": 0,
                "test_accuracy": result.test_accuracy}
        save_checkpoint(ckpt, result.model, meta)
        net = result.model
    _print_accuracy_table(net, meta, [0.0, 0.1, 0.3, 0.5, 0.7, 0.9], True, 20, 0, None)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
