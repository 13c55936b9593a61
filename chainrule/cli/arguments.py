"""The ``chainrule`` command line: its subcommands, their flags and their checks (argparse),
with usage errors raised as :class:`UsageError` (one line, exit status 2) rather than
printed and exited by argparse.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from .. import __version__

__all__ = ["UsageError", "Parser", "parser"]


class UsageError(Exception):
    """A bad command line: one line for the user, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"--hidden must be comma-separated positive integers like 64,64, got {text!r}"
        )
    return sizes


def _positive(flag: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be an integer >= 1, got {text!r}")
        return value

    return parse


class _Given(argparse.Action):
    """Store the value and note that it was given (``args.<dest>_given``): a default that
    depends on other flags (Dask's batch: the whole training set) needs to know."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def parser() -> Parser:
    from .backend import BACKENDS
    from .config import ACTIVATIONS, DATASETS, OPTIMIZERS, TrainConfig

    defaults = TrainConfig()
    top = Parser(
        prog="chainrule",
        description="Backpropagation over computation graphs, NumPy-native.",
    )
    top.add_argument("--version", action="version", version=f"chainrule {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    train = sub.add_parser(
        "train",
        help="train a classifier or regressor (MLP, CNN, GRU) with backprop",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument(
        "--data",
        default=defaults.data,
        help=f"one of {', '.join(DATASETS)}, or your own file (.csv, .npz, .npy)",
    )
    train.add_argument(
        "--target",
        default=None,
        help="the target column of a data file (header name or index; default: the last); "
        "labels or few integers make a classifier, other numbers a regressor",
    )
    train.add_argument(
        "--model",
        default=defaults.model,
        help="mlp, or cnn / gru reading each row as a sequence (as MNIST-1D)",
    )
    train.add_argument("--hidden", type=_hidden, default=defaults.hidden, help="e.g. 64,64")
    train.add_argument(
        "--activation", default=defaults.activation, help=f"one of {', '.join(ACTIVATIONS)}"
    )
    train.add_argument(
        "--optimizer", default=defaults.optimizer, help=f"one of {', '.join(OPTIMIZERS)}"
    )
    train.add_argument("--lr", type=float, default=defaults.lr, help="learning rate")
    train.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the data")
    train.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        action=_Given,
        help="mini-batch size (with --backend dask: the whole training set unless given)",
    )
    train.add_argument("--seed", type=int, default=defaults.seed, help="seeds init, split, order")
    train.add_argument(
        "--weight-decay", type=float, default=defaults.weight_decay, help="L2 penalty"
    )
    train.add_argument(
        "--out", default=argparse.SUPPRESS, help="output folder (runs/<data name> if not given)"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last completed epoch (its own settings)",
    )
    train.add_argument(
        "--backend",
        choices=BACKENDS,
        default="numpy",
        help="where the steps run: NumPy here, Dask over chunks of the rows, CuPy on a GPU",
    )
    train.add_argument(
        "--workers",
        type=_positive("--workers"),
        metavar="N",
        help="--backend dask: start a local cluster of N worker processes (else Dask's threads)",
    )
    train.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="--backend dask: use the running Dask cluster at ADDRESS (tcp://HOST:PORT)",
    )
    train.add_argument(
        "--chunk-rows",
        type=_positive("--chunk-rows"),
        metavar="N",
        help="--backend dask: training rows per chunk (default: one chunk per worker)",
    )
    train.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "none"),
        default="auto",
        help="a live bar on a terminal, plain lines otherwise (auto)",
    )

    evaluate = sub.add_parser("evaluate", help="test accuracy of a saved checkpoint")
    evaluate.add_argument("checkpoint", help="a model.safetensors written by chainrule train")

    ops = sub.add_parser("ops", help="list the op table: formulas, support, kink conventions")
    ops.add_argument("--family", help="only ops of this family (elementwise, nn, linalg, ...)")
    ops.add_argument("--json", action="store_true", help="print the table as JSON")

    from .commands import modules

    for module in modules():
        module.register(sub)
    return top


# -- train -----------------------------------------------------------------------------------
