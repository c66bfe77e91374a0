"""Checkpoints of a run: written whole or not at all, resumed to the bit, and transfer from others.

- `save`: torch.save into memory, then files.write_atomically (a kill never leaves half a
  checkpoint; a full disk is one line, `cannot write PATH: ...`, and the previous file stays);
- `resume`: the model, optimizer, scheduler, scaler, EMA and RNG states of `last.pt`;
- `init_from`: transfer learning, every tensor whose name and shape match; a loud warning (or,
  with `strict`, located E0601 errors) when more than the classifier the data changed is left out;
- `freeze`: the parts `resdsl summary` lists.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Callable

import torch

from ..backend.weights import check_state_dict, read_state_dict
from ..errors import RunError, SpecError
from ..files import write_atomically
from ..library import UsageError
from ..network import Network


def save(state: dict, path: str) -> None:
    """torch.save to memory, then a temporary file, fsync, rename."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomically(path, lambda f: f.write(buffer.getvalue()))


def resume(path: str, net: Network, model: torch.nn.Module, optimizer, scheduler, scaler, ema=None) -> dict:
    """Load `path` into the run's objects; return the checkpoint (epoch, step, meter, best_val_acc, history)."""
    if not os.path.isfile(path):
        raise RunError(f"--resume: there is no {path} to resume from (train without --resume first)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = state["model"]
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is the same user-facing error
        raise RunError(f"--resume: {path} is not a resdsl training checkpoint ({type(exc).__name__})") from None
    problems = check_state_dict(net, model, weights, path)
    if problems:
        raise SpecError(problems[:20], net.sources)
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
    return state


def _classifier(net: Network) -> str | None:
    """The last op with parameters: the one whose shape follows the data's number of classes."""
    owners = [name for name, data in net.ops.nodes.items() if data.params]
    return owners[-1] if owners else None


def init_from(net: Network, model: torch.nn.Module, path: str, *, strict: bool, say: Callable[..., None],
              warn: Callable[[str], None] | None = None) -> None:
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
            raise SpecError(problems[:50], net.sources)
        def some(keys: list[str]) -> str:  # by module: `layer1.1.bn1`, not its five tensors
            names = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in keys))
            return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        warn(f"warning: --init-from {path} matched only {len(matched)} of {len(own)} tensors of {net.name}"
             + (f"; not loaded: {some(missing)}" if missing else "")
             + (f"; not in {net.name}: {some(unused)}" if unused else "")
             + ". Was it saved from another architecture? (--strict makes this an error)")
    model.load_state_dict(matched, strict=False)
    fresh = sorted({k.rsplit(".", 1)[0] for k in own if k not in matched})
    say(f"--init-from {path}: loaded {len(matched)} of {len(own)} tensors"
        + (f"; re-initialised {', '.join(fresh[:8])}{' …' if len(fresh) > 8 else ''}" if fresh else ""))


def freeze(model: torch.nn.Module, net: Network, names: tuple[str, ...]) -> None:
    """Stop the gradients of the parts named, as `resdsl summary` lists them (stem, layer1, ..., head)."""
    known = [p.name for p in net.parts]
    for name in names:
        if name not in known:
            raise UsageError(f"--freeze {name}: no such part of {net.name}; its parts are {', '.join(known)}")
        for param_name, p in model.named_parameters():
            if _part_of(net, param_name) == name:
                p.requires_grad_(False)


def _part_of(net: Network, key: str) -> str | None:
    """The part of the op owning a parameter: its longest node-name prefix (an SE block's
    `layer1.0.se.fc1.weight` belongs to the op `layer1.0.se`)."""
    pieces = key.split(".")
    for cut in range(len(pieces) - 1, 0, -1):
        data = net.ops.nodes.get(".".join(pieces[:cut]))
        if data is not None:
            return data.part
    return None
