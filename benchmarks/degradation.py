"""The degradation problem (He et al. 2015, fig. 1 and 6) on the data at hand.

Trains plain and residual CIFAR-style networks of the same depths with the
same recipe and seed, and plots their training loss and validation accuracy
together. The paper's observation: the deeper plain network trains worse
than the shallower one, while the deeper residual network does not.

    python benchmarks/degradation.py [--data digits] [--depths 20 56] [--epochs 10] [--input 3x16x16]
        [--out docs/images/degradation.png]
"""

from __future__ import annotations

import argparse
import io
import platform
import tempfile
import time

import torch

from resdsl.files import write_atomically
from resdsl.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="digits")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--input", default="3x16x16")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="docs/images/degradation.png")
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.input.split("x"))
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}; data {args.data}, input {args.input}, "
        f"{args.epochs} epochs"
    )
    curves = {}
    with tempfile.TemporaryDirectory() as folder:
        for depth in args.depths:
            for family in ("plain", "resnet"):
                name = f"{family}{depth}"
                start = time.perf_counter()
                policy = {"policy": "none"} if family == "plain" else {}
                history = train(
                    TrainConfig(
                        spec="cifar_resnet",
                        data=args.data,
                        epochs=args.epochs,
                        batch_size=args.batch_size,
                        out=f"{folder}/{name}",
                        seed=0,
                        overrides={"depth": depth, **policy},
                        input_shape=shape,
                    ),
                    log=lambda *a: None,
                )
                curves[name] = history
                last = history[-1]
                print(
                    f"  {name:<9} train loss {last['train_loss']:.4f}  train acc {last['train_acc']:.4f}  "
                    f"val acc {last['val_acc']:.4f}  ({time.perf_counter() - start:.0f} s)"
                )
    _plot(curves, args.out, args)
    print(f"wrote {args.out}")


def _plot(curves: dict, out: str, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, history in curves.items():
        epochs = [r["epoch"] for r in history]
        style = "--" if name.startswith("plain") else "-"
        left.plot(epochs, [r["train_loss"] for r in history], style, label=name)
        right.plot(epochs, [r["val_acc"] for r in history], style, label=name)
    left.set(xlabel="epoch", ylabel="training loss", yscale="log")
    right.set(xlabel="epoch", ylabel="validation accuracy")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle(f"plain (dashed) vs residual (solid), {args.data}, input {args.input}, same recipe and seed")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    write_atomically(out, lambda f: f.write(buffer.getvalue()))


if __name__ == "__main__":
    main()
