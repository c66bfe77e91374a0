"""The compiled module against torchvision's, measured in one process.

Prints:
  1. forward+backward throughput of resdsl's resnet50 and torchvision's,
     alternating rounds so that both see the same machine state; the ratio
     (goal >= 0.98). On CUDA: bf16 autocast, channels_last, batch 256.
  2. torch.compile(fullgraph=True) graph breaks (goal 0), via torch._dynamo.explain.
  3. construction time: resdsl.load(...).to_torch() vs torchvision.models.resnet152()
     (goal <= 1.2x).

    python benchmarks/backend.py [--device cpu|cuda] [--batch B] [--size S] [--rounds R]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torchvision

import resdsl


def step_time(model: torch.nn.Module, x: torch.Tensor, iters: int, amp: bool) -> float:
    """Seconds for `iters` forward+backward passes."""
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = model(x).float().square().mean()
        loss.backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def throughput(args) -> None:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (256 if cuda else 8)
    ours = resdsl.load("resnet50").to_torch()
    reference = torchvision.models.resnet50()
    ours.load_state_dict(reference.state_dict())
    fmt = torch.channels_last if cuda else torch.contiguous_format
    models = {
        "resdsl": ours.to(device, memory_format=fmt).train(),
        "torchvision": reference.to(device, memory_format=fmt).train(),
    }
    x = torch.randn(batch, 3, args.size, args.size, device=device).to(memory_format=fmt)
    for model in models.values():  # warm-up: cudnn autotuning, allocator
        step_time(model, x, 2, cuda)
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(step_time(model, x, args.iters, cuda))
    rate = {name: batch * args.iters / statistics.median(t) for name, t in times.items()}
    print(
        f"forward+backward, resnet50, batch {batch}, {args.size}x{args.size}, {device.type}"
        f"{', bf16 autocast, channels_last' if cuda else ''}, median of {args.rounds} alternating rounds:"
    )
    for name, r in rate.items():
        print(f"  {name:<12} {r:8.1f} images/s")
    print(f"  ratio resdsl / torchvision: {rate['resdsl'] / rate['torchvision']:.3f}  (goal >= 0.98)")


def graph_breaks() -> None:
    model = resdsl.load("resnet50").to_torch().eval()
    explanation = torch._dynamo.explain(model)(torch.randn(2, 3, 224, 224))
    print(
        f"torch.compile(fullgraph=True): {explanation.graph_count} graph, "
        f"{explanation.graph_break_count} graph breaks  (goal 0)"
    )


def construction(rounds: int) -> None:
    net = resdsl.load("resnet152")
    ours, theirs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        net.to_torch()
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        torchvision.models.resnet152()
        theirs.append(time.perf_counter() - start)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(
        f"construction, resnet152, median of {rounds}: resdsl to_torch() {a:.3f} s, "
        f"torchvision resnet152() {b:.3f} s, ratio {a / b:.2f}  (goal <= 1.2)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=2)
    args = parser.parse_args()
    device = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    print(f"machine: {device}; torch {torch.__version__}, torchvision {torchvision.__version__}")
    construction(5)
    graph_breaks()
    throughput(args)


if __name__ == "__main__":
    main()
