"""How fast `resdsl check` is, and that it grows linearly with network size.

Prints, measured in this one run:
  1. whole process `resdsl check resnet152`, median of N runs, next to the
     floor it cannot beat: `python -c "import lark, networkx"` (goal <= 0.30 s);
  2. in-process core time (parse, elaborate, shapes, analysis) for resnet152
     and resnet1202 (goal: resnet1202 < 0.3 s);
  3. generated networks of 1,250 ... 10,000 basic blocks: time and time per
     block, whose ratio shows linear growth (goal: 10,000 blocks < 3 s).

    python benchmarks/check_speed.py [--runs 15]
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import subprocess
import sys
import time

import resdsl


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def core(fn, runs: int) -> float:
    fn()  # warm: grammar cache, imports
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def generated(blocks: int) -> str:
    per_stage = blocks // 4
    stages = "\n".join(f"    layer{i + 1}: basic({16 << i}) x{per_stage}{' s2' if i else ''}" for i in range(4))
    return (
        f'use "blocks.res"\nnetwork generated {{\n    input 3x64x64\n    conv 16 k3 -> bn -> relu\n{stages}\n'
        "    avgpool -> fc 10\n}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")

    floor = wall([sys.executable, "-c", "import lark, networkx"], args.runs)
    check = wall([sys.executable, "-m", "resdsl", "check", "resnet152"], args.runs)
    print(f"whole process, median of {args.runs}:")
    print(f"  python -c 'import lark, networkx'   {floor:.3f} s")
    print(
        f"  resdsl check resnet152              {check:.3f} s   (ratio to the import floor {check / floor:.2f}; "
        f"goal <= 0.30 s: {'met' if check <= 0.30 else 'NOT met'})"
    )

    print("core (in process, median):")
    for name in ("resnet152", "resnet1202"):
        seconds = core(functools.partial(resdsl.load, name), max(3, args.runs // 3))
        nodes = resdsl.load(name).graph.number_of_nodes()
        print(f"  {name:<11} {seconds:.3f} s  {nodes:>6} nodes")

    print("scaling (generated basic-block networks):")
    base = None
    for blocks in (1250, 2500, 5000, 10000):
        text = generated(blocks)
        seconds = core(functools.partial(resdsl.loads, text, path="<generated>"), 3)
        per_block = seconds / blocks
        base = base or per_block
        print(
            f"  {blocks:>6} blocks  {seconds:.3f} s  {per_block * 1e6:.1f} us/block  "
            f"(x{per_block / base:.2f} of the smallest)"
        )
    print(f"  goal: 10,000 blocks < 3 s: {'met' if seconds < 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
