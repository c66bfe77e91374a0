"""`resdsl train` on the command line: its options (docs/training.md) and the TrainConfig they make."""

from __future__ import annotations

import argparse

from .arguments import (
    EXIT_OK,
    duration,
    max_memory_option,
    non_negative_float,
    non_negative_int,
    path,
    positive_float,
    positive_int,
    spec_options,
)
from .errors import UsageError
from .files import expand


def add_train_parser(commands) -> None:
    train = commands.add_parser("train", help="train a spec (CUDA when available; torchrun for several GPUs)")
    train.add_argument("spec", metavar="FILE|NAME")
    train.add_argument(
        "--data",
        metavar="SOURCE",
        help="digits (default), cifar10:DIR, imagefolder:DIR (streamed), wds:PATTERN (WebDataset shards), "
        "npy:DIR (streamed .npy arrays, any input rank) or synthetic",
    )
    train.add_argument(
        "--recipe",
        choices=["auto", "imagenet", "cifar"],
        help="the defaults below: imagenet (torchvision's ResNet-50 recipe) for streamed images of "
        "128x128 or more, cifar (the paper's) otherwise",
    )
    train.add_argument("--epochs", type=positive_int, default=None, help="(recipe: 90 imagenet, 10 cifar)")
    train.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="per process and micro-step (recipe: 256 in all for imagenet, 128 for cifar)",
    )
    train.add_argument(
        "--lr", type=positive_float, default=None, help="(recipe: 0.1, for imagenet per 256 images of total batch)"
    )
    train.add_argument("--weight-decay", type=non_negative_float, default=None, help="(recipe: 1e-4)")
    train.add_argument(
        "--no-decay-norm-bias",
        action="store_true",
        default=None,
        help="no weight decay on norm scales and shifts and on biases",
    )
    train.add_argument(
        "--warmup-epochs", type=non_negative_float, default=None, help="linear warm-up (recipe: 0 imagenet, 1 cifar)"
    )
    train.add_argument(
        "--schedule",
        choices=["cosine", "step"],
        default=None,
        help="(recipe: step, /10 every 30 of 90 epochs, for imagenet; cosine for cifar)",
    )
    train.add_argument("--label-smoothing", type=non_negative_float, metavar="EPS", help="(default 0)")
    train.add_argument(
        "--ema",
        type=positive_float,
        default=None,
        metavar="DECAY",
        help="also evaluate an exponential moving average of the weights (such as 0.9998 per step)",
    )
    train.add_argument(
        "--accumulate",
        type=positive_int,
        metavar="N",
        help="micro-batches per optimizer step (gradient accumulation; default 1)",
    )
    train.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N optimizer steps (resumable; the schedule still spans the epochs)",
    )
    train.add_argument(
        "--max-time",
        type=duration,
        default=None,
        metavar="TIME",
        help="stop after TIME of training: seconds, or 90m, 12h (resumable)",
    )
    train.add_argument(
        "--log",
        nargs="+",
        choices=["tensorboard"],
        help="TensorBoard event files in RUN_DIR/tensorboard (metrics.jsonl is always written)",
    )
    train.add_argument(
        "--log-every",
        type=positive_int,
        metavar="N",
        help="read the running loss and accuracy from the device every N steps (default 50)",
    )
    train.add_argument(
        "--workers",
        type=non_negative_int,
        help="data loading processes per GPU for streamed data (default: from the cores, at most 8)",
    )
    train.add_argument(
        "--on-bad-image",
        choices=["fail", "skip"],
        help="an unreadable image (or npy:DIR array) stops the run (default) or is skipped with a warning",
    )
    train.add_argument(
        "--decode",
        choices=["worker", "device"],
        help="decode JPEGs in the workers (default) or in batches on the device (nvJPEG on CUDA)",
    )
    train.add_argument(
        "--epoch-samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="wds shards that are not local files: the training samples of an epoch",
    )
    train.add_argument("--device", help="auto (default), cuda or cpu")
    train.add_argument("--amp", help="bf16, fp16 or off (default: bf16 on CUDA, off on CPU)")
    train.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC activations (default: on for image inputs, on CUDA and on the CPU, where cuDNN "
        "and oneDNN run convolutions faster in it; NDHWC for volumes when given)",
    )
    train.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    train.add_argument(
        "--cuda-graphs",
        action="store_true",
        default=None,
        help="torch.compile with mode reduce-overhead: CUDA graphs of the model's steps",
    )
    train.add_argument("--seed", type=int, help="(default 0)")
    train.add_argument("--out", default=None, type=path, metavar="RUN_DIR", help="run directory (default runs/NAME)")
    again = train.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue the run in RUN_DIR from its last.pt, with the run's settings (docs/training.md "
        "lists the options that may change)",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace the run RUN_DIR holds (without --resume or --overwrite, a RUN_DIR that holds a run is refused)",
    )
    train.add_argument(
        "--init-from",
        metavar="CKPT",
        type=path,
        help="load every tensor whose name and shape match (a warning when tensors beyond the classifier do not)",
    )
    train.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="with --init-from: every tensor but the classifier's must match, or stop",
    )
    train.add_argument(
        "--freeze",
        nargs="+",
        metavar="PART",
        help="parts to freeze, as `resdsl summary` names them (stem, layer1, ..., head): no "
        "gradients, and their norms keep their running statistics (eval mode)",
    )
    max_memory_option(train)
    train.add_argument(
        "--sync-bn", action="store_true", default=None, help="SyncBatchNorm across processes under torchrun"
    )
    spec_options(train)


# The `resdsl train` options that are TrainConfig fields of the same name (argparse default None: not given).
TRAIN_OPTIONS = (
    "data",
    "recipe",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "no_decay_norm_bias",
    "warmup_epochs",
    "schedule",
    "label_smoothing",
    "ema",
    "accumulate",
    "max_steps",
    "max_time",
    "log",
    "log_every",
    "workers",
    "on_bad_image",
    "decode",
    "epoch_samples",
    "device",
    "amp",
    "channels_last",
    "compile",
    "cuda_graphs",
    "seed",
    "resume",
    "overwrite",
    "init_from",
    "strict",
    "freeze",
    "sync_bn",
    "input_shape",
    "network",
    "max_memory",
)


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
