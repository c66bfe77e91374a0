"""Checkpoints checked against the spec before they are loaded.

`torch.load(weights_only=True)` only: a checkpoint is data, never code. Every
missing, unexpected or mis-shaped tensor becomes a diagnostic at the spec
line of the op it belongs to, with both shapes.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import TYPE_CHECKING

import torch

from ..errors import Diagnostic, Span, SpecError, UsageError

SHOWN = 50  # mismatches listed at most (a checkpoint of another network has hundreds); the count is whole

if TYPE_CHECKING:
    from ..network import Network


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) if t.dim() else "a scalar"


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A state dict from a file: a bare one, or one under "model" / "state_dict" (training checkpoints)."""
    if not os.path.isfile(path):
        raise UsageError(f"no such checkpoint: {path}")
    where = Span.point(path, 1, 1)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.load's reader fails on other formats with anything
        # (UnpicklingError, RuntimeError, but also KeyError or IndexError on a text file): whatever the
        # type, the file is not a checkpoint, and that is what the user needs to hear.
        text = _torch_reason(str(exc))
        # an UnpicklingError or RuntimeError explains itself; a bare `KeyError: 101` needs its type to be read
        reason = (
            text
            if text and isinstance(exc, (pickle.UnpicklingError, RuntimeError, OSError))
            else f"torch.load failed: {type(exc).__name__}{f': {text}' if text else ''}"
        )
        raise SpecError(
            [
                Diagnostic(
                    "E0602",
                    f"{path} is not a checkpoint torch.load(weights_only=True) can read",
                    where,
                    notes=(reason,),
                    help="pass a file written by torch.save(model.state_dict(), path)",
                )
            ]
        ) from None
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise SpecError(
            [
                Diagnostic(
                    "E0602",
                    f"{path} holds {type(obj).__name__}, not a state dict of tensors",
                    where,
                    help="pass a file written by torch.save(model.state_dict(), path)",
                )
            ]
        )
    return obj


def _torch_reason(message: str, budget: int = 300) -> str:
    """The part of torch.load's message that says what is wrong, in whole sentences.

    Its weights_only refusal is a page of advice (with terminal escapes) whose one useful line is the
    `WeightsUnpickler error:`; other messages lead with the reason. Sentences are kept whole: as many
    as fit in `budget` characters, and always the first.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", message).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text[text.index(marker) + len(marker) :].strip()
    text = " ".join(text.split("\n\n")[0].split())  # the first paragraph, on one line
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z`])", text)
    kept = sentences[:1]
    for sentence in sentences[1:]:
        if len(" ".join(kept + [sentence])) > budget:
            break
        kept.append(sentence)
    return " ".join(kept)


def check_state_dict(
    net: Network, model: torch.nn.Module, state: dict[str, torch.Tensor], path: str
) -> list[Diagnostic]:
    """Every difference between `state` and what the spec builds, located at its op."""
    expected = model.state_dict()
    found: list[Diagnostic] = []
    # only a key the spec does not have can be the same tensor under another name
    others = {k: v for k, v in state.items() if k not in expected}
    for key, tensor in expected.items():
        span, trace = _locate(net, key)
        if key not in state:
            found.append(
                Diagnostic(
                    "E0601",
                    f"`{key}` ({_shape(tensor)}) is missing from {path}",
                    span,
                    trace=trace,
                    help=_unexpected_hint(key, others),
                )
            )
        elif state[key].shape != tensor.shape:
            found.append(
                Diagnostic(
                    "E0601",
                    f"`{key}`: {path} has {_shape(state[key])}, the spec gives {_shape(tensor)}",
                    span,
                    trace=trace,
                )
            )
    for key in state:
        if key not in expected:
            span, trace = _locate(net, key)
            found.append(
                Diagnostic(
                    "E0601", f"{path} has `{key}` ({_shape(state[key])}), which the spec does not", span, trace=trace
                )
            )
    return found


def load_checked(net: Network, model: torch.nn.Module, path: str, state: dict[str, torch.Tensor] | None = None) -> None:
    """Read (unless `state` is the file, already read), check and load a checkpoint into `model`, or
    raise SpecError listing every mismatch."""
    state = read_state_dict(path) if state is None else state
    problems = check_state_dict(net, model, state, path)
    if problems:
        raise SpecError(problems[:SHOWN], net.sources, total=len(problems))
    model.load_state_dict(state, strict=True)


def _locate(net: Network, key: str) -> tuple[Span, tuple]:
    """The span of the op that owns `key` (its longest node-name prefix: the whole key for a bare parameter,
    a layer scale's `stages.0.blocks.0.gamma`), else the network's input line."""
    parts = key.split(".")
    for cut in range(len(parts), 0, -1):
        data = net.ops.nodes.get(".".join(parts[:cut]))
        if data is not None:
            return data.span, data.trace
    return net.ops.nodes["input"].span, ()


def _unexpected_hint(key: str, state: dict) -> str | None:
    suffix = key.rsplit(".", 2)[-2:]
    close = [k for k in state if k.endswith(".".join(suffix))][:1]
    return f"the checkpoint has `{close[0]}`: was it saved from a model with other names?" if close else None
