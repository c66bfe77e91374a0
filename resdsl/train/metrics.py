"""Running sums kept on the device, and what a run writes of them.

`Meter` adds a step's loss and top-1/top-5 hits to tensors on the training device: no `.item()`,
so no host synchronisation per step. `read()` copies them to the host: every `--log-every` steps
for the progress bar and TensorBoard, and once at the end of an epoch.

`Log` writes `metrics.jsonl` (one record per epoch, rewritten atomically) and, with
`--log tensorboard`, event files under RUN_DIR/tensorboard.
"""

from __future__ import annotations

import json
import os
from typing import IO

import torch
import torch.distributed as dist

from ..files import write_atomically
from ..library import UsageError


class Meter:
    """Sums of loss × examples, top-1 hits and top-5 hits on `device`; the count on the host (it is known)."""

    def __init__(self, device: torch.device, state: list[float] | None = None):
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)
        self.count = 0
        if state is not None:  # a resumed epoch: the sums of its steps already taken
            self.sums += torch.tensor(state[:3], dtype=torch.float64, device=device)
            self.count = int(state[3])

    @torch.no_grad()
    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices  # (B, k)
        hits = top == labels[:, None]  # (B, k)
        self.sums += torch.stack(
            [loss.detach().double() * len(labels), hits[:, 0].sum().double(), hits.any(1).sum().double()]
        )
        self.count += len(labels)

    def state(self) -> list[float]:
        return self.sums.tolist() + [self.count]

    def read(self, reduce: bool = False) -> dict[str, float]:
        """{loss, acc, top5} (one host synchronisation); with `reduce`, summed over the processes first."""
        sums = torch.cat([self.sums, torch.tensor([float(self.count)], dtype=torch.float64, device=self.sums.device)])
        if reduce:
            dist.all_reduce(sums)
        loss, top1, top5, count = sums.tolist()
        seen = max(count, 1.0)  # `count` 0: nothing was measured (the caller says so); the sums are 0
        return {"loss": loss / seen, "acc": top1 / seen, "top5": top5 / seen, "count": count}


class Log:
    """metrics.jsonl always; TensorBoard's event files when asked (the package is checked at start-up)."""

    def __init__(self, out: str, kinds: tuple[str, ...], enabled: bool):
        self.path = os.path.join(out, "metrics.jsonl")
        self.writer = None
        if "tensorboard" in kinds and enabled:
            self.writer = tensorboard_writer(os.path.join(out, "tensorboard"))

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def epochs(self, history: list[dict]) -> None:
        lines = "".join(json.dumps(record) + "\n" for record in history)

        def write(f: IO[bytes]) -> None:
            f.write(lines.encode())

        write_atomically(self.path, write)
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def require_tensorboard(kinds: tuple[str, ...]) -> None:
    """Before any work: `--log tensorboard` needs the tensorboard package."""
    if "tensorboard" in kinds:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UsageError(
                "--log tensorboard needs the tensorboard package: pip install tensorboard "
                "(or pip install 'resdsl[train]')"
            ) from None


def tensorboard_writer(directory: str):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(directory)
