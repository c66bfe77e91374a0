"""CPU inference speed of `resdsl compile --deploy` against torchvision (timm for RepVGG), fp32, in one process.

For each model and batch size, images/s of these variants, measured in rounds that alternate the
variants (every round times each once, so all see the same machine state), median over the rounds:

  ref          torchvision's model (timm's for repvgg_*), eager, eval mode
  ref+compile  the same through torch.compile
  resdsl       resdsl's default compile output (the fx GraphModule `compile` exports), eager
  deploy       the --deploy module (norms folded, branches fused, channels-last), eager
  deploy+compile  the --deploy module through torch.compile

Every variant carries the reference's weights (loaded strictly), and `deploy` is the proven form
(backend/deploy.py refuses a deployed module that differs). Ratios are against `ref` and
`ref+compile` of the same run. `--explore` adds what each ingredient buys, on the deploy module:
  deploy-nchw      folded and fused, but the default (NCHW) layout
  ref-nhwc         the reference in channels-last, nothing folded (what the layout alone buys)
  deploy+freeze    TorchScript, torch.jit.freeze and optimize_for_inference (oneDNN conv+ReLU fusion)
  ref+fx-fuse      torch.fx.experimental.optimization.fuse on the reference (conv+BN folding by fx)

    python benchmarks/deploy_speed.py [--models resnet50,resnet18,convnext_tiny,repvgg_a0]
        [--batches 1,32] [--rounds 5] [--seconds 2] [--variants ref,deploy,...] [--explore] [--threads N]

A model whose spec is not bundled yet is skipped with the reason printed. Compilation (torch.compile
on CPU builds C++ kernels: a minute or more per model and batch) is outside the timed rounds.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

import resdsl
from resdsl.backend.deploy import deploy
from resdsl.deploy_plan import plan_deploy
from resdsl.library import bundled_networks

DEFAULT_MODELS = "resnet50,resnet18,convnext_tiny,repvgg_a0"
MAIN = ["ref", "ref+compile", "resdsl", "deploy", "deploy+compile"]
EXPLORE = ["deploy-nchw", "ref-nhwc", "deploy+freeze", "ref+fx-fuse"]


def reference(name: str) -> torch.nn.Module:
    if name.startswith("repvgg"):
        import timm

        return timm.create_model(name).eval()
    import torchvision

    return getattr(torchvision.models, name)().eval()


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    scripted = torch.jit.script(model.eval())
    return torch.jit.optimize_for_inference(torch.jit.freeze(scripted))


def variants(name: str, wanted: list[str]) -> dict[str, Callable[[], torch.nn.Module]]:
    """Builders of each variant (built lazily: only those asked for)."""
    ref = reference(name)
    net = resdsl.load(name)
    ours = net.to_torch().eval()
    ours.load_state_dict(ref.state_dict(), strict=True)  # the reference's weights, checked by name and shape
    plan = plan_deploy(net)
    print("  " + "\n  ".join(plan.lines()))
    deployed, proof = deploy(plan, ours)
    print(f"  {proof.line()}")
    flat = copy.deepcopy(deployed).to(memory_format=torch.contiguous_format)

    def fx_fuse() -> torch.nn.Module:
        from torch.fx.experimental.optimization import fuse

        return fuse(copy.deepcopy(ref))

    builders: dict[str, Callable[[], torch.nn.Module]] = {
        "ref": lambda: ref,
        "ref+compile": lambda: torch.compile(ref),
        "resdsl": lambda: ours,
        "deploy": lambda: deployed,
        "deploy+compile": lambda: torch.compile(deployed),
        "deploy-nchw": lambda: flat,
        "ref-nhwc": lambda: copy.deepcopy(ref).to(memory_format=torch.channels_last),
        "deploy+freeze": lambda: freeze(copy.deepcopy(deployed)),
        "ref+fx-fuse": fx_fuse,
    }
    return {v: builders[v] for v in wanted}


@torch.inference_mode()
def timed(model: torch.nn.Module, x: torch.Tensor, seconds: float) -> float:
    """Images per second over about `seconds` of back-to-back forward passes."""
    n, start = 0, time.perf_counter()
    while True:
        model(x)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 2:
            return n * x.shape[0] / elapsed


def run(name: str, batches: list[int], wanted: list[str], rounds: int, seconds: float) -> None:
    if name not in bundled_networks():
        print(f"{name}: skipped, no bundled spec `{name}` yet (specs/{name}.res)")
        return
    print(f"{name}:")
    built = variants(name, wanted)
    for batch in batches:
        x = torch.randn(batch, 3, 224, 224)
        models = {}
        for variant, build in built.items():
            start = time.perf_counter()
            model = build()
            with torch.inference_mode():
                for _ in range(2):  # warm-up (and torch.compile's compilation for this batch)
                    model(x)
            models[variant] = model
            print(f"  batch {batch}: {variant} ready in {time.perf_counter() - start:.1f} s", flush=True)
        rates: dict[str, list[float]] = {v: [] for v in models}
        for r in range(rounds):
            order = list(models) if r % 2 == 0 else list(reversed(models))  # alternate, and alternate the order
            for variant in order:
                rates[variant].append(timed(models[variant], x, seconds))
        median = {v: statistics.median(r) for v, r in rates.items()}
        print(f"  batch {batch}, {rounds} rounds of ~{seconds:g} s per variant, images/s (median; min-max):")
        for variant, rate in median.items():
            ratios = [f"{rate / median[ref]:.2f}x {ref}" for ref in ("ref", "ref+compile") if ref in median]
            spread = f"{min(rates[variant]):.1f}-{max(rates[variant]):.1f}"
            print(f"    {variant:<16} {rate:8.1f}  ({spread})  {'  '.join(ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per variant per round")
    parser.add_argument("--variants", default=",".join(MAIN))
    parser.add_argument("--explore", action="store_true", help="also: " + ", ".join(EXPLORE))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    wanted = args.variants.split(",") + (EXPLORE if args.explore else [])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, load average {load:.1f} at the start (figures taken on a busy machine "
        "are only indicative)"
    )
    for name in args.models.split(","):
        run(name, [int(b) for b in args.batches.split(",")], wanted, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
