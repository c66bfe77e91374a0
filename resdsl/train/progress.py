"""What a run shows: a progress bar on a terminal, and `curves.png` at the end.

matplotlib is optional: `plotting()` is asked at start-up, so that a missing matplotlib is one note
before training ("curves.png will not be drawn"), never an ImportError after the whole run.
"""

from __future__ import annotations

import io
import sys
from typing import IO

from ..files import write_atomically

NO_MATPLOTLIB = "note: matplotlib is not installed; curves.png will not be drawn (pip install matplotlib)"


def plotting() -> bool:
    """Whether curves.png can be drawn: matplotlib imports (its Agg backend needs nothing else)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


class Progress:
    """A rich progress bar (loss, accuracy, images/s) on a terminal; nothing otherwise, where the
    one-line summary per epoch says it all. The loop updates it every --log-every steps, when it
    reads the device's running sums anyway."""

    def __init__(self, enabled: bool, epoch: int, epochs: int, steps: int, start: int = 0):
        self.enabled = enabled and sys.stdout.isatty()
        self.epoch, self.epochs, self.steps, self.start = epoch, epochs, steps, start

    def __enter__(self):
        if not self.enabled:
            return lambda step, loss, acc, rate: None
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn(f"epoch {self.epoch + 1}/{self.epochs}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  {task.fields[rate]:.0f} images/s"),
            TimeRemainingColumn(),
            transient=True,
        )
        self.bar.start()
        task = self.bar.add_task("train", total=self.steps, completed=self.start, loss=float("nan"), acc=0.0, rate=0.0)
        return lambda step, loss, acc, rate: self.bar.update(task, completed=step, loss=loss, acc=acc, rate=rate)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


def plot(history: list[dict], path: str, title: str) -> None:
    """Loss and accuracy per epoch, train and val, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (("loss", left), ("acc", right)):
        axis.plot(epochs, [r[f"train_{key}"] for r in history], label="train")
        measured = [(r["epoch"], r[f"val_{key}"]) for r in history if r.get(f"val_{key}") is not None]
        if measured:  # no validation data: no val curve
            axis.plot(*zip(*measured), label="val")
        axis.set_xlabel("epoch")
        axis.set_ylabel("accuracy" if key == "acc" else "loss")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)

    def write(f: IO[bytes]) -> None:
        f.write(buffer.getvalue())

    write_atomically(path, write)
