"""The training loop: SGD by the recipe, AMP on CUDA, DDP under torchrun, lossless checkpoints.

No host synchronisation per step: the loss and the hits are summed on the device (metrics.Meter)
and read every `--log-every` steps; the optimizer is fused on CUDA (foreach on the CPU) and the
gradients are set to None, not zeroed.

Resumable to the bit on CPU: the data order and the augmentation of epoch e come from generators
seeded with (seed, e) (and the sample or step), and each checkpoint holds the model, optimizer,
scheduler, EMA, the running sums, the global RNG state, the step within the epoch and the run's
settings, written atomically. `--resume` restores those settings (checkpoint.restored). A run stops at
the end of an epoch, or at the optimizer step when `--max-steps` or `--max-time` runs out (the host's
clock, read after every step); it restarts from there and replays the rest exactly.

A run directory that holds a run is refused, unless `--resume` continues it or `--overwrite` replaces it.

Everything that can fail for a reason the user can fix (the run directory, a missing package, a
spec too large for memory, a bad --freeze, the data) is checked before the model is built.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..files import check_destination
from ..library import UsageError
from ..memory import check_memory, physical_memory, show_bytes
from ..network import Network
from ..pipeline import load
from ..units import format_count
from . import checkpoint, recipe
from .config import TrainConfig
from .data import DataError, examples, require
from .metrics import Log, Meter, require_tensorboard
from .progress import NO_MATPLOTLIB, Progress, plot, plotting
from .sources import Source, Where, memory_layout, open_source

STREAMED = ("imagefolder", "wds")
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "curves.png", "tensorboard")  # what a run writes in RUN_DIR


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


def _check_memory(net: Network, cfg: TrainConfig, batch_size: int, device: torch.device, amp: str) -> None:
    """E0506 before the data is read or the model built: a batch of the spec must fit the device."""
    cuda = device.type == "cuda"
    data = 0 if cuda else (examples(cfg.data, net.input_shape) or 0) * math.prod(net.input_shape) * 4  # on the host
    limit: int | None
    if cfg.max_memory:
        limit, where = cfg.max_memory, f"--max-memory {show_bytes(cfg.max_memory)}"
    elif cuda:
        limit = torch.cuda.mem_get_info(device)[0]
        where = f"the {show_bytes(limit)} free on {device}"
    else:
        limit = physical_memory()
        where = f"the {show_bytes(limit or 0)} of memory of this machine"
    check_memory(
        net,
        batch_size,
        training=True,
        limit=limit,
        where=where,
        activation_bytes=2 if amp in ("bf16", "fp16") else 4,
        extra=data,
        extra_what=f"the data ({cfg.data}), held in memory",
    )


@dataclass
class _Run:
    """What the epochs need, once set up."""

    cfg: TrainConfig  # with the recipe's values filled in
    hyper: recipe.Resolved  # those values, none of them None
    net: Network
    source: Source
    model: torch.nn.Module  # what runs the batches (DDP, compiled)
    raw: torch.nn.Module  # the plain module, for state dicts
    ema: torch.optim.swa_utils.AveragedModel | None
    device: torch.device
    dtype: torch.dtype | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    steps_per_epoch: int  # micro-batches
    deadline: _Deadline | None = None  # --max-time, set when the epochs start
    frozen: int = 0  # parameters frozen by --freeze


def train(cfg: TrainConfig, log=print) -> list[dict]:
    """Train `cfg.spec`; return the per-epoch metrics. Rank 0 logs and writes the run directory."""
    recipe.validate(cfg)
    out = check_destination(cfg.out, "--out", directory=True)
    assert out is not None  # cfg.out is a path, never None
    rank, world, local_rank = _world()
    distributed, main_rank = world > 1, rank == 0
    say = log if main_rank else (lambda *a, **k: None)
    last_path, best_path = os.path.join(out, "last.pt"), os.path.join(out, "best.pt")
    resumed = None
    if cfg.resume:
        if cfg.overwrite:
            raise UsageError("--resume continues the run in RUN_DIR and --overwrite replaces it: give one of them")
        resumed = checkpoint.read(last_path)
        cfg = checkpoint.restored(cfg, resumed, out, say)
    elif not cfg.overwrite:
        held = [name for name in RUN_FILES if os.path.exists(os.path.join(out, name))]
        if held:
            raise UsageError(
                f"--out {out} holds a run ({', '.join(held)}): give --resume to continue it, or "
                "--overwrite to replace it"
            )
    require(cfg.data)
    require_tensorboard(cfg.log)
    if cfg.init_from is not None and not cfg.resume and not os.path.isfile(cfg.init_from):
        raise UsageError(f"--init-from {cfg.init_from}: no such file")
    can_plot = plotting()
    if not can_plot:
        say(NO_MATPLOTLIB)
    device = _device(cfg.device, local_rank)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    run = _set_up(cfg, device, rank, world, say)
    cfg, hyper = run.cfg, run.hyper

    os.makedirs(out, exist_ok=True)
    if main_rank:  # a run killed while writing leaves a temporary file: never a half checkpoint, and cleaned here
        for name in os.listdir(out):
            if name.startswith(".") and name.endswith(".tmp"):
                os.unlink(os.path.join(out, name))
        held = [name for name in RUN_FILES if os.path.lexists(os.path.join(out, name))]
        if cfg.overwrite and held:  # the run replaced: none of its files may pass for the new run's
            for name in held:
                path = os.path.join(out, name)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
            say(f"--overwrite: removed the run in {out} ({', '.join(held)})")
    start, start_step, meter_state, best, history = 0, 0, None, None, []
    if resumed is not None:
        checkpoint.resume(resumed, last_path, run.net, run.raw, run.optimizer, run.scheduler, run.scaler, run.ema)
        start, start_step, meter_state = resumed["epoch"], resumed.get("step", 0), resumed.get("meter")
        best, history = resumed["best_val_acc"], [r for r in resumed["history"] if not r.get("partial")]
        best = None if best is None or best < 0 else best  # older checkpoints wrote -1 for none
        say(f"resumed from {last_path} after epoch {start}" + (f", step {start_step}" if start_step else ""))
        if start >= hyper.epochs:
            say(f"the run in {out} has trained all its {hyper.epochs} epochs; --epochs N continues it to N")
    net, source = run.net, run.source
    if source.note:
        say(source.note)
    say(
        f"training {net.name} ({net.params:,} params, {format_count(net.macs)} MACs per image) on {source.name}: "
        f"{source.train_count} train / {source.val_count} val, {source.classes} classes, "
        f"{run.device}{f' x{world}' if distributed else ''}, amp {_amp(run)}, batch {hyper.batch_size}"
        f"{f' x{cfg.accumulate} accumulated' if cfg.accumulate > 1 else ''}, recipe {cfg.recipe}: "
        f"{hyper.epochs} epochs, lr {hyper.lr:g}, {hyper.schedule}"
    )
    if run.frozen:
        say(
            f"--freeze {' '.join(cfg.freeze)}: {run.frozen:,} parameters frozen; their norms keep their running "
            "statistics (eval mode)"
        )
    metrics = Log(out, cfg.log, main_rank)
    run.deadline = deadline = _Deadline(cfg.max_time, distributed)
    try:
        for epoch in range(start, hyper.epochs):
            record, step, meter = _epoch(
                run, epoch, start_step if epoch == start else 0, meter_state, main_rank, metrics
            )
            meter_state = None
            stopped = step < run.steps_per_epoch  # by a budget, within the epoch
            history.append(record)
            improved = record["val_acc"] is not None and (best is None or record["val_acc"] > best)
            if improved:
                best = record["val_acc"]
            if record["val_acc"] is None and not any(r["val_acc"] is None for r in history[:-1]):
                say(
                    "note: there is no validation data: val_loss, val_acc and val_top5 are null in metrics.jsonl "
                    "and best.pt is not written (last.pt is the run's checkpoint)"
                )
            if main_rank:
                state = {
                    "model": run.raw.state_dict(),
                    "optimizer": run.optimizer.state_dict(),
                    "scheduler": run.scheduler.state_dict(),
                    "scaler": run.scaler.state_dict(),
                    "ema": run.ema.state_dict() if run.ema is not None else None,
                    "epoch": epoch if stopped else epoch + 1,
                    "step": step if stopped else 0,
                    "meter": meter.state() if stopped else None,
                    "best_val_acc": best,
                    "history": history,
                    "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else [],
                    "network": net.name,
                    "config": {k: v for k, v in asdict(cfg).items() if k not in ("overrides", "explicit")},
                    "overrides": {k: str(v) for k, v in cfg.overrides.items()},
                    "spec": net.sources.get(net.path),
                }
                checkpoint.save(state, last_path)
                if improved:
                    checkpoint.save(state, best_path)
                metrics.epochs(history)
                say(_line(record, hyper.epochs))
            if stopped or (epoch + 1 < hyper.epochs and (_steps_done(run) or deadline.settle())):
                say(
                    f"stopped by {'--max-steps' if _steps_done(run) else '--max-time'} after "
                    f"{run.scheduler.last_epoch} optimizer steps; --resume continues from here"
                )
                break
    finally:
        metrics.close()
        source.close()
    if main_rank and history and can_plot:
        try:
            plot(history, os.path.join(out, "curves.png"), net.name)
        except ImportError as exc:  # a matplotlib that imports but cannot plot: the run itself succeeded
            say(f"note: curves.png not drawn: {exc}")
    if distributed:
        dist.barrier()
    return history


def _line(record: dict, epochs: int) -> str:
    if record["val_acc"] is None:
        val = "no validation data"
    else:
        ema = f" | ema acc {record['val_acc_ema']:.4f}" if record.get("val_acc_ema") is not None else ""
        val = f"val loss {record['val_loss']:.4f} acc {record['val_acc']:.4f} top-5 {record['val_top5']:.4f}{ema}"
    return (
        f"epoch {record['epoch']}/{epochs}{' (stopped)' if record.get('partial') else ''}: train loss "
        f"{record['train_loss']:.4f} acc {record['train_acc']:.4f} | {val} | lr {record['lr']:.4g} | "
        f"{record['images_per_s']:.0f} images/s"
    )


def _amp(run: _Run) -> str:
    names: dict[torch.dtype | None, str] = {torch.bfloat16: "bf16", torch.float16: "fp16"}
    return names.get(run.dtype, "off")


def _set_up(cfg: TrainConfig, device: torch.device, rank: int, world: int, say) -> _Run:
    """The spec, the recipe, its memory check, the data, the model (transferred, frozen, wrapped), the optimizer."""
    cuda, distributed = device.type == "cuda", world > 1
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    amp = {"auto": "bf16" if cuda else "off"}.get(cfg.amp, cfg.amp)
    if amp not in ("bf16", "fp16", "off"):
        raise UsageError(f"--amp must be bf16, fp16 or off, not {cfg.amp!r}")
    torch.manual_seed(cfg.seed)

    net = load(cfg.spec, network=cfg.network, input_shape=cfg.input_shape, **cfg.overrides)
    channels_last = memory_layout(cfg.channels_last, net.input_shape)
    chosen = recipe.choose(cfg, net.input_shape, cfg.data.partition(":")[0] in STREAMED)
    cfg = recipe.resolve(cfg, chosen, world)
    hyper = recipe.Resolved.of(cfg)
    unknown = [name for name in cfg.freeze if name not in {p.name for p in net.parts}]
    if unknown:  # before the data is read
        raise UsageError(
            f"--freeze {unknown[0]}: no such part of {net.name}; its parts are {', '.join(p.name for p in net.parts)}"
        )
    _check_memory(net, cfg, hyper.batch_size, device, amp)
    where = Where(
        device,
        rank,
        world,
        cfg.seed,
        hyper.batch_size,
        channels_last,
        cfg.workers,
        cfg.on_bad_image,
        cfg.decode,
        cfg.epoch_samples,
    )
    source = open_source(cfg.data, net.input_shape, where, default_classes=net.output_shape[0])
    if source.classes != net.output_shape[0]:
        if "classes" not in net.parameters:
            raise DataError(
                f"the data has {source.classes} classes, `{net.name}` outputs {net.output_shape[0]} and "
                "has no `classes` parameter to change"
            )
        say(
            f"note: {source.name} has {source.classes} classes; setting classes={source.classes} "
            f"(the spec says {net.parameters['classes']})"
        )
        net = load(
            cfg.spec, network=cfg.network, input_shape=cfg.input_shape, **{**cfg.overrides, "classes": source.classes}
        )
    model = net.to_torch()
    if cfg.init_from and not cfg.resume:  # a resumed run's weights are its last.pt's
        checkpoint.init_from(net, model, cfg.init_from, strict=cfg.strict, say=say)
    if cfg.sync_bn and distributed:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    frozen = checkpoint.freeze(model, net, cfg.freeze)  # after the conversion: the modules it pins are the run's
    layout = torch.channels_last if len(net.input_shape) == 3 else torch.channels_last_3d
    model = model.to(device, memory_format=layout if channels_last else torch.preserve_format)
    raw = model
    ema = None
    if cfg.ema is not None:  # an average of the weights and the norms' running statistics, on the device
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(raw, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if cfg.compile or cfg.cuda_graphs:
        model = torch.compile(model, mode="reduce-overhead" if cfg.cuda_graphs else None)

    groups = recipe.parameter_groups(raw, hyper.weight_decay, cfg.no_decay_norm_bias)
    optimizer = torch.optim.SGD(
        groups,
        lr=hyper.lr,
        momentum=cfg.momentum,
        weight_decay=hyper.weight_decay,
        **({"fused": True} if cuda else {"foreach": True}),
    )
    updates_per_epoch = math.ceil(source.steps_per_epoch / cfg.accumulate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: recipe.lr_factor(s, updates_per_epoch, cfg, chosen.milestones)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return _Run(
        cfg,
        hyper,
        net,
        source,
        model,
        raw,
        ema,
        device,
        dtype,
        optimizer,
        scheduler,
        scaler,
        source.steps_per_epoch,
        frozen=frozen,
    )


def _forward(run: _Run, x: torch.Tensor) -> torch.Tensor:
    """The model on a training batch. A batch of one vector (the epoch's last, say 9 samples in batches of 8)
    cannot pass a BatchNorm in training mode, which needs more than one value per channel: a data error."""
    try:
        return run.model(x)
    except ValueError as exc:
        if "Expected more than 1 value per channel" not in str(exc):
            raise
        raise DataError(
            f"a training batch of {len(x)} sample of {'x'.join(map(str, x.shape[1:]))} gives a BatchNorm one value "
            f"per channel ({run.source.train_count} training samples in batches of {run.hyper.batch_size}): give a "
            "--batch-size that leaves more than one sample for the last batch"
        ) from None


def _steps_done(run: _Run) -> bool:
    return run.cfg.max_steps is not None and run.scheduler.last_epoch >= run.cfg.max_steps


class _Deadline:
    """--max-time, read on the host's clock after every optimizer step: free, no device synchronisation.

    Under torchrun every process must stop at the same step. Each one's verdict is all-reduced (max) over
    a CPU (gloo) group asynchronously: `poll` returns the verdict all-reduced at the previous step, which
    has long arrived, so every process stops at the step after the first clock ran out. `settle`, between
    epochs, waits for the verdict of now.
    """

    def __init__(self, seconds: float | None, distributed: bool):
        self.seconds, self.started = seconds, time.perf_counter()
        self.pending: tuple[dist.Work, torch.Tensor] | None = None
        self.group: dist.ProcessGroup | None = None
        if distributed and seconds is not None:
            group = dist.new_group(backend="gloo")
            assert isinstance(group, dist.ProcessGroup)  # a group of all the processes: this one is in it
            self.group = group

    def _over(self) -> bool:
        assert self.seconds is not None  # asked only with --max-time
        return time.perf_counter() - self.started >= self.seconds

    def _previous(self) -> bool:
        if self.pending is None:
            return False
        work, flag = self.pending
        work.wait()
        self.pending = None
        return float(flag[0]) > 0

    def poll(self) -> bool:
        if self.seconds is None:
            return False
        if self.group is None:
            return self._over()
        verdict = self._previous()
        if not verdict:  # (every process stops here together: none leaves a reduction pending)
            flag = torch.tensor([float(self._over())])
            work = dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group, async_op=True)
            assert work is not None  # async_op: a handle to wait on
            self.pending = (work, flag)
        return verdict

    def settle(self) -> bool:
        if self.seconds is None:
            return False
        if self.group is None:
            return self._over()
        verdict = self._previous()
        flag = torch.tensor([float(self._over())])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return verdict or float(flag[0]) > 0


def _epoch(run: _Run, epoch: int, start: int, meter_state, main_rank: bool, metrics: Log) -> tuple[dict, int, Meter]:
    """One epoch (from micro-step `start`) and the validation after it: (record, steps done, meter)."""
    cfg, hyper, started = run.cfg, run.hyper, time.perf_counter()
    deadline = run.deadline
    assert deadline is not None  # set when the epochs start
    run.model.train()
    meter = Meter(run.device, meter_state)
    first_count = meter.count
    acc = cfg.accumulate
    step = start
    no_sync = getattr(run.model, "no_sync", None)  # DDP's: no all-reduce of the gradients of a micro-step
    with Progress(main_rank, epoch, hyper.epochs, run.steps_per_epoch, start) as advance:
        for x, y in run.source.train_batches(epoch, start):
            last_micro = (step + 1) % acc == 0 or step + 1 == run.steps_per_epoch
            sync = no_sync() if (acc > 1 and not last_micro and no_sync is not None) else None
            with sync or nullcontext():
                with torch.autocast(run.device.type, dtype=run.dtype, enabled=run.dtype is not None):
                    logits = _forward(run, x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                run.scaler.scale(loss / acc if acc > 1 else loss).backward()
            meter.add(loss, logits, y)
            step += 1
            if last_micro:
                run.scaler.step(run.optimizer)
                run.scaler.update()
                run.optimizer.zero_grad(set_to_none=True)
                run.scheduler.step()
                if run.ema is not None:
                    run.ema.update_parameters(run.raw)
            if step % cfg.log_every == 0 or step == run.steps_per_epoch:
                seen = meter.read()
                rate = (meter.count - first_count) / max(time.perf_counter() - started, 1e-9)
                advance(step, seen["loss"], seen["acc"], rate)
                metrics.scalars(
                    "train",
                    {"loss": seen["loss"], "acc": seen["acc"], "lr": run.optimizer.param_groups[0]["lr"]},
                    run.scheduler.last_epoch,
                )
            if last_micro and (_steps_done(run) or deadline.poll()):
                break
    seconds = time.perf_counter() - started
    train_ = meter.read(reduce=dist.is_initialized())
    none = {"loss": None, "acc": None, "top5": None}
    val = _evaluate(run, run.model) or none  # no validation data: null, never an accuracy of 0
    record = {
        "epoch": epoch + 1,
        "train_loss": train_["loss"],
        "train_acc": train_["acc"],
        "val_loss": val["loss"],
        "val_acc": val["acc"],
        "val_top5": val["top5"],
        "lr": run.optimizer.param_groups[0]["lr"],
        "steps": run.scheduler.last_epoch,
        "images_per_s": (meter.count - first_count) * (dist.get_world_size() if dist.is_initialized() else 1) / seconds,
        "seconds": seconds,
    }
    if run.ema is not None:
        ema = _evaluate(run, run.ema.module) or none
        record.update(val_loss_ema=ema["loss"], val_acc_ema=ema["acc"], val_top5_ema=ema["top5"])
    if step < run.steps_per_epoch:
        record["partial"] = True
    metrics.scalars(
        "val", {k: v for k, v in record.items() if k.startswith("val_") and v is not None}, run.scheduler.last_epoch
    )
    return record, step, meter


@torch.no_grad()
def _evaluate(run: _Run, model: torch.nn.Module) -> dict[str, float] | None:
    """{loss, acc, top5} on the validation data; None when there is none (in all processes together)."""
    model.eval()
    meter = Meter(run.device)
    for x, y in run.source.val_batches():
        with torch.autocast(run.device.type, dtype=run.dtype, enabled=run.dtype is not None):
            logits = model(x).float()
        meter.add(F.cross_entropy(logits, y), logits, y)
    seen = meter.read(reduce=dist.is_initialized())
    return seen if seen["count"] else None
