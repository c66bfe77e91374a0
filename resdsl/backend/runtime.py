"""The compiled module against the static figures: what `verify --runtime` and resdsl.testing check.

A spec's static shapes, parameter count and MACs must be what its compiled module has and does:
the output shape of a forward pass, `sum(p.numel())`, and torch's FlopCounterMode (FLOPs = 2 × MACs).
"""

from __future__ import annotations

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
    if tuple(out.shape[1:]) != tuple(net.output_shape):
        return f"output shape: the module gives {tuple(out.shape[1:])}, the spec says {tuple(net.output_shape)}"
    macs = counter.get_total_flops() // (2 * batch)
    if macs != net.macs:
        return f"MACs: FlopCounterMode counts {macs:,}, the spec says {net.macs:,}"
    return None
