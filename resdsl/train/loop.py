"""The training loop: SGD with warm-up, AMP on CUDA, DDP under torchrun, lossless checkpoints.

Resumable to the bit on CPU: the data order and the augmentation of epoch e
come from generators seeded with (seed, e), and each checkpoint holds the
model, optimizer, scheduler, epoch and the global RNG state, written
atomically at the end of every epoch. A run killed at any moment restarts
from the last finished epoch and replays the next one exactly.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
from dataclasses import asdict

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..errors import SpecError
from ..files import write_atomically
from ..library import UsageError
from ..network import load
from ..backend.weights import check_state_dict, read_state_dict
from .config import TrainConfig
from .data import Data, DataError, augment_batch, load_data


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


def train(cfg: TrainConfig, log=print) -> list[dict]:
    """Train `cfg.spec`; return the per-epoch metrics. Rank 0 logs and writes the run directory."""
    rank, world, local_rank = _world()
    distributed = world > 1
    device = _device(cfg.device, local_rank)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main_rank = rank == 0
    say = log if main_rank else (lambda *a, **k: None)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    amp = {"auto": "bf16" if cuda else "off"}.get(cfg.amp, cfg.amp)
    if amp not in ("bf16", "fp16", "off"):
        raise UsageError(f"--amp must be bf16, fp16 or off, not {cfg.amp!r}")
    channels_last = cuda if cfg.channels_last is None else cfg.channels_last
    torch.manual_seed(cfg.seed)

    net = load(cfg.spec, network=cfg.network, input_shape=cfg.input_shape, **cfg.overrides)
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
        _init_from(model, cfg.init_from, say)
    _freeze(model, net, cfg.freeze)
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
    os.makedirs(cfg.out, exist_ok=True)
    if main_rank:  # a run killed while writing leaves a temporary file: never a half checkpoint, and cleaned here
        for name in os.listdir(cfg.out):
            if name.startswith(".") and name.endswith(".tmp"):
                os.unlink(os.path.join(cfg.out, name))
    last_path, best_path = os.path.join(cfg.out, "last.pt"), os.path.join(cfg.out, "best.pt")
    start, best, history = 0, -1.0, []
    if cfg.resume:
        start, best, history = _resume(last_path, net, raw, optimizer, scheduler, scaler)
        say(f"resumed from {last_path} after epoch {start}")
    say(f"training {net.name} ({net.params:,} params) on {data.name}: {len(data.train_x)} train / "
        f"{len(data.val_x)} val, {data.classes} classes, {device}{f' x{world}' if distributed else ''}, "
        f"amp {amp}, batch {cfg.batch_size}")

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    for epoch in range(start, cfg.epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
        order = order[rank::world]  # each rank its share, as DistributedSampler does
        g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch + 7919)
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
        with _progress(main_rank, epoch, cfg.epochs, steps_per_epoch) as advance:
            for i in range(0, len(order), cfg.batch_size):
                index = order[i:i + cfg.batch_size]
                x, y = data.train_x[index], data.train_y[index]
                if data.augment:
                    x = augment_batch(x, g)
                x = x.to(device, non_blocking=True)
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = model(x)
                    loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                totals += torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)],
                                       dtype=torch.float64)
                advance(totals[0].item() / totals[2].item(), totals[1].item() / totals[2].item(),
                        totals[2].item() / (time.perf_counter() - started))
        seconds = time.perf_counter() - started
        if distributed:
            dist.all_reduce(totals)
        val_loss, val_acc = _evaluate(model, data, device, dtype, channels_last, cfg.batch_size, rank, world)
        record = {"epoch": epoch + 1, "train_loss": totals[0].item() / totals[2].item(),
                  "train_acc": totals[1].item() / totals[2].item(), "val_loss": val_loss, "val_acc": val_acc,
                  "lr": optimizer.param_groups[0]["lr"], "images_per_s": totals[2].item() / seconds,
                  "seconds": seconds}
        history.append(record)
        if main_rank:
            state = {"model": raw.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch + 1,
                     "best_val_acc": max(best, val_acc), "history": history, "rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state_all() if cuda else [], "network": net.name,
                     "config": {k: v for k, v in asdict(cfg).items() if k != "overrides"},
                     "overrides": {k: str(v) for k, v in cfg.overrides.items()}, "spec": net.sources.get(net.path)}
            _save(state, last_path)
            if val_acc > best:
                _save(state, best_path)
            lines = "".join(json.dumps(r) + "\n" for r in history)
            write_atomically(os.path.join(cfg.out, "metrics.jsonl"), lambda f: f.write(lines.encode()))
            say(f"epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f}"
                f" | val loss {val_loss:.4f} acc {val_acc:.4f} | lr {record['lr']:.4g} | "
                f"{record['images_per_s']:.0f} images/s")
        best = max(best, val_acc)
    if main_rank and history:
        _plot(history, os.path.join(cfg.out, "curves.png"), net.name)
    if distributed:
        dist.barrier()
    return history


@torch.no_grad()
def _evaluate(model, data: Data, device, dtype, channels_last, batch_size, rank, world) -> tuple[float, float]:
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64)
    index = torch.arange(len(data.val_x))[rank::world]
    for i in range(0, len(index), batch_size):
        part = index[i:i + batch_size]
        x, y = data.val_x[part].to(device), data.val_y[part].to(device)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x).float()
        totals += torch.tensor([F.cross_entropy(logits, y, reduction="sum").item(),
                                (logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(totals)
    return totals[0].item() / max(totals[2].item(), 1), totals[1].item() / max(totals[2].item(), 1)


def _save(state: dict, path: str) -> None:
    """torch.save to a temporary file, fsync, rename: a kill never leaves half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomically(path, lambda f: f.write(buffer.getvalue()))


def _resume(path, net, model, optimizer, scheduler, scaler):
    if not os.path.isfile(path):
        raise DataError(f"--resume: there is no {path} to resume from (train without --resume first)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = state["model"]
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is the same user-facing error
        raise DataError(f"--resume: {path} is not a resdsl training checkpoint ({type(exc).__name__})") from None
    problems = check_state_dict(net, model, weights, path)
    if problems:
        raise SpecError(problems[:20], net.sources)
    model.load_state_dict(weights)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["epoch"], state["best_val_acc"], list(state["history"])


def _init_from(model: torch.nn.Module, path: str, say) -> None:
    """Transfer learning: load every tensor whose name and shape match; the rest keep their fresh init."""
    source = read_state_dict(path)
    own = model.state_dict()
    matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    fresh = sorted({k.rsplit(".", 1)[0] for k in own if k not in matched})
    say(f"--init-from {path}: loaded {len(matched)} of {len(own)} tensors"
        + (f"; re-initialised {', '.join(fresh[:8])}{' …' if len(fresh) > 8 else ''}" if fresh else ""))


def _freeze(model: torch.nn.Module, net, stages: tuple[str, ...]) -> None:
    known = [s.name for s in net.stages] + ["stem", "head"]
    for stage in stages:
        if stage not in known:
            raise UsageError(f"--freeze {stage}: no such part; parts: {', '.join(known)}")
        prefixes = tuple(n for n, d in net.ops.nodes.items() if d["part"] == stage)
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[0] in prefixes:
                p.requires_grad_(False)


class _progress:
    """A rich progress bar (loss, accuracy, images/s) on a terminal; nothing otherwise, where the
    one-line summary per epoch says it all."""

    def __init__(self, enabled: bool, epoch: int, epochs: int, steps: int):
        self.enabled = enabled and sys.stdout.isatty()
        self.epoch, self.epochs, self.steps = epoch, epochs, steps

    def __enter__(self):
        if not self.enabled:
            return lambda loss, acc, rate: None
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        self.bar = Progress(TextColumn(f"epoch {self.epoch + 1}/{self.epochs}"), BarColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  "
                                       "{task.fields[rate]:.0f} images/s"), TimeRemainingColumn(), transient=True)
        self.bar.start()
        task = self.bar.add_task("train", total=self.steps, loss=float("nan"), acc=0.0, rate=0.0)
        return lambda loss, acc, rate: self.bar.update(task, advance=1, loss=loss, acc=acc, rate=rate)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


def _plot(history: list[dict], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (("loss", left), ("acc", right)):
        axis.plot(epochs, [r[f"train_{key}"] for r in history], label="train")
        axis.plot(epochs, [r[f"val_{key}"] for r in history], label="val")
        axis.set_xlabel("epoch")
        axis.set_ylabel("accuracy" if key == "acc" else "loss")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomically(path, lambda f: f.write(buffer.getvalue()))
