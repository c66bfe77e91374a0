"""`resdsl compile --deploy`: the weights of the inference form, and the proof that it computes the same.

deploy_plan.py decides, on the op graph, what folds and fuses; this module does the same steps on a
state dict, in the same order, in float64 (each result cast back to the weight's own dtype), loads
the result strictly into the module the deployed network builds, and then runs both networks in eval
mode on random inputs: beyond the tolerance the deployed form is refused (E0603), never emitted.

The arithmetic, for a norm's eval-mode map y = scale·x + shift (scale = weight / sqrt(var + eps),
shift = bias - mean·scale), on a conv or fc of weight W (out, in/groups, *kernel) and bias b:
  norm after the op:   W' = scale[o]·W,            b' = scale·b + shift
  norm before the op:  W' = W·scale[in channel],   b' = b + Σ W·shift[in channel]   (no padding)
  a sum of convs:      each kernel zero-padded to the largest, centred; weights and biases added;
  the identity:        a kernel with 1 at the centre of [o, o mod (in/groups)], then any norm after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import Diagnostic, SpecError
from .module import to_torch

if TYPE_CHECKING:
    from ..deploy_plan import Plan
    from ..network import Network

TOLERANCE = 1e-4  # the largest relative difference (max |a - b| / max |a|, per output) --deploy accepts in fp32
BATCHES = 3  # random batches the proof runs
BATCH = 2

State = dict[str, torch.Tensor]


def _affine(state: State, norm: str, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A norm's eval-mode (scale, shift) per channel, in float64."""
    weight, bias = state[f"{norm}.weight"].double(), state[f"{norm}.bias"].double()
    mean, var = state[f"{norm}.running_mean"].double(), state[f"{norm}.running_var"].double()
    scale = weight / torch.sqrt(var + eps)
    return scale, bias - mean * scale


def _column(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-output-channel vector shaped to broadcast over a weight (out, in, *kernel)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def fold_after(
    weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv or fc followed by the norm, as one op (float64)."""
    w = weight.double() * _column(scale, weight)
    b = (bias.double() if bias is not None else torch.zeros_like(scale)) * scale + shift
    return w, b


def fold_before(
    weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor, shift: torch.Tensor, groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The norm followed by a conv without padding (or an fc), as one op: each output channel's filter
    sees the input channels of its group, scale[g·in_g + i] and shift[g·in_g + i] (float64)."""
    out, in_per_group = weight.shape[0], weight.shape[1]
    per_output = lambda v: v.reshape(groups, in_per_group).repeat_interleave(out // groups, dim=0)  # noqa: E731
    spread = (1,) * (weight.dim() - 2)
    w = weight.double()
    b = bias.double() if bias is not None else torch.zeros(out, dtype=torch.float64)
    shifted = (w * per_output(shift).reshape(out, in_per_group, *spread)).sum(dim=tuple(range(1, w.dim())))
    return w * per_output(scale).reshape(out, in_per_group, *spread), b + shifted


def centred(weight: torch.Tensor, kernel: tuple[int, ...]) -> torch.Tensor:
    """A kernel zero-padded on every side to `kernel` (odd sizes), its centre kept at the centre."""
    pads: list[int] = []
    for have, want in zip(reversed(weight.shape[2:]), reversed(kernel)):
        pads += [(want - have) // 2] * 2
    return F.pad(weight, pads)


def identity_kernel(channels: int, groups: int, kernel: tuple[int, ...]) -> torch.Tensor:
    """The conv that returns its input: 1 at the centre of [o, o mod (channels/groups)] (float64)."""
    in_per_group = channels // groups
    w = torch.zeros((channels, in_per_group, *kernel), dtype=torch.float64)
    centre = tuple(k // 2 for k in kernel)
    for o in range(channels):
        w[(o, o % in_per_group, *centre)] = 1.0
    return w


def standardise(weight: torch.Tensor, eps: float) -> torch.Tensor:
    """stdconv's weight as its forward computes it (layers.StdConv2d), once."""
    flat = weight.reshape(1, weight.shape[0], -1)
    return F.batch_norm(flat, None, None, training=True, momentum=0.0, eps=eps).reshape_as(weight)


def _drop(state: State, node: str) -> None:
    for key in [k for k in state if k.startswith(node + ".")]:
        del state[key]


def deployed_state(plan: Plan, state: State) -> State:
    """The original network's state dict -> the deployed network's, step by step as the plan says."""
    from ..deploy_plan import Drop, Fold, Fuse, Materialise

    state = {k: v.detach().clone() for k, v in state.items()}
    for step in plan.steps:
        if isinstance(step, Materialise):
            state[f"{step.conv}.weight"] = standardise(state[f"{step.conv}.weight"], step.eps)
        elif isinstance(step, Fold):
            dtype = state[f"{step.into}.weight"].dtype
            scale, shift = _affine(state, step.norm, step.eps)
            weight, bias = state[f"{step.into}.weight"], state.get(f"{step.into}.bias")
            if step.after:
                w, b = fold_after(weight, bias, scale, shift)
            else:
                w, b = fold_before(weight, bias, scale, shift, step.groups)
            state[f"{step.into}.weight"], state[f"{step.into}.bias"] = w.to(dtype), b.to(dtype)
            _drop(state, step.norm)
        elif isinstance(step, Fuse):
            w, b, dtype = _fused(state, step)
            for node in step.removed:
                _drop(state, node)
            state[f"{step.conv}.weight"], state[f"{step.conv}.bias"] = w.to(dtype), b.to(dtype)
        else:
            assert isinstance(step, Drop)  # dropout, drop_path, identity: no weights
            _drop(state, step.node)
    return state


def _fused(state: State, step) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    """The one conv of a fused sum: its weight and bias (float64) and the convs' dtype."""
    convs = [t for t in step.terms if t.kind == "conv"]
    first = state[f"{convs[0].node}.weight"]
    out = first.shape[0]
    total_w = torch.zeros((out, first.shape[1], *step.kernel), dtype=torch.float64)
    total_b = torch.zeros(out, dtype=torch.float64)
    for term in step.terms:
        if term.kind == "conv":
            w = centred(state[f"{term.node}.weight"].double(), step.kernel)
            bias = state.get(f"{term.node}.bias")
            b = bias.double() if bias is not None else torch.zeros(out, dtype=torch.float64)
        else:
            w, b = identity_kernel(out, step.groups, step.kernel), torch.zeros(out, dtype=torch.float64)
            if term.kind == "norm":
                w, b = fold_after(w, b, *_affine(state, term.node, term.eps))
        total_w += w
        total_b += b
    return total_w, total_b, first.dtype


@dataclass(frozen=True)
class Proof:
    """The deployed network against the original on `batches` random batches of `batch`, in eval mode."""

    max_abs: float
    max_relative: float  # max |a - b| / max |a|, the worst output of the worst batch
    batches: int
    batch: int
    tolerance: float

    @property
    def holds(self) -> bool:
        return math.isfinite(self.max_relative) and self.max_relative <= self.tolerance

    def line(self) -> str:
        verdict = "equal within the tolerance" if self.holds else "NOT equal"
        return (
            f"proof: {self.batches} random batches of {self.batch} in eval mode, max abs difference "
            f"{self.max_abs:.2e}, max relative {self.max_relative:.2e} (tolerance {self.tolerance:g}): {verdict}"
        )


def _tensors(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    assert isinstance(out, (list, tuple))  # the several outputs of outputs.py
    return list(out)


@torch.no_grad()
def prove(
    net: Network,
    original: torch.nn.Module,
    deployed: torch.nn.Module,
    tolerance: float = TOLERANCE,
    batches: int = BATCHES,
    batch: int = BATCH,
    seed: int = 0,
) -> Proof:
    """Run both in eval mode on the same random inputs; the largest differences over every output."""
    original.eval()
    deployed.eval()
    generator = torch.Generator().manual_seed(seed)
    max_abs = max_rel = 0.0
    for _ in range(batches):
        x = torch.randn((batch, *net.input_shape), generator=generator)
        for a, b in zip(_tensors(original(x)), _tensors(deployed(x)), strict=True):
            diff = (a.double() - b.double()).abs().max().item()
            scale = a.double().abs().max().item()
            max_abs = max(max_abs, diff)
            rel = diff / scale if scale > 0 else diff
            max_rel = max(max_rel, rel if math.isfinite(rel) else math.inf)
    return Proof(max_abs, max_rel, batches, batch, tolerance)


def channels_last(net: Network, model: torch.nn.Module) -> torch.nn.Module:
    """An image network's weights in channels-last order (oneDNN's preferred layout on CPU)."""
    return model.to(memory_format=torch.channels_last) if len(net.input_shape) == 3 else model


def deploy(
    plan: Plan, model: torch.nn.Module, tolerance: float = TOLERANCE, layout: bool = True
) -> tuple[torch.nn.Module, Proof]:
    """The deployed module, with `model`'s weights folded and fused, proven equal to `model` (eval mode),
    or SpecError E0603 where it is not."""
    deployed = to_torch(plan.deployed)
    deployed.load_state_dict(deployed_state(plan, model.state_dict()), strict=True)
    proof = prove(plan.original, model, deployed, tolerance)
    if not proof.holds:
        raise SpecError([refusal(plan.original, proof)], plan.original.sources)
    if layout:
        deployed = channels_last(plan.deployed, deployed)
    return deployed.eval(), proof


def refusal(net: Network, proof: Proof) -> Diagnostic:
    return Diagnostic(
        "E0603",
        f"the deployed `{net.name}` differs from the trained one: max relative difference "
        f"{proof.max_relative:.1e} > {proof.tolerance:g}",
        net.span,
        notes=(
            f"{proof.batches} random batches of {proof.batch} in eval mode, max abs difference {proof.max_abs:.1e}",
        ),
        help="nothing was written; a checkpoint with extreme norm statistics (a running variance near 0 or "
        "negative) gives this, as would a bug in resdsl (please report it)",
    )
