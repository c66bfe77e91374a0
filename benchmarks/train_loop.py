"""The training loop: `resdsl train` against a hand-written loop with torchvision's model, same data.

Both train the same architecture (torchvision's resnet18 and resdsl's resnet18 spec, the same
weights) on the same in-memory tensors (resdsl's `synthetic` source, 1,638 training images), with
SGD (momentum 0.9, weight decay 1e-4) and the same batch. The hand-written loop is what the
torchvision reference scripts do per step: forward, cross-entropy, zero_grad, backward, step, and
`loss.item()` and the top-1 accuracy for the log. resdsl's is `resdsl.train.train` whole (its
warm-up and schedule, device-side running sums, checkpoints at the end of each epoch), timed by its
own per-epoch `images_per_s` (validation excluded, as in the reference).

Alternating rounds of two epochs, the second timed (the first warms up the allocator and oneDNN's
caches); prints steps/s of both and their ratio (goal >= 1.0 on the CPU).

    python benchmarks/train_loop.py [--size 64] [--batch 64] [--rounds 5] [--epochs 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
import torchvision

from resdsl.train import TrainConfig, train
from resdsl.train.data import load_data


def hand_written(model, x, y, batch: int, seed: int, device: torch.device, epochs: int) -> float:
    """`epochs` epochs of the reference loop; steps/s of the last."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model.train()
    for epoch in range(epochs):
        rate = _epoch(model, optimizer, x, y, batch, seed * 1000 + epoch, device)
    return rate


def _epoch(model, optimizer, x, y, batch: int, seed: int, device: torch.device) -> float:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    steps, correct, seen = 0, 0, 0
    start = time.perf_counter()
    for i in range(0, len(order), batch):
        index = order[i : i + batch]
        images, labels = x[index].to(device), y[index].to(device)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _ = loss.item()  # the reference's MetricLogger.update
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        steps += 1
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2, help="per round; the last is timed (the first warms up)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = (3, args.size, args.size)
    data = load_data("synthetic", shape, seed=0)  # the tensors resdsl trains on, for both
    steps_per_epoch = -(-len(data.train_x) // args.batch)
    rates = {"resdsl": [], "torchvision": []}
    with tempfile.TemporaryDirectory() as out:
        for round_ in range(args.rounds):
            history = train(
                TrainConfig(
                    spec="resnet18",
                    data="synthetic",
                    epochs=args.epochs,
                    batch_size=args.batch,
                    device=str(device),
                    input_shape=shape,
                    overrides={"classes": 10},
                    warmup_epochs=0.0,
                    out=f"{out}/r{round_}",
                    seed=round_,
                ),
                log=lambda *a: None,
            )
            # images/s over the epoch's N images, which took steps_per_epoch steps
            rates["resdsl"].append(history[-1]["images_per_s"] * steps_per_epoch / len(data.train_x))
            model = torchvision.models.resnet18(num_classes=10).to(device)
            rates["torchvision"].append(
                hand_written(model, data.train_x, data.train_y, args.batch, round_, device, args.epochs)
            )
    where = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"resnet18 training loop, batch {args.batch}, {args.size}x{args.size}, {len(data.train_x)} images, {where}:")
    median = {name: statistics.median(r) for name, r in rates.items()}
    for name, rate in median.items():
        print(f"  {name:<12} {rate:7.2f} steps/s  ({rate * args.batch:7.1f} images/s)")
    print(
        f"  ratio resdsl / hand-written torchvision loop: {median['resdsl'] / median['torchvision']:.3f}  (goal >= 1.0)"
    )


if __name__ == "__main__":
    main()
