"""Pictures: training curves now; graph pictures and activation plots build on this module.

matplotlib is optional (``pip install chainrule[train]``); figures are drawn with its
object-oriented API and the Agg canvas, so nothing global (the pyplot backend) is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

from ..io import write_atomic

__all__ = ["plot_history", "have_matplotlib"]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_history(history: Sequence[Any], path: str | Path, title: str = "") -> Path:
    """Save a PNG of loss (left) and accuracy (right) per epoch, train and test (written
    atomically, as checkpoints are).

    ``history`` holds records with ``epoch``, ``train_loss``, ``test_loss``,
    ``train_accuracy`` and ``test_accuracy`` (``chainrule.cli.train.EpochMetrics``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plot_history needs matplotlib: pip install 'chainrule[train]'") from err
    epochs = [h.epoch for h in history]
    fig = Figure(figsize=(9, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h.train_loss for h in history], label="train", marker=".")
    loss_ax.plot(epochs, [h.test_loss for h in history], label="test", marker=".")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy loss")
    loss_ax.set_yscale("log")
    loss_ax.legend()
    loss_ax.grid(alpha=0.3)
    acc_ax.plot(epochs, [h.train_accuracy for h in history], label="train", marker=".")
    acc_ax.plot(epochs, [h.test_accuracy for h in history], label="test", marker=".")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy")
    acc_ax.legend()
    acc_ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    # Drawn in memory, then written whole: an old picture stays until the new one is complete.
    picture = BytesIO()
    fig.savefig(picture, format=Path(path).suffix.lower()[1:] or "png")
    return write_atomic(path, picture.getvalue())
