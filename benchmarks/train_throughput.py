"""Training throughput: resdsl's compiled spec against torchvision's model, in the same loop.

Synthetic data resident on the device, SGD with momentum, the trainer's
settings (on CUDA: bf16 autocast, channels_last, cudnn.benchmark; optional
torch.compile). Alternating rounds; prints images/s for both and the ratio
(goal >= 0.98). Goal on one H100, resnet50, batch 256: >= 3,000 images/s.

    python benchmarks/train_throughput.py [--spec resnet50] [--batch 256] [--size 224] [--rounds 5] [--compile]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision

import resdsl


def run(model, optimizer, x, y, steps: int, amp: bool) -> float:
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return x.shape[0] * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default="resnet50", help="a spec with a torchvision twin")
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    batch, size = args.batch or (256 if cuda else 8), args.size or (224 if cuda else 112)
    steps = args.steps or (20 if cuda else 2)
    if cuda:
        torch.backends.cudnn.benchmark = True
    fmt = torch.channels_last if cuda else torch.contiguous_format
    ours = resdsl.load(args.spec).to_torch()
    reference = getattr(torchvision.models, args.spec)()
    ours.load_state_dict(reference.state_dict())
    runs = {}
    for name, model in (("resdsl", ours), ("torchvision", reference)):
        model = model.to(device, memory_format=fmt).train()
        if args.compile:
            model = torch.compile(model)
        runs[name] = (model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device=device)
    for model, optimizer in runs.values():
        run(model, optimizer, x, y, 2, cuda)  # warm-up
    rates = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (model, optimizer) in runs.items():
            rates[name].append(run(model, optimizer, x, y, steps, cuda))
    where = torch.cuda.get_device_name() if cuda else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(
        f"{args.spec} training, batch {batch}, {size}x{size}, {where}"
        f"{', bf16 autocast, channels_last' if cuda else ''}{', torch.compile' if args.compile else ''}:"
    )
    median = {name: statistics.median(r) for name, r in rates.items()}
    for name, rate in median.items():
        print(f"  {name:<12} {rate:9.1f} images/s")
    print(f"  ratio resdsl / torchvision: {median['resdsl'] / median['torchvision']:.3f}  (goal >= 0.98)")


if __name__ == "__main__":
    main()
