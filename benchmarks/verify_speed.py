"""How fast `resdsl verify` checks a space of configurations, next to doing the same with torchvision.

The space: resnet.res at depths 18, 34, 50, 101 and 152 and square inputs from 32 to 231, 1,000
configurations. Measured in this one run:

  1. `verify` exhaustively and sampled by hypothesis, both on every core, in configurations/s;
  2. the reference: what a torchvision user does to find shape errors over the same space: build
     torchvision's resnet of each depth and run a forward pass on PyTorch's meta device (no
     arithmetic, no memory) at each input size. The ratio is verify's rate over this one.

    python benchmarks/verify_speed.py [--sizes 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torchvision

from resdsl.verify import Dimension, Space, verify

DEPTHS = (18, 34, 50, 101, 152)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--sizes", type=int, default=200, help="input sizes from 32 (default 200: 1,000 configurations)"
    )
    args = parser.parse_args()
    sizes = tuple(range(32, 32 + args.sizes))
    space = Space((Dimension("depth", tuple(str(d) for d in DEPTHS)), Dimension("input", tuple((s, s) for s in sizes))))
    n = space.size
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )
    print(f"space: resnet.res, {space.describe()} = {n:,} configurations")

    start = time.perf_counter()
    report = verify("resnet", space, examples=n)
    exhaustive = time.perf_counter() - start
    assert report.ok and report.exhaustive and report.tried == n
    start = time.perf_counter()
    sampled_report = verify("resnet", space, examples=n - 1)  # one short of the space: hypothesis samples
    sampled = time.perf_counter() - start
    assert sampled_report.ok and not sampled_report.exhaustive

    start = time.perf_counter()
    checked = 0
    with torch.device("meta"):
        for depth in DEPTHS:
            model = getattr(torchvision.models, f"resnet{depth}")().eval()
            for size in sizes:
                with torch.no_grad():
                    model(torch.empty(1, 3, size, size))
                checked += 1
    reference = time.perf_counter() - start

    rate = n / exhaustive
    print(f"  resdsl verify, exhaustive (every core)  {exhaustive:6.2f} s  {rate:7.0f} configurations/s")
    print(
        f"  resdsl verify, sampled (every core)    {sampled:6.2f} s  {sampled_report.tried / sampled:7.0f} "
        f"configurations/s ({sampled_report.tried:,} tried)"
    )
    print(f"  torchvision, meta-device forward        {reference:6.2f} s  {checked / reference:7.0f} configurations/s")
    print(f"ratio (verify exhaustive / torchvision): {rate / (checked / reference):.2f}x")
    print(f"goal: 1,000 configurations well under a minute: {'met' if exhaustive < 30 else 'NOT met'}")


if __name__ == "__main__":
    main()
