"""The training loop: SGD with warm-up, AMP on CUDA, DDP under torchrun, lossless checkpoints.

Resumable to the bit on CPU: the data order and the augmentation of epoch e
come from generators seeded with (seed, e), and each checkpoint holds the
model, optimizer, scheduler, epoch and the global RNG state, written
atomically at the end of every epoch. A run killed at any moment restarts
from the last finished epoch and replays the next one exactly.

Everything that can fail for a reason the user can fix (the run directory, a
missing package, a spec too large for memory, a bad --freeze) is checked
before the data is read or the model built, so that no mistake costs a run.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..files import check_destination, write_atomically
from ..library import UsageError
from ..memory import check_memory, physical_memory, show_bytes
from ..network import Network
from ..pipeline import load
from ..units import format_count
from . import checkpoint
from .config import TrainConfig
from .data import Data, DataError, augment_batch, examples, load_data, require
from .progress import NO_MATPLOTLIB, Progress, plot, plotting


def _world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _device(wanted: str, local_rank: int) -> torch.device:
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if wanted not in ("cpu", "cuda") and not wanted.startswith("cuda:"):
        raise DataError(f"unknown --device {wanted!r}: use auto, cuda or cpu")
    if wanted.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DataError("--device cuda, but PyTorch sees no CUDA device on this machine")
        return torch.device(wanted if ":" in wanted else f"cuda:{local_rank}")
    return torch.device("cpu")


def _lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine to 0 or steps of ÷10 at 50% and 75% of training."""
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    total = max(cfg.epochs * steps_per_epoch, warmup + 1)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "step":
        return 0.1 ** sum(step >= int(f * total) for f in (0.5, 0.75))
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def _validate(cfg: TrainConfig) -> None:
    """The numbers the command line checks, checked for API callers too (a NaN lr trains to NaN)."""
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise UsageError("--epochs and --batch-size must be at least 1")
    for name in ("lr", "momentum", "weight_decay", "warmup_epochs"):
        value = getattr(cfg, name)
        if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a {'positive' if name == 'lr' else 'non-negative'} "
                             f"finite number, not {value}")


def _check_memory(net: Network, cfg: TrainConfig, device: torch.device, amp: str) -> None:
    """E0506 before the data is read or the model built: a batch of the spec must fit the device."""
    cuda = device.type == "cuda"
    data = 0 if cuda else (examples(cfg.data) or 0) * math.prod(net.input_shape) * 4  # held on the host
    if cfg.max_memory:
        limit, where = cfg.max_memory, f"--max-memory {show_bytes(cfg.max_memory)}"
    elif cuda:
        limit = torch.cuda.mem_get_info(device)[0]
        where = f"the {show_bytes(limit)} free on {device}"
    else:
        limit = physical_memory()
        where = f"the {show_bytes(limit or 0)} of memory of this machine"
    check_memory(net, cfg.batch_size, training=True, limit=limit, where=where,
                 activation_bytes=2 if amp in ("bf16", "fp16") else 4,
                 extra=data, extra_what=f"the data ({cfg.data}), held in memory")


@dataclass
class _Run:
    """What the epochs need, once set up."""

    net: Network
    data: Data
    model: torch.nn.Module   # what runs the batches (DDP, compiled)
    raw: torch.nn.Module     # the plain module, for state dicts
    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    steps_per_epoch: int


def train(cfg: TrainConfig, log=print) -> list[dict]:
    """Train `cfg.spec`; return the per-epoch metrics. Rank 0 logs and writes the run directory."""
    _validate(cfg)
    out = check_destination(cfg.out, "--out", directory=True)
    require(cfg.data)
    if cfg.init_from is not None and not os.path.isfile(cfg.init_from):
        raise UsageError(f"--init-from {cfg.init_from}: no such file")
    if cfg.resume and not os.path.isfile(os.path.join(out, "last.pt")):
        raise DataError(f"--resume: there is no {os.path.join(out, 'last.pt')} to resume from "
                        "(train without --resume first)")
    rank, world, local_rank = _world()
    distributed = world > 1
    main_rank = rank == 0
    say = log if main_rank else (lambda *a, **k: None)
    can_plot = plotting()
    if not can_plot:
        say(NO_MATPLOTLIB)
    device = _device(cfg.device, local_rank)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    run = _set_up(cfg, device, world, say)

    os.makedirs(out, exist_ok=True)
    if main_rank:  # a run killed while writing leaves a temporary file: never a half checkpoint, and cleaned here
        for name in os.listdir(out):
            if name.startswith(".") and name.endswith(".tmp"):
                os.unlink(os.path.join(out, name))
    last_path, best_path = os.path.join(out, "last.pt"), os.path.join(out, "best.pt")
    start, best, history = 0, -1.0, []
    if cfg.resume:
        start, best, history = checkpoint.resume(last_path, run.net, run.raw, run.optimizer, run.scheduler,
                                                 run.scaler)
        say(f"resumed from {last_path} after epoch {start}")
    net, data = run.net, run.data
    say(f"training {net.name} ({net.params:,} params, {format_count(net.macs)} MACs per image) on {data.name}: "
        f"{len(data.train_x)} train / {len(data.val_x)} val, {data.classes} classes, "
        f"{run.device}{f' x{world}' if distributed else ''}, amp {_amp(run)}, "
        f"batch {cfg.batch_size}")

    for epoch in range(start, cfg.epochs):
        record = _epoch(cfg, run, epoch, rank, world, main_rank)
        history.append(record)
        if main_rank:
            state = {"model": run.raw.state_dict(), "optimizer": run.optimizer.state_dict(),
                     "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(), "epoch": epoch + 1,
                     "best_val_acc": max(best, record["val_acc"]), "history": history,
                     "rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else [],
                     "network": net.name, "config": {k: v for k, v in asdict(cfg).items() if k != "overrides"},
                     "overrides": {k: str(v) for k, v in cfg.overrides.items()}, "spec": net.sources.get(net.path)}
            checkpoint.save(state, last_path)
            if record["val_acc"] > best:
                checkpoint.save(state, best_path)
            lines = "".join(json.dumps(r) + "\n" for r in history)
            write_atomically(os.path.join(out, "metrics.jsonl"), lambda f: f.write(lines.encode()))
            say(f"epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f}"
                f" | val loss {record['val_loss']:.4f} acc {record['val_acc']:.4f} | lr {record['lr']:.4g} | "
                f"{record['images_per_s']:.0f} images/s")
        best = max(best, record["val_acc"])
    if main_rank and history and can_plot:
        try:
            plot(history, os.path.join(out, "curves.png"), net.name)
        except ImportError as exc:  # a matplotlib that imports but cannot plot: the run itself succeeded
            say(f"note: curves.png not drawn: {exc}")
    if distributed:
        dist.barrier()
    return history


def _amp(run: _Run) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(run.dtype, "off")


def _set_up(cfg: TrainConfig, device: torch.device, world: int, say) -> _Run:
    """The spec, its memory check, the data, the model (transferred, frozen, wrapped) and the optimizer."""
    cuda, distributed = device.type == "cuda", world > 1
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    amp = {"auto": "bf16" if cuda else "off"}.get(cfg.amp, cfg.amp)
    if amp not in ("bf16", "fp16", "off"):
        raise UsageError(f"--amp must be bf16, fp16 or off, not {cfg.amp!r}")
    channels_last = cuda if cfg.channels_last is None else cfg.channels_last
    torch.manual_seed(cfg.seed)

    net = load(cfg.spec, network=cfg.network, input_shape=cfg.input_shape, **cfg.overrides)
    unknown = [name for name in cfg.freeze if name not in {p.name for p in net.parts}]
    if unknown:  # before the data is read
        raise UsageError(f"--freeze {unknown[0]}: no such part of {net.name}; its parts are "
                         f"{', '.join(p.name for p in net.parts)}")
    _check_memory(net, cfg, device, amp)
    data = load_data(cfg.data, net.input_shape, cfg.seed)
    if data.classes != net.output_shape[0]:
        if "classes" not in net.parameters:
            raise DataError(f"the data has {data.classes} classes, `{net.name}` outputs {net.output_shape[0]} and "
                            "has no `classes` parameter to change")
        say(f"note: {data.name} has {data.classes} classes; setting classes={data.classes} "
            f"(the spec says {net.parameters['classes']})")
        net = load(cfg.spec, network=cfg.network, input_shape=cfg.input_shape,
                   **{**cfg.overrides, "classes": data.classes})
    model = net.to_torch()
    if cfg.init_from:
        checkpoint.init_from(net, model, cfg.init_from, strict=cfg.strict, say=say)
    checkpoint.freeze(model, net, cfg.freeze)
    if cfg.sync_bn and distributed:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    raw = model
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if cfg.compile:
        model = torch.compile(model)

    per_rank = math.ceil(len(data.train_x) / world)
    steps_per_epoch = max(1, math.ceil(per_rank / cfg.batch_size))
    params = [p for p in raw.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, steps_per_epoch, cfg))
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    if cuda:  # keep the (small) data sets on the GPU; else pinned, for non-blocking copies
        size = sum(t.numel() * t.element_size() for t in (data.train_x, data.val_x))
        move = (lambda t: t.to(device)) if size < 8e9 else (lambda t: t.pin_memory())
        data.train_x, data.train_y, data.val_x, data.val_y = map(move, (data.train_x, data.train_y, data.val_x,
                                                                         data.val_y))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return _Run(net, data, model, raw, device, dtype, channels_last, optimizer, scheduler, scaler, steps_per_epoch)


def _epoch(cfg: TrainConfig, run: _Run, epoch: int, rank: int, world: int, main_rank: bool) -> dict:
    """One epoch of training and the validation after it: the epoch's metrics record."""
    started = time.perf_counter()
    run.model.train()
    data, device = run.data, run.device
    order = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
    order = order[rank::world]  # each rank its share, as DistributedSampler does
    g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch + 7919)
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
    with Progress(main_rank, epoch, cfg.epochs, run.steps_per_epoch) as advance:
        for i in range(0, len(order), cfg.batch_size):
            index = order[i:i + cfg.batch_size]
            x, y = data.train_x[index], data.train_y[index]
            if data.augment:
                x = augment_batch(x, g)
            x = x.to(device, non_blocking=True)
            if run.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=run.dtype, enabled=run.dtype is not None):
                logits = run.model(x)
                loss = F.cross_entropy(logits.float(), y)
            run.optimizer.zero_grad(set_to_none=True)
            run.scaler.scale(loss).backward()
            run.scaler.step(run.optimizer)
            run.scaler.update()
            run.scheduler.step()
            totals += torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)],
                                   dtype=torch.float64)
            advance(totals[0].item() / totals[2].item(), totals[1].item() / totals[2].item(),
                    totals[2].item() / (time.perf_counter() - started))
    seconds = time.perf_counter() - started
    if world > 1:
        dist.all_reduce(totals)
    val_loss, val_acc = _evaluate(run, cfg.batch_size, rank, world)
    return {"epoch": epoch + 1, "train_loss": totals[0].item() / totals[2].item(),
            "train_acc": totals[1].item() / totals[2].item(), "val_loss": val_loss, "val_acc": val_acc,
            "lr": run.optimizer.param_groups[0]["lr"], "images_per_s": totals[2].item() / seconds,
            "seconds": seconds}


@torch.no_grad()
def _evaluate(run: _Run, batch_size: int, rank: int, world: int) -> tuple[float, float]:
    run.model.eval()
    data, device = run.data, run.device
    totals = torch.zeros(3, dtype=torch.float64)
    index = torch.arange(len(data.val_x))[rank::world]
    for i in range(0, len(index), batch_size):
        part = index[i:i + batch_size]
        x, y = data.val_x[part].to(device), data.val_y[part].to(device)
        if run.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=run.dtype, enabled=run.dtype is not None):
            logits = run.model(x).float()
        totals += torch.tensor([F.cross_entropy(logits, y, reduction="sum").item(),
                                (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(totals)
    return totals[0].item() / max(totals[2].item(), 1), totals[1].item() / max(totals[2].item(), 1)
