"""`resdsl train` on the command line: its options (docs/training.md) and the TrainConfig they make."""

from __future__ import annotations

import argparse
import math
from typing import Callable

from .cli import EXIT_OK, _non_negative_float, _non_negative_int, _path, _positive_float, _positive_int
from .errors import UsageError
from .files import expand


def _duration(text: str) -> float:
    """Seconds: `3600`, `90s`, `45m`, `12h`."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        value = float(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 3600, 90m or 12h, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, not {text!r}")
    return value


def add_train_parser(commands, spec_options: Callable, max_memory: Callable) -> None:
    train = commands.add_parser("train", help="train a spec (CUDA when available; torchrun for several GPUs)")
    train.add_argument("spec", metavar="FILE|NAME")
    train.add_argument("--data", metavar="SOURCE",
                       help="digits (default), cifar10:DIR, imagefolder:DIR (streamed), wds:PATTERN (WebDataset "
                            "shards) or synthetic")
    train.add_argument("--recipe", choices=["auto", "imagenet", "cifar"],
                       help="the defaults below: imagenet (torchvision's ResNet-50 recipe) for streamed images of "
                            "128x128 or more, cifar (the paper's) otherwise")
    train.add_argument("--epochs", type=_positive_int, default=None, help="(recipe: 90 imagenet, 10 cifar)")
    train.add_argument("--batch-size", type=_positive_int, default=None,
                       help="per process and micro-step (recipe: 256 in all for imagenet, 128 for cifar)")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="(recipe: 0.1, for imagenet per 256 images of total batch)")
    train.add_argument("--weight-decay", type=_non_negative_float, default=None, help="(recipe: 1e-4)")
    train.add_argument("--no-decay-norm-bias", action="store_true", default=None,
                       help="no weight decay on norm scales and shifts and on biases")
    train.add_argument("--warmup-epochs", type=_non_negative_float, default=None,
                       help="linear warm-up (recipe: 0 imagenet, 1 cifar)")
    train.add_argument("--schedule", choices=["cosine", "step"], default=None,
                       help="(recipe: step, /10 every 30 of 90 epochs, for imagenet; cosine for cifar)")
    train.add_argument("--label-smoothing", type=_non_negative_float, metavar="EPS", help="(default 0)")
    train.add_argument("--ema", type=_positive_float, default=None, metavar="DECAY",
                       help="also evaluate an exponential moving average of the weights (such as 0.9998 per step)")
    train.add_argument("--accumulate", type=_positive_int, metavar="N",
                       help="micro-batches per optimizer step (gradient accumulation; default 1)")
    train.add_argument("--max-steps", type=_positive_int, default=None, metavar="N",
                       help="stop after N optimizer steps (resumable; the schedule still spans the epochs)")
    train.add_argument("--max-time", type=_duration, default=None, metavar="TIME",
                       help="stop after TIME of training: seconds, or 90m, 12h (resumable)")
    train.add_argument("--log", nargs="+", choices=["tensorboard"],
                       help="TensorBoard event files in RUN_DIR/tensorboard (metrics.jsonl is always written)")
    train.add_argument("--log-every", type=_positive_int, metavar="N",
                       help="read the running loss and accuracy from the device every N steps (default 50)")
    train.add_argument("--workers", type=_non_negative_int,
                       help="data loading processes per GPU for streamed data (default: from the cores, at most 8)")
    train.add_argument("--on-bad-image", choices=["fail", "skip"],
                       help="an unreadable image stops the run (default) or is skipped with a warning")
    train.add_argument("--decode", choices=["worker", "device"],
                       help="decode JPEGs in the workers (default) or in batches on the device (nvJPEG on CUDA)")
    train.add_argument("--epoch-samples", type=_positive_int, default=None, metavar="N",
                       help="wds shards that are not local files: the training samples of an epoch")
    train.add_argument("--device", help="auto (default), cuda or cpu")
    train.add_argument("--amp", help="bf16, fp16 or off (default: bf16 on CUDA, off on CPU)")
    train.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                       help="NHWC activations (default: on for image inputs, on CUDA and on the CPU, where cuDNN "
                            "and oneDNN run convolutions faster in it)")
    train.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    train.add_argument("--cuda-graphs", action="store_true", default=None,
                       help="torch.compile with mode reduce-overhead: CUDA graphs of the model's steps")
    train.add_argument("--seed", type=int, help="(default 0)")
    train.add_argument("--out", default=None, type=_path, metavar="RUN_DIR", help="run directory (default runs/NAME)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", default=None,
                       help="continue the run in RUN_DIR from its last.pt, with the run's settings (docs/training.md "
                            "lists the options that may change)")
    again.add_argument("--overwrite", action="store_true", default=None,
                       help="replace the run RUN_DIR holds (without --resume or --overwrite, a RUN_DIR that holds a "
                            "run is refused)")
    train.add_argument("--init-from", metavar="CKPT", type=_path, help="load every tensor whose name and shape match "
                       "(a warning when tensors beyond the classifier do not)")
    train.add_argument("--strict", action="store_true", default=None,
                       help="with --init-from: every tensor but the classifier's must match, or stop")
    train.add_argument("--freeze", nargs="+", metavar="PART",
                       help="parts to freeze, as `resdsl summary` names them (stem, layer1, ..., head): no "
                            "gradients, and their norms keep their running statistics (eval mode)")
    max_memory(train)
    train.add_argument("--sync-bn", action="store_true", default=None,
                       help="SyncBatchNorm across processes under torchrun")
    spec_options(train)


# The `resdsl train` options that are TrainConfig fields of the same name (argparse default None: not given).
TRAIN_OPTIONS = ("data", "recipe", "epochs", "batch_size", "lr", "weight_decay", "no_decay_norm_bias", "warmup_epochs",
                 "schedule", "label_smoothing", "ema", "accumulate", "max_steps", "max_time", "log", "log_every",
                 "workers", "on_bad_image", "decode", "epoch_samples", "device", "amp", "channels_last", "compile",
                 "cuda_graphs", "seed", "resume", "overwrite", "init_from", "strict", "freeze", "sync_bn",
                 "input_shape", "network", "max_memory")


def run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        from .train import TrainConfig, train
    except ImportError as exc:
        raise UsageError(f"resdsl train needs PyTorch: pip install 'resdsl[train]' ({exc})") from None
    out = args.out or str(Path("runs") / Path(args.spec).stem)
    # Only what was given: an option left out takes TrainConfig's default, or with --resume the run's value.
    given = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    given.update({name: tuple(given[name]) for name in ("log", "freeze") if name in given})
    if args.overrides:
        given["overrides"] = dict(args.overrides)
    config = TrainConfig(spec=expand(args.spec), out=out, explicit=frozenset(given), **given)
    train(config, log=lambda *a: print(*a, flush=True))
    return EXIT_OK
