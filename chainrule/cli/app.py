"""The ``chainrule`` command (also ``python -m chainrule``).

- ``chainrule train``: train an MLP with backprop, with a live progress bar, and write the
  checkpoint, a metrics CSV and a PNG of the curves to the output folder.
- ``chainrule evaluate CHECKPOINT``: reload a checkpoint and report its test accuracy.
- ``chainrule ops``: the op table — formulas, support (VJP, JVP, second order), kinks.

Bad input gets one line on stderr and a non-zero exit, never a traceback: 2 for a malformed
command line (as argparse), 1 for everything else, a file that cannot be read or written (a
full disk, no permission) and sizes too large for this machine's memory included.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ops import table
from .arguments import UsageError, parser

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["main"]

# What ``chainrule train`` writes into its --out folder (curves.png where matplotlib is).
RUN_FILES = ("model.safetensors", "training.safetensors", "metrics.csv", "curves.png")


class _Progress:
    """A tqdm bar on a terminal (steps, loss, accuracy, steps/s), else one line per epoch."""

    def __init__(self, mode: str, total_steps: int, epochs: int) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.bar: Any = None
        if mode == "bar":
            try:
                from tqdm import tqdm
            except ImportError:
                mode = "lines"
            else:
                # leave=True: the bar's final line (steps, loss, accuracy) stays on screen
                self.bar = tqdm(total=total_steps, unit="step", dynamic_ncols=True, leave=True)
        self.mode = mode
        self.epochs = epochs

    def step(self, step: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if step % 10 == 0:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def epoch(self, m: Any) -> None:
        line = (
            f"epoch {m.epoch:>3}/{self.epochs}  loss {m.train_loss:.4f}  "
            f"train acc {m.train_accuracy:.4f}  test acc {m.test_accuracy:.4f}  "
            f"{m.steps_per_second:,.0f} steps/s"
        )
        if self.bar is not None:
            self.bar.set_description(f"epoch {m.epoch}/{self.epochs}")
            self.bar.set_postfix(
                loss=f"{m.train_loss:.4f}", acc=f"{m.test_accuracy:.4f}", refresh=True
            )
        elif self.mode == "lines":
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _write_metrics(history: Sequence[Any], path: Path) -> None:
    """The history as CSV, one row per epoch, written whole or not at all (the old file
    stays until the new one is complete)."""
    from ..io import write_atomic
    from .train import EpochMetrics

    names = [f.name for f in fields(EpochMetrics)]
    text = StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=names)
    writer.writeheader()
    for m in history:
        writer.writerow(asdict(m))
    write_atomic(path, text.getvalue().encode("utf-8"))


def _sizes_given(args: argparse.Namespace, config: TrainConfig, state: Path) -> tuple[str, str]:
    """(where the model's sizes came from, what to change) for a run too large for memory."""
    if args.resume:
        return f"--resume ({state}: hidden {list(config.hidden)})", "start a smaller run"
    if config.model == "mlp":
        return f"--hidden {','.join(map(str, config.hidden))}", "give smaller --hidden sizes"
    return f"--model {config.model} on {config.data}", "use fewer rows or shorter sequences"


def _backend_flags(args: argparse.Namespace) -> None:
    """A usage error for the Dask flags without ``--backend dask``, or for both ways to
    find workers at once."""
    given = [flag for flag in ("workers", "scheduler", "chunk_rows") if getattr(args, flag)]
    if given and args.backend != "dask":
        flags = " and ".join(f"--{flag.replace('_', '-')}" for flag in given)
        raise UsageError(
            f"chainrule train: {flags} {'is' if len(given) == 1 else 'are'} for --backend "
            f"dask, not --backend {args.backend} (see chainrule train --help)"
        )
    if args.workers and args.scheduler:
        raise UsageError(
            "chainrule train: --workers starts a cluster, --scheduler joins one: give one "
            "(see chainrule train --help)"
        )


def _train(args: argparse.Namespace) -> int:
    _backend_flags(args)
    from .backend import open_backend, require
    from .outputs import check_output_folder
    from .train import ConfigError, TrainConfig, memory_refusal, prepare_data, resumed_config

    require(args.backend, cluster=bool(args.workers or args.scheduler))

    config = TrainConfig(
        data=args.data,
        target=args.target,
        model=args.model,
        hidden=tuple(args.hidden),
        activation=args.activation,
        optimizer=args.optimizer,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        weight_decay=args.weight_decay,
    ).validate()
    given = getattr(args, "out", None)
    out = Path(given) if given else Path("runs") / Path(config.data).stem
    state = out / "training.safetensors"
    if args.resume:
        config = resumed_config(state)
    # Everything is checked before anything is written or built: the data, the model's
    # memory, then the output folder (created, and tried with a file, here).
    train_set, test_set = prepare_data(config)
    full_batch = args.backend == "dask" and not getattr(args, "batch_size_given", False)
    if full_batch and not args.resume:
        config = replace(config, batch_size=len(train_set))
    reason = memory_refusal(config, train_set, test_set)
    if reason is not None:
        given_as, advice = _sizes_given(args, config, state)
        raise ConfigError(f"{given_as}: the run {reason}; {advice}")
    check_output_folder(out, RUN_FILES, "--out")
    with open_backend(args.backend, args.workers, args.scheduler) as backend:
        backend.full_batch = full_batch
        backend.chunk_rows = args.chunk_rows or -(-len(train_set) // backend.workers)
        return _run(args, config, out, train_set, backend)


def _run(
    args: argparse.Namespace, config: TrainConfig, out: Path, train_set: Any, backend: Any
) -> int:
    """Train with the checked configuration and write the run's files; the exit status."""
    from ..viz.history import have_matplotlib, plot_history
    from .train import save_checkpoint, train

    state = out / "training.safetensors"
    checkpoint = out / "model.safetensors"
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    task = "a regressor" if train_set.n_classes is None else f"{train_set.n_classes} classes"
    what = (
        f"an MLP {list(config.hidden)} ({config.activation}"
        if config.model == "mlp"
        else f"a {config.model.upper()} ({len(train_set.X[0])} steps"
    )
    print(
        f"training {what}, {config.optimizer}, lr {config.lr:g}) on {config.data} "
        f"({len(train_set)} samples, {task}) for {config.epochs} epochs, seed {config.seed}"
        f"{backend.describe(len(train_set), config.batch_size)}",
        flush=True,
    )
    progress = _Progress(args.progress, steps_per_epoch * config.epochs, config.epochs)
    try:
        result = train(
            config,
            on_step=progress.step,
            on_epoch=progress.epoch,
            checkpoint=checkpoint,
            state=state,
            resume=args.resume,
            backend=backend,
        )
    finally:
        progress.close()
    _write_metrics(result.history, out / "metrics.csv")
    if result.interrupted:
        if result.history:
            print(
                f"interrupted: stopped cleanly after epoch {result.history[-1].epoch}; "
                f"{checkpoint} holds that epoch's model",
                file=sys.stderr,
            )
        else:
            print(
                "interrupted before the first epoch ended: no checkpoint written", file=sys.stderr
            )
        return 130
    save_checkpoint(result.model, config, checkpoint, result.history[-1])
    plot = out / "curves.png"
    if have_matplotlib():
        plot_history(
            result.history,
            plot,
            title=f"chainrule {config.model.upper()} on {Path(config.data).stem}",
        )
    else:
        plot = Path("(not drawn: pip install 'chainrule[train]' for matplotlib)")
    score = "R^2" if train_set.n_classes is None else "accuracy"
    print(
        f"train {score} {result.train_accuracy:.4f}  test {score} {result.test_accuracy:.4f}  "
        f"time {result.seconds:.1f} s"
    )
    print(f"checkpoint  {checkpoint}")
    print(f"metrics     {out / 'metrics.csv'}")
    print(f"curves      {plot}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .commands import CommandError
    from .train import evaluate_checkpoint

    path = Path(args.checkpoint)
    if path.is_dir():
        inside = path / "model.safetensors"
        hint = f" (the run's model is {inside})" if inside.is_file() else ""
        raise CommandError(f"{path} is a folder, not a checkpoint file{hint}")
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if not path.is_file():
        raise CommandError(f"{path} is not a regular file (a device or a pipe?); give a checkpoint")
    score, config = evaluate_checkpoint(path)
    from .train import prepare_data

    regression = prepare_data(config)[1].n_classes is None
    model = (
        f"MLP {list(config.hidden)} {config.activation}"
        if config.model == "mlp"
        else config.model.upper()
    )
    print(
        f"test {'R^2' if regression else 'accuracy'} {score:.4f}  ({config.data}, {model}, "
        f"seed {config.seed})"
    )
    return 0


# -- ops -------------------------------------------------------------------------------------
def _ops(family: str | None, as_json: bool) -> int:
    rows = table()
    if family is not None:
        families = sorted({r["family"] for r in rows})
        if family not in families:
            raise UsageError(
                f"chainrule ops: unknown family {family!r}; choose one of {', '.join(families)}"
            )
        rows = type(rows)(r for r in rows if r["family"] == family)
    if as_json:
        print(json.dumps([dict(r, numpy=list(r["numpy"])) for r in rows], indent=2))
    else:
        print(rows)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from ..io import CheckpointError
    from ..teach.expression import ExplainError
    from .commands import CommandError
    from .outputs import describe_os_error
    from .train import ConfigError

    start = time.perf_counter()
    args: argparse.Namespace | None = None
    try:
        args = parser().parse_args(argv)
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "ops":
            return _ops(args.family, args.json)
        if getattr(args, "run", None) is not None:
            return int(args.run(args))
        parser().print_help()
        return 0
    except UsageError as err:
        print(str(err), file=sys.stderr)
        return 2
    except (ConfigError, CheckpointError, CommandError, ExplainError) as err:
        print(f"{_command(args)}: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: not an error of ours
        _silence_stdout()
        return 0
    except OSError as err:  # a file that cannot be read or written, a full disk
        print(f"{_command(args)}: {describe_os_error(err)}", file=sys.stderr)
        _flush_or_silence_stdout()
        return 1
    except MemoryError as err:  # sizes the estimates let through, or other programs' memory
        detail = f" ({err})" if str(err) else ""
        print(
            f"{_command(args)}: out of memory{detail}; use smaller sizes, or free memory",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"chainrule: interrupted after {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return 130


def _command(args: argparse.Namespace | None) -> str:
    """'chainrule COMMAND' once the command line is parsed, else 'chainrule'."""
    return f"chainrule {args.command}" if args is not None and args.command else "chainrule"


def _silence_stdout() -> None:
    """Point stdout at os.devnull, so that Python's own flush at exit, of output that can no
    longer be written, does not print an error of its own."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _flush_or_silence_stdout() -> None:
    """Flush stdout; where it cannot be written (a full disk under ``> file``), silence it,
    so that Python's own flush at exit does not fail again with a message of its own."""
    try:
        sys.stdout.flush()
    except OSError:
        _silence_stdout()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
