"""How much memory a command is about to use, estimated from its sizes before anything is
allocated, and whether this machine can give it.

A size on the command line (``--hidden``, ``--sizes``) or in a checkpoint's metadata can ask
for more memory than the machine has. Left alone, NumPy fails deep inside the model's
construction (or after minutes of training), or the system kills the process. The estimates
here need only the sizes, so a run that cannot fit is refused at once, with the numbers.

>>> format_bytes(25_600_000_000)
'23.8 GiB'
>>> refusal(1024, "a tiny table") is None  # fits on any machine
True
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import TrainConfig
from .models import CNN_WIDTH, GRU_HIDDEN

__all__ = [
    "MEMORY_SHARE",
    "BYTES_PER_NUMBER",
    "machine_memory",
    "format_bytes",
    "refusal",
    "training_bytes",
    "evaluation_bytes",
]

MEMORY_SHARE = 0.75  # the part of this machine's memory one command may plan to use
BYTES_PER_NUMBER = 8  # float64 throughout

# Numbers held per parameter while training, measured on MLPs (peak resident memory): the
# parameter, its gradient, the optimizer's buffers (Adam's two moments, SGD's momentum), the
# update's temporaries and the bytes of the two checkpoints written at the end of each epoch.
_NUMBERS_PER_PARAMETER = {"adam": 13, "adamw": 13, "sgd": 9}
# Evaluating a checkpoint: the file's bytes, the arrays read from them, the model.
_NUMBERS_PER_PARAMETER_EVALUATING = 4

_CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")  # a container's limit (cgroup v2)


def machine_memory() -> int | None:
    """The bytes of memory this process can have: the physical memory (``os.sysconf``), or a
    container's limit (cgroup v2 ``memory.max``) where that is smaller; None where neither
    can be read (then nothing is refused for its size)."""
    sizes = []
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or no such name
        physical = -1
    if physical > 0:
        sizes.append(physical)
    try:
        limit = _CGROUP_LIMIT.read_text().strip()
    except OSError:
        limit = "max"
    if limit.isdigit():  # "max" when the container sets no limit
        sizes.append(int(limit))
    return min(sizes) if sizes else None


def format_bytes(n_bytes: int | float) -> str:
    """``n_bytes`` in GiB (MiB below one GiB), to one decimal; beyond a million GiB in
    scientific notation.

    >>> format_bytes(3 * 2**20), format_bytes(2**40), format_bytes(2**80)
    ('3.0 MiB', '1024.0 GiB', '1.1e+15 GiB')
    """
    gib = n_bytes / 2**30
    if gib >= 1e6:
        return f"{gib:.1e} GiB"
    if gib >= 1:
        return f"{gib:.1f} GiB"
    return f"{n_bytes / 2**20:.1f} MiB"


def refusal(needed: int, contents: str) -> str | None:
    """Why ``needed`` bytes (made of ``contents``, in words) are too many for this machine,
    as the end of a sentence whose subject is the caller's ("the model would need ...");
    None when they fit in :data:`MEMORY_SHARE` of :func:`machine_memory`."""
    total = machine_memory()
    if total is None:
        return None
    allowed = int(total * MEMORY_SHARE)
    if needed <= allowed:
        return None
    return (
        f"would need about {format_bytes(needed)} ({contents}); this machine has "
        f"{format_bytes(total)}, and chainrule plans to use at most {MEMORY_SHARE:.0%} of it "
        f"({format_bytes(allowed)})"
    )


def _model_numbers(config: TrainConfig, n_in: int, n_out: int) -> tuple[int, int, int]:
    """(parameters, numbers one training row keeps for the backward pass, values and
    gradients together, numbers one evaluated row needs at once) of the configured model."""
    if config.model == "cnn":
        width, length = CNN_WIDTH, n_in
        half = (length - 1) // 2 + 1
        quarter = (half - 1) // 2 + 1
        convolutions = (width * 5 + width) + 2 * (width * width * 3 + width)
        parameters = convolutions + 3 * 2 * width + (width * quarter + 1) * n_out
        # each of the three blocks keeps a convolution's, a batch norm's and a ReLU's output
        per_row = 2 * 3 * width * (length + half + quarter)
        return parameters, per_row, 3 * width * length
    if config.model == "gru":
        hidden, steps = GRU_HIDDEN, n_in
        parameters = 3 * (hidden + hidden * hidden + 2 * hidden) + (hidden + 1) * n_out
        # about a dozen vectors of the hidden size at every step (gates, products, state)
        return parameters, 2 * 12 * hidden * steps, 12 * hidden + steps
    widths = [n_in, *config.hidden, n_out]
    parameters = sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:]))
    # a linear layer's output and its activation's, for every hidden layer, and the output
    per_row = 2 * (2 * sum(config.hidden) + n_out)
    return parameters, per_row, 3 * max(widths)


def training_bytes(
    config: TrainConfig, n_in: int, n_out: int, batch_rows: int, evaluated_rows: int
) -> int:
    """About the most memory training the configured model takes: its parameters with their
    gradients, optimizer state and checkpoint copies, and the larger of a mini-batch of
    ``batch_rows`` recorded for backprop and ``evaluated_rows`` evaluated at once.

    >>> format_bytes(training_bytes(TrainConfig(hidden=(100_000_000,)), 2, 2, 32, 200))
    '495.5 GiB'
    """
    parameters, per_training_row, per_evaluated_row = _model_numbers(config, n_in, n_out)
    numbers = parameters * _NUMBERS_PER_PARAMETER.get(config.optimizer, 13) + max(
        batch_rows * per_training_row, evaluated_rows * per_evaluated_row
    )
    return numbers * BYTES_PER_NUMBER


def evaluation_bytes(config: TrainConfig, n_in: int, n_out: int, evaluated_rows: int) -> int:
    """About the most memory reading a checkpoint of the configured model and evaluating it
    on ``evaluated_rows`` rows at once takes."""
    parameters, _, per_evaluated_row = _model_numbers(config, n_in, n_out)
    numbers = parameters * _NUMBERS_PER_PARAMETER_EVALUATING + evaluated_rows * per_evaluated_row
    return numbers * BYTES_PER_NUMBER
