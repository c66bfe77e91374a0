"""Checkpoints of a run: written whole or not at all, resumed to the bit, and transfer from others.

- `save`: torch.save into memory, then files.write_atomically (a kill never leaves half a
  checkpoint; a full disk is one line, `cannot write PATH: ...`, and the previous file stays);
- `read` and `restored`: `last.pt` and the run's settings it holds, which `--resume` restores (a
  setting given that conflicts with the run's is an error, but for those in CHANGEABLE);
- `resume`: the model, optimizer, scheduler, scaler, EMA and RNG states of `last.pt`;
- `init_from`: transfer learning, every tensor whose name and shape match; a loud warning (or,
  with `strict`, located E0601 errors) when more than the classifier the data changed is left out;
- `freeze`: the parts `resdsl summary` lists: no gradients, and their modules pinned in eval mode.
"""

from __future__ import annotations

import io
import os
import sys
import types
from collections.abc import Callable
from dataclasses import fields, replace
from typing import IO

import torch

from ..backend.weights import check_state_dict, read_state_dict
from ..errors import RunError, SpecError
from ..files import write_atomically
from ..library import UsageError
from ..network import Network
from .config import TrainConfig, given


def save(state: dict, path: str) -> None:
    """torch.save to memory, then a temporary file, fsync, rename."""
    buffer = io.BytesIO()
    torch.save(state, buffer)

    def write(f: IO[bytes]) -> None:
        f.write(buffer.getvalue())

    write_atomically(path, write)


def read(path: str) -> dict:
    """The checkpoint `--resume` continues from, or a one-line RunError."""
    if not os.path.isfile(path):
        raise RunError(f"--resume: there is no {path} to resume from (train without --resume first)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state["model"]
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is the same user-facing error
        raise RunError(f"--resume: {path} is not a resdsl training checkpoint ({type(exc).__name__})") from None
    return state


# What --resume lets change: how the run is carried out, not what it computes (`epochs` to extend or
# shorten what is left of it; its schedule then spans the new number).
CHANGEABLE = (
    "epochs",
    "workers",
    "device",
    "channels_last",
    "compile",
    "cuda_graphs",
    "log",
    "log_every",
    "on_bad_image",
    "decode",
    "max_memory",
    "strict",
)
# Never restored: the budgets of one invocation, and what says where and how to start.
BUDGETS = ("max_steps", "max_time")
NOT_RESTORED = ("spec", "out", "resume", "overwrite", "explicit") + BUDGETS
OPTIONS = {"overrides": "--set", "input_shape": "--input", "momentum": "momentum"}  # the rest: --field-name


def option(name: str) -> str:
    return OPTIONS.get(name, "--" + name.replace("_", "-"))


def _show(name: str, value) -> str:
    if value is None or value is False or value == ():
        return f"no {option(name)}"
    if value is True:
        return option(name)
    if name == "input_shape":
        return f"--input {'x'.join(map(str, value))}"
    if isinstance(value, (tuple, list)):
        return f"{option(name)} {' '.join(map(str, value))}"
    return f"{option(name)} {value}"


def restored(cfg: TrainConfig, state: dict, out: str, say: Callable[..., None]) -> TrainConfig:
    """`cfg` with the settings of the run `state` holds: a setting left out takes the run's value; one given
    that differs is a UsageError naming both, but for those in CHANGEABLE (`--epochs` no fewer than done)."""
    saved = dict(state.get("config") or {})
    if not saved:
        return cfg
    saved["overrides"] = dict(state.get("overrides") or {})
    mine, names = given(cfg), {f.name for f in fields(TrainConfig)}

    def refuse(what: str, theirs: str, option_: str) -> None:
        changeable = ", ".join(map(option, CHANGEABLE + BUDGETS))
        raise UsageError(
            f"--resume: the run in {out} was trained with {theirs}, not {what}; leave {option_} out "
            f"to keep the run's value (on --resume only {changeable} may change), or start a new run "
            "in another --out or with --overwrite"
        )

    values = {}
    for name, theirs in saved.items():
        if name not in names or name in NOT_RESTORED:
            continue
        if isinstance(theirs, list):
            theirs = tuple(theirs)
        value = getattr(cfg, name)
        if name not in mine or name in CHANGEABLE:
            values[name] = value if name in mine else theirs
            continue
        if name == "overrides":  # --set KEY=VALUE: each one given must be the run's
            for key, text in value.items():
                if theirs.get(key) != str(text):
                    refuse(
                        f"--set {key}={text}",
                        f"--set {key}={theirs[key]}" if key in theirs else f"no --set {key}",
                        "--set",
                    )
            values[name] = theirs
            continue
        if name == "recipe" and value == "auto":  # auto chose the run's recipe
            continue
        if (tuple(value) if isinstance(value, list) else value) != theirs:
            refuse(_show(name, value), _show(name, theirs), option(name))
    done = state.get("epoch", 0) + (1 if state.get("step") else 0)  # an epoch begun counts: it is finished
    if "epochs" in mine and saved.get("epochs") is not None and cfg.epochs != saved["epochs"]:
        if cfg.epochs < done:
            where = f"is in epoch {done}" if state.get("step") else f"has trained {done} epochs"
            raise UsageError(
                f"--resume: --epochs {cfg.epochs}, but the run in {out} {where}; give at least --epochs {done}"
            )
        say(
            f"--epochs {cfg.epochs}: the run in {out} was started with --epochs {saved['epochs']}; its schedule "
            f"now spans {cfg.epochs} epochs"
        )
    return replace(cfg, **values)


def resume(
    state: dict, path: str, net: Network, model: torch.nn.Module, optimizer, scheduler, scaler, ema=None
) -> None:
    """Load the checkpoint `state` (read from `path`) into the run's objects."""
    weights = state["model"]
    problems = check_state_dict(net, model, weights, path)
    if problems:
        raise SpecError(problems[:20], net.sources, total=len(problems))
    model.load_state_dict(weights)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    if ema is not None:
        if not state.get("ema"):
            raise RunError(f"--resume: {path} was trained without --ema; resume without it, or start a new run")
        ema.load_state_dict(state["ema"])
    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def _classifier(net: Network) -> str | None:
    """The last op with parameters: the one whose shape follows the data's number of classes."""
    owners = [name for name, data in net.ops.nodes.items() if data.params]
    return owners[-1] if owners else None


def init_from(
    net: Network,
    model: torch.nn.Module,
    path: str,
    *,
    strict: bool,
    say: Callable[..., None],
    warn: Callable[[str], None] | None = None,
) -> None:
    """Load every tensor of `path` whose name and shape match; the rest keep their fresh init.

    The classifier's tensors are expected to differ when the data has another number of classes.
    Any other difference (a checkpoint of another architecture, other names) is a loud warning on
    stderr, or with `strict` the located E0601 errors of weights.check_state_dict.
    """
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
    source = read_state_dict(path)
    own = model.state_dict()
    matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    head = _classifier(net)
    reshaped = {k for k in own if k in source and k not in matched and k.rsplit(".", 1)[0] == head}
    missing = [k for k in own if k not in matched and k not in reshaped]
    unused = [k for k in source if k not in own]
    if missing or unused:
        if strict:
            # the classifier's reshape is still expected: check it against its own tensors
            problems = check_state_dict(net, model, {**source, **{k: own[k] for k in reshaped}}, path)
            raise SpecError(problems[:50], net.sources, total=len(problems))

        def some(keys: list[str]) -> str:  # by module: `layer1.1.bn1`, not its five tensors
            names = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in keys))
            return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")

        warn(
            f"warning: --init-from {path} matched only {len(matched)} of {len(own)} tensors of {net.name}"
            + (f"; not loaded: {some(missing)}" if missing else "")
            + (f"; not in {net.name}: {some(unused)}" if unused else "")
            + ". Was it saved from another architecture? (--strict makes this an error)"
        )
    model.load_state_dict(matched, strict=False)
    fresh = sorted({k.rsplit(".", 1)[0] for k in own if k not in matched})
    say(
        f"--init-from {path}: loaded {len(matched)} of {len(own)} tensors"
        + (f"; re-initialised {', '.join(fresh[:8])}{' …' if len(fresh) > 8 else ''}" if fresh else "")
    )


def freeze(model: torch.nn.Module, net: Network, names: tuple[str, ...]) -> int:
    """Freeze the parts named, as `resdsl summary` lists them (stem, layer1, ..., head); return the number
    of parameters frozen.

    Their parameters get no gradients, and their modules stay in eval mode whatever `model.train()` says,
    so that a BatchNorm uses and keeps its running statistics, as detection frameworks freeze the stages of
    a backbone: the frozen parts' state dict stays bitwise as it was.
    """
    known = [p.name for p in net.parts]
    for name in names:
        if name not in known:
            raise UsageError(f"--freeze {name}: no such part of {net.name}; its parts are {', '.join(known)}")
    frozen, count = set(names), 0
    for param_name, p in model.named_parameters():
        if _part_of(net, param_name) in frozen:
            p.requires_grad_(False)
            count += p.numel()
    for module_name, module in model.named_modules():
        if module_name and _part_of(net, module_name + ".") in frozen:
            _pin_eval(module)
    return count


def _stay_in_eval(self: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    return torch.nn.Module.train(self, False)


def _pin_eval(module: torch.nn.Module) -> None:
    """Eval mode now and after every `train()` (an instance's own `train`, which its parents' `train()`
    call; copies, such as the EMA's, keep it)."""
    module.train = types.MethodType(_stay_in_eval, module)  # type: ignore[method-assign]  # this instance only
    module.eval()


def _part_of(net: Network, key: str) -> str | None:
    """The part of the op owning a parameter: its longest node-name prefix (an SE block's
    `layer1.0.se.fc1.weight` belongs to the op `layer1.0.se`; a layer scale's bare parameter
    `stages.0.blocks.0.gamma` is its op's own name)."""
    pieces = key.split(".")
    for cut in range(len(pieces), 0, -1):
        data = net.ops.nodes.get(".".join(pieces[:cut]))
        if data is not None:
            return data.part
    return None
