"""The recipe: hyper-parameters by the kind of data, parameter groups, the schedule.

Two defaults, chosen by the data (`--recipe auto`) or by name:

    imagenet  streamed images of 128×128 or more: torchvision's reference ResNet-50 recipe
              (references/classification: 90 epochs, SGD momentum 0.9, lr 0.1 for a total batch
              of 256, scaled linearly for others, weight decay 1e-4, lr ÷10 every 30 epochs)
    cifar     everything else: the paper's CIFAR settings, as resdsl has always trained (lr 0.1,
              batch 128, weight decay 1e-4, one epoch of warm-up, then cosine)

Anything given on the command line (or to TrainConfig) wins over the recipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..library import UsageError
from .config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    epochs: int
    batch_size: int  # per optimizer step, all processes together
    lr: float  # for `batch_size`; scaled linearly with the real total batch
    weight_decay: float
    warmup_epochs: float
    schedule: str
    milestones: tuple[float, ...]  # the `step` schedule's ÷10 points, as fractions of the epochs


RECIPES = {
    "imagenet": Recipe(
        "imagenet",
        epochs=90,
        batch_size=256,
        lr=0.1,
        weight_decay=1e-4,
        warmup_epochs=0.0,
        schedule="step",
        milestones=(1 / 3, 2 / 3),
    ),
    "cifar": Recipe(
        "cifar",
        epochs=10,
        batch_size=128,
        lr=0.1,
        weight_decay=1e-4,
        warmup_epochs=1.0,
        schedule="cosine",
        milestones=(0.5, 0.75),
    ),
}


UNRESOLVED = "the TrainConfig is not resolved: recipe.resolve fills in the recipe's values"


@dataclass(frozen=True)
class Resolved:
    """The hyper-parameters of a TrainConfig after `resolve`, which leaves none of them None."""

    epochs: int
    batch_size: int  # per process and micro-step
    lr: float
    weight_decay: float
    warmup_epochs: float
    schedule: str

    @classmethod
    def of(cls, cfg: TrainConfig) -> Resolved:
        epochs, batch_size, lr = cfg.epochs, cfg.batch_size, cfg.lr
        weight_decay, warmup_epochs, schedule = cfg.weight_decay, cfg.warmup_epochs, cfg.schedule
        if (
            epochs is None
            or batch_size is None
            or lr is None
            or weight_decay is None
            or warmup_epochs is None
            or schedule is None
        ):
            raise ValueError(UNRESOLVED)
        return cls(epochs, batch_size, lr, weight_decay, warmup_epochs, schedule)


def choose(cfg: TrainConfig, input_shape: tuple[int, ...], streaming: bool) -> Recipe:
    name = cfg.recipe
    if name == "auto":
        name = "imagenet" if streaming and len(input_shape) == 3 and min(input_shape[1:]) >= 128 else "cifar"
    if name not in RECIPES:
        raise UsageError(f"--recipe must be auto, imagenet or cifar, not {cfg.recipe!r}")
    return RECIPES[name]


def resolve(cfg: TrainConfig, recipe: Recipe, world: int) -> TrainConfig:
    """`cfg` with every unset hyper-parameter taken from the recipe (the batch is per process)."""
    batch = cfg.batch_size or max(1, recipe.batch_size // (world * cfg.accumulate))
    total = batch * world * cfg.accumulate
    lr = cfg.lr if cfg.lr is not None else recipe.lr * (total / recipe.batch_size if recipe.name == "imagenet" else 1)
    return replace(
        cfg,
        epochs=cfg.epochs or recipe.epochs,
        batch_size=batch,
        lr=lr,
        weight_decay=recipe.weight_decay if cfg.weight_decay is None else cfg.weight_decay,
        warmup_epochs=recipe.warmup_epochs if cfg.warmup_epochs is None else cfg.warmup_epochs,
        schedule=cfg.schedule or recipe.schedule,
        recipe=recipe.name,
    )


def validate(cfg: TrainConfig) -> None:
    """The numbers the command line checks, checked for API callers too (a NaN lr trains to NaN)."""
    for name in ("epochs", "batch_size", "accumulate", "max_steps", "log_every"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "max_time"):
        value = getattr(cfg, name)
        if value is not None and (not math.isfinite(value) or value < 0 or (name in ("lr", "max_time") and value == 0)):
            raise UsageError(
                f"--{name.replace('_', '-')} must be a "
                f"{'positive' if name in ('lr', 'max_time') else 'non-negative'} finite number, not {value}"
            )
    if cfg.label_smoothing >= 1:
        raise UsageError(f"--label-smoothing must be below 1, not {cfg.label_smoothing}")
    if cfg.ema is not None and not 0 < cfg.ema < 1:
        raise UsageError(f"--ema is the decay per step, between 0 and 1 (such as 0.9998), not {cfg.ema}")
    if cfg.schedule not in (None, "cosine", "step"):
        raise UsageError(f"--schedule must be cosine or step, not {cfg.schedule!r}")
    for kind in cfg.log:
        if kind != "tensorboard":
            raise UsageError(f"--log {kind}: the only logger beside metrics.jsonl is tensorboard")


def parameter_groups(model: torch.nn.Module, weight_decay: float, exempt_norm_and_bias: bool) -> list[dict]:
    """One group, or two: with `exempt_norm_and_bias`, every 1-d tensor (norm scales and shifts, biases)
    gets no weight decay, as timm's and torchvision's `--norm-weight-decay 0` recipes do."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not exempt_norm_and_bias:
        return [{"params": [p for _, p in trainable], "weight_decay": weight_decay}]
    decayed = [p for _, p in trainable if p.ndim > 1]
    exempt = [p for _, p in trainable if p.ndim <= 1]
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}]


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig, milestones: tuple[float, ...]) -> float:
    """Linear warm-up, then cosine to 0 or ÷10 at each milestone; `step` counts optimizer steps.
    `cfg` is resolved (`resolve`)."""
    if cfg.epochs is None or cfg.warmup_epochs is None:
        raise ValueError(UNRESOLVED)
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    total = max(cfg.epochs * steps_per_epoch, warmup + 1)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "step":
        return 0.1 ** sum(step >= int(f * total) for f in milestones)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
