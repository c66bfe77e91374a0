"""The compiled module against the static figures: what `verify --runtime` and resdsl.testing check.

A spec's static shapes, parameter count and MACs must be what its compiled module has and does:
the output shape of a forward pass, `sum(p.numel())`, and torch's FlopCounterMode (FLOPs = 2 × MACs).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:
    from ..network import Network


def runtime_mismatch(net: Network, batch: int = 1) -> str | None:
    """None when the compiled module agrees with `net`'s static figures, else what differs."""
    model = net.to_torch().eval()
    params = sum(p.numel() for p in model.parameters())
    if params != net.params:
        return f"parameters: the module has {params:,}, the spec says {net.params:,}"
    x = torch.randn((batch,) + tuple(net.input_shape))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(x)
    problem = output_mismatch(net, out)
    if problem is not None:
        return problem
    macs = counter.get_total_flops() // (2 * batch)
    if macs != net.macs:
        return f"MACs: FlopCounterMode counts {macs:,}, the spec says {net.macs:,}"
    return None


def output_mismatch(net: Network, out: object) -> str | None:
    """None when a forward's result is what the spec returns: one tensor of `output_shape`, or a list
    or an OrderedDict (keys in order) of every output's shape (outputs.py); else what differs."""
    if net.output_form == "tensor":
        tensors = [out]
    elif net.output_form == "list":
        if not isinstance(out, list) or len(out) != len(net.outputs):
            return f"outputs: the module returns {type(out).__name__}, the spec says a list of {len(net.outputs)}"
        tensors = list(out)
    else:
        keys = [o.key for o in net.outputs]
        if not isinstance(out, OrderedDict) or list(out) != keys:
            return f"outputs: the module returns {type(out).__name__}, the spec says an OrderedDict of {keys}"
        tensors = list(out.values())
    for spec, tensor in zip(net.outputs or (None,), tensors, strict=True):
        want = tuple(spec.shape) if spec is not None else tuple(net.output_shape)
        got = tuple(tensor.shape[1:]) if isinstance(tensor, torch.Tensor) else None
        if got != want:
            which = "output shape" if net.output_form == "tensor" else f"output `{spec.name if spec else ''}`"
            return f"{which}: the module gives {got}, the spec says {want}"
    return None
