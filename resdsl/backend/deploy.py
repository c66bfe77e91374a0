"""`resdsl compile --deploy`: the weights of the inference form, and the proof that it computes the same.

deploy_plan.py decides, on the op graph, what folds and fuses; this module does the same steps on a
state dict, in the same order, in float64 (each result cast back to the weight's own dtype), loads
the result strictly into the module the deployed network builds, and then runs both networks in eval
mode on random inputs: beyond the tolerance (see Proof) the deployed form is refused (E0603), never emitted.

The arithmetic, for a norm's eval-mode map y = scale·x + shift (scale = weight / sqrt(var + eps),
shift = bias - mean·scale), on a conv or fc of weight W (out, in/groups, *kernel) and bias b:
  norm after the op:   W' = scale[o]·W,            b' = scale·b + shift
  norm before the op:  W' = W·scale[in channel],   b' = b + Σ W·shift[in channel]   (no padding)
  a sum of convs:      each kernel zero-padded to the largest, centred; weights and biases added;
  the identity:        a kernel with 1 at the centre of [o, o mod (in/groups)], then any norm after it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
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
        w[(o, o % in_per_group) + centre] = 1.0
    return w


def standardise(weight: torch.Tensor, eps: float, factor: torch.Tensor | None = None) -> torch.Tensor:
    """stdconv's weight as its forward computes it (layers.StdConv2d), once; `factor` (out,): a
    scaled_stdconv's gain · γ/√fan_in, applied inside the batch norm as layers.ScaledStdConv2d does."""
    flat = weight.reshape(1, weight.shape[0], -1)
    return F.batch_norm(flat, None, None, factor, training=True, momentum=0.0, eps=eps).reshape_as(weight)


def _drop(state: State, node: str) -> None:
    for key in [k for k in state if k.startswith(node + ".")]:
        del state[key]


def deployed_state(plan: Plan, state: State) -> State:
    """The original network's state dict -> the deployed network's, step by step as the plan says."""
    from ..deploy_plan import Drop, Fold, Fuse, Materialise

    state = {k: v.detach().clone() for k, v in state.items()}
    for step in plan.steps:
        if isinstance(step, Materialise):
            weight = state[f"{step.conv}.weight"]
            factor = None
            if step.gain:
                factor = (state.pop(f"{step.conv}.gain") * step.scale).reshape(-1)
            elif step.scale != 1.0:
                factor = torch.full((weight.shape[0],), step.scale, dtype=weight.dtype)
            state[f"{step.conv}.weight"] = standardise(weight, step.eps, factor)
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


EXACT = 1e-9  # float64: the relative difference an exact rewrite stays below (rounding is ~1e-16 per op)


@dataclass(frozen=True)
class Proof:
    """The deployed network against the original on `batches` random batches of `batch`, in eval mode.

    In fp32, the relative difference (max |a - b| / max |a|, per output) must be within `tolerance`. Where
    it is not, both are also run in float64 (the deployed weights computed again from the float64
    original): the rewrite is exact if they agree to EXACT, or to within 10 times what the original's
    outputs move by when its weights move by one float64 rounding (a very deep network at random
    initialisation amplifies rounding by many orders of magnitude); the fp32 difference is then the
    network's own rounding if the deployed fp32 network is within 10 times the trained fp32 network's own
    distance from the float64 result (the two round differently, and such a network amplifies either)."""

    max_abs: float
    max_relative: float  # fp32, the worst output of the worst batch
    batches: int
    batch: int
    tolerance: float
    finite: bool = True  # the trained network's outputs are finite
    exact: float | None = None  # float64 relative difference, where the fp32 one was above the tolerance
    sensitivity: float | None = None  # float64: how far the original moves when its weights move by one rounding
    own_rounding: float | None = None  # the trained fp32 network's relative distance from its float64 result
    deployed_rounding: float | None = None  # the deployed fp32 network's

    @property
    def within_rounding(self) -> bool:
        return (
            self.exact is not None
            and self.sensitivity is not None
            and self.exact <= max(EXACT, 10 * self.sensitivity)
            and self.own_rounding is not None
            and self.deployed_rounding is not None
            and self.deployed_rounding <= 10 * self.own_rounding
        )

    @property
    def holds(self) -> bool:
        within = math.isfinite(self.max_relative) and self.max_relative <= self.tolerance
        return self.finite and (within or self.within_rounding)

    def line(self) -> str:
        head = (
            f"proof: {self.batches} random batches of {self.batch} in eval mode, max abs difference "
            f"{self.max_abs:.2e}, max relative {self.max_relative:.2e} (tolerance {self.tolerance:g})"
        )
        if self.max_relative <= self.tolerance and self.finite:
            return head + ": equal within the tolerance"
        if self.exact is None:
            return head + ": NOT equal"
        return head + (
            f"; in float64 they differ by {self.exact:.1e} (exact: below {EXACT:g}, or 10x the "
            f"{self.sensitivity:.1e} the original moves by when its weights move by one rounding), and the "
            f"deployed fp32 network is {self.deployed_rounding:.1e} from the float64 result, "
            f"the trained one {self.own_rounding:.1e}"
            + (": the difference is fp32 rounding, which this network amplifies" if self.holds else ": NOT equal")
        )


def _tensors(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    assert isinstance(out, (list, tuple))  # the several outputs of outputs.py
    return list(out)


def _distance(reference: object, other: object) -> tuple[float, float]:
    """(max abs, max relative) difference over every output; relative to the reference's largest value."""
    max_abs = max_rel = 0.0
    for a, b in zip(_tensors(reference), _tensors(other), strict=True):
        diff = (a.double() - b.double()).abs().max().item()
        scale = a.double().abs().max().item()
        rel = diff / scale if scale > 0 else diff
        max_abs = max(max_abs, diff if math.isfinite(diff) else math.inf)
        max_rel = max(max_rel, rel if math.isfinite(rel) else math.inf)
    return max_abs, max_rel


@torch.no_grad()
def prove(
    plan: Plan,
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
    inputs = [torch.randn((batch, *plan.original.input_shape), generator=generator) for _ in range(batches)]
    max_abs = max_rel = 0.0
    finite = True
    for x in inputs:
        expected = original(x)
        finite = finite and all(bool(torch.isfinite(t).all()) for t in _tensors(expected))
        a, r = _distance(expected, deployed(x))
        max_abs, max_rel = max(max_abs, a), max(max_rel, r)
    proof = Proof(max_abs, max_rel, batches, batch, tolerance, finite)
    if proof.holds or not finite:
        return proof
    original64 = copy.deepcopy(original).double().eval()
    deployed64 = to_torch(plan.deployed).double().eval()
    deployed64.load_state_dict(deployed_state(plan, original64.state_dict()), strict=True)
    nudged = _nudged(original64, seed)
    exact = own = ours = sensitivity = 0.0
    for x in inputs:
        truth = original64(x.double())
        exact = max(exact, _distance(truth, deployed64(x.double()))[1])
        sensitivity = max(sensitivity, _distance(truth, nudged(x.double()))[1])
        own = max(own, _distance(truth, original(x))[1])
        ours = max(ours, _distance(truth, deployed(x))[1])
    return replace(proof, exact=exact, sensitivity=sensitivity, own_rounding=own, deployed_rounding=ours)


def _nudged(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy with every weight and statistic changed by about one float64 rounding (a relative 2^-52): how
    much its outputs move measures how much this network, at these weights, amplifies rounding."""
    nudged = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for tensor in list(nudged.parameters()) + list(nudged.buffers()):
            if tensor.is_floating_point():
                tensor.mul_(1 + 2.0**-52 * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype))
    return nudged


def channels_last(net: Network, model: torch.nn.Module) -> torch.nn.Module:
    """An image network's weights in channels-last order (oneDNN's preferred layout on CPU)."""
    return model.to(memory_format=torch.channels_last) if len(net.input_shape) == 3 else model


def deploy(
    plan: Plan, model: torch.nn.Module, tolerance: float = TOLERANCE, layout: bool = True
) -> tuple[torch.nn.Module, Proof]:
    """The deployed module, with `model`'s weights folded and fused, proven equal to `model` (eval mode),
    or SpecError E0603 where it is not."""
    deployed: torch.nn.Module = to_torch(plan.deployed)
    deployed.load_state_dict(deployed_state(plan, model.state_dict()), strict=True)
    proof = prove(plan, model, deployed, tolerance)
    if not proof.holds:
        raise SpecError([refusal(plan.original, proof)], plan.original.sources)
    if layout:
        deployed = channels_last(plan.deployed, deployed)
    return deployed.eval(), proof


def refusal(net: Network, proof: Proof) -> Diagnostic:
    if not proof.finite:
        return Diagnostic(
            "E0603",
            f"`{net.name}` itself gives outputs that are not finite (NaN or infinity) on random inputs, so its "
            "deployed form cannot be proven equal to it",
            net.span,
            help="nothing was written; look for norms in the checkpoint whose running variance is negative or "
            "whose weights are not finite",
        )
    return Diagnostic(
        "E0603",
        f"the deployed `{net.name}` differs from the trained one: max relative difference "
        f"{proof.max_relative:.1e} > {proof.tolerance:g}",
        net.span,
        notes=(proof.line(),),
        help="nothing was written; this is a bug in resdsl's deploy pass: please report it with the spec",
    )
