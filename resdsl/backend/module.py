"""Checked network -> torch.nn.Module (a torch.fx GraphModule).

The forward is straight-line code that fx generates from the op graph, one
line per op, so there is no per-node Python walk at run time. Modules sit at
the graph's node names (`conv1`, `layer1.0.conv2`, `layer2.0.downsample.0`,
`fc`), which are torchvision's and timm's, so their state dicts load with
strict=True. Initialisation follows torchvision: Kaiming normal (fan_out) for
convs, BN weight 1 and bias 0, and BN weight 0 where the spec says zero_init.

The stage / block / group containers (`layer1`, `layer1.0`, `layer2.0.downsample`)
are callable too, each with a forward generated the same way from its own
part of the op graph (containers.py); the network's forward never calls them.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.fx as fx
import torch.nn as nn

from ..graph import FUNCTIONS
from ..ops import ALL, PARAMETERS, FunctionCall, ModuleCall
from . import layers
from .containers import Part, Region, chain_class, regions

if TYPE_CHECKING:
    from ..graph import OpGraph
    from ..network import Network


def module_call(kind: str, attrs: dict, x: tuple[int, ...], inplace: bool) -> ModuleCall:
    """The op's module as data (its definition's `module`), for an input of shape `x`."""
    return ALL[kind].module(attrs, x[0], len(x), inplace)


def make_module(kind: str, attrs: dict, x: tuple[int, ...], inplace: bool) -> nn.Module:
    """The nn.Module for one op, built from the same description the ejected source is written from."""
    call = module_call(kind, attrs, x, inplace)
    name = call.constructor
    cls = getattr(nn, name[3:]) if name.startswith("nn.") else getattr(layers, name)
    return cls(**dict(call.args))


# Ops whose output may be their input tensor itself or a view of it (Identity; Dropout in eval mode;
# Flatten; the zero-pad shortcut's strided slice): writing into their output writes into their input.
ALIASING = frozenset(name for name, op in ALL.items() if op.aliasing)
# Ops whose output a residual add may write into (`out += identity`): autograd keeps no reference to it.
OVERWRITABLE = frozenset(name for name, op in ALL.items() if op.overwritable)
# Ops that may overwrite their input (ReLU(inplace=True)) where nothing else reads it.
INPLACE = frozenset(name for name, op in ALL.items() if op.inplace)


def _within(node: str, scope: str) -> bool:
    return not scope or node.startswith(scope + ".")


def _owned(ops: OpGraph, node: str, scope: str, returned: frozenset[str] = frozenset()) -> bool:
    """May the one op that reads `node`'s tensor overwrite it? Only if the tensor is made inside
    `scope` (the reader's innermost container: a container called on its own gets its input from
    its caller, and the network gets its input from the user), nothing else reads it (the network
    does not return it: `returned`), and it is not an alias of a tensor that fails these tests."""
    while True:
        data = ops.nodes[node]
        if data.kind == "input" or not _within(node, scope) or len(ops.succ[node]) != 1 or node in returned:
            return False
        if data.kind not in ALIASING:
            return True
        node = ops.main_input(node)


def _inplace(ops: OpGraph, returned: frozenset[str] = frozenset()) -> dict[str, bool]:
    """Which activations write into their input (ReLU(inplace=True)) and which residual adds into
    their main path (`out += identity`, as torchvision). One decision per op serves the network's
    forward and every container's, since `_owned` asks about the op's innermost container."""
    found = {}
    for name, data in ops.nodes.items():
        kind = data.kind
        residual_add = data.is_merge and ALL[kind].planned and not ops.inputs(name).branches
        if kind in INPLACE or residual_add:
            main = ops.main_input(name)
            found[name] = _owned(ops, main, name.rpartition(".")[0], returned) and (
                # a conv or BN does not keep its own output for the backward pass; a ReLU would
                not residual_add or ops.nodes[main].kind in OVERWRITABLE
            )
    return found


def _forward_graph(
    ops: OpGraph, inplace: dict[str, bool], scope: Region, calls: dict[str, Region], net: Network | None = None
) -> fx.Graph:
    """Straight-line code for one scope: the network (path "") or a container, whose module targets
    are relative to it. One line per op, except that a child container in `calls` (a chain) is
    called whole, at the point its output is made; the network's forward has no `calls`."""
    graph = fx.Graph()
    # the scope's one input: the network's (N, *input_shape) batch, or the tensor a container gets
    values: dict[str, fx.Node] = {scope.entries[0]: graph.placeholder("x")}
    prefix = scope.path + "." if scope.path else ""
    for name in scope.members:
        local = name[len(prefix) :]
        child = calls.get(prefix + local.partition(".")[0])
        if child is not None:  # inside a chain child: its ops are read only through its exit
            if name == child.exits[0]:
                values[name] = graph.call_module(local.partition(".")[0], (values[child.entries[0]],))
            continue
        data = ops.nodes[name]
        inputs = ops.inputs(name)
        x = values[inputs.main]
        if data.kind in FUNCTIONS:  # a merge (resdsl/ops/merge.py) or a channel slice: its definition's function
            residual = not inputs.branches
            # a resize: x and the tensor whose size it takes (x itself where no `size` edge names another)
            operands = [x] if data.kind != "resize" else [x, values[inputs.size or inputs.main]]
            if data.is_merge:
                if residual:
                    assert inputs.shortcut is not None  # a residual merge's second input
                    operands = [x, values[inputs.shortcut]]
                else:
                    operands = [values[u] for u in inputs.branches]
                operands = ALL[data.kind].operands(operands, residual)
            assert data.shape is not None  # the shapes are inferred before a module is built
            call = ALL[data.kind].forward(data.attrs, data.shape)
            assert call is not None  # the ops in FUNCTIONS are functions
            values[name] = call_function(
                graph,
                call,
                operands,
                values.get(inputs.weights) if inputs.weights is not None else None,
                local,
                inplace.get(name, False),
            )
        else:
            assert data.in_shape is not None  # the shapes are inferred before a module is built
            if data.kind == "fc" and len(data.in_shape) > 1:  # a pooled C×1×1 map: flatten, as torchvision
                x = graph.call_function(torch.flatten, (x, 1))
            if data.kind in PARAMETERS:  # a bare parameter of the container (layer scale): its function of x
                described = ALL[data.kind].parameter(data.attrs, data.in_shape[0], len(data.in_shape))
                assert described is not None  # the ops in PARAMETERS are parameters
                parameter = graph.get_attr(local)
                values[name] = graph.create_node(
                    "call_function", function(described.function), (x, parameter), name=local.replace(".", "_")
                )
            else:
                values[name] = graph.call_module(local, (x,))
    if net is None or net.output_form == "tensor":
        graph.output(values[scope.exits[0]])
    else:
        _return_outputs(graph, net, values)
    return graph


def _return_outputs(graph: fx.Graph, net: Network, values: dict[str, fx.Node]) -> None:
    """The network's several outputs: a list (timm's features_only) or an OrderedDict keyed as the
    `output` statement writes (torchvision's IntermediateLayerGetter), in the statement's order."""
    tensors = [values[o.node] for o in net.outputs]
    if net.output_form == "list":
        graph.output(tensors)
        return
    pairs = [(o.key, t) for o, t in zip(net.outputs, tensors, strict=True)]
    graph.output(graph.call_function(OrderedDict, (pairs,), name="outputs"))


def function(path: str) -> Callable:
    """`operator.add`, `torch.cat`, `layers.select_branches`: a FunctionCall's function."""
    module, _, name = path.partition(".")
    return getattr({"operator": operator, "torch": torch, "layers": layers}[module], name)


def call_function(
    graph: fx.Graph,
    call: FunctionCall,
    operands: list[fx.Node],
    weights: fx.Node | None,
    name: str,
    inplace: bool = False,
) -> fx.Node:
    """The call(s) an op's FunctionCall describes, the last one named `name`: a fold left to right over
    the operands (`operator.iadd` for a residual add that may write into its main path), one call on
    their list (with `select`'s logits first), or one call on the only operand."""
    args, kwargs = tuple(call.args), dict(call.kwargs)
    if call.inputs == "list":
        first = (weights, operands) if call.weights_first else (operands,)
        return graph.create_node("call_function", function(call.function), first + args, kwargs, name=name)
    if call.inputs == "one":
        return graph.create_node("call_function", function(call.function), (operands[0],) + args, kwargs, name=name)
    fn = function(call.inplace if inplace and call.inplace else call.function)
    out = operands[0]
    for i, operand in enumerate(operands[1:], 1):
        out = graph.create_node(
            "call_function", fn, (out, operand) + args, kwargs, name=name if i == len(operands) - 1 else None
        )
    return out


def to_torch(net: Network) -> fx.GraphModule:
    """The network as a GraphModule named after it, its containers Parts (callable where a chain)."""
    ops = net.ops
    returned = frozenset(net.output_nodes)
    inplace = _inplace(ops, returned)
    found = regions(ops, net.output_nodes)
    children: dict[str, dict[str, Region]] = {}  # container path -> its chain child containers
    for path, scope in found.items():
        if scope.is_chain and scope.has_modules:
            children.setdefault(path.rpartition(".")[0], {})[path] = scope
    descriptions = _descriptions(net)

    def make_part(path: str) -> Part:
        scope, description = found[path], descriptions.get(path, "group")
        if not scope.is_chain:
            return Part(description, scope.refusal())
        return chain_class(_forward_graph(ops, inplace, scope, children.get(path, {})))(description)

    root = nn.Module()
    zero_init: list[str] = []
    for name, data in ops.nodes.items():
        kind = data.kind
        if kind == "input" or kind in FUNCTIONS:  # merges and channel slices are functions in the forward
            continue
        assert data.in_shape is not None  # the shapes are inferred before a module is built
        if kind in PARAMETERS:
            _install(root, name, make_parameter(kind, data.attrs, data.in_shape), make_part)
            continue
        _install(root, name, make_module(kind, data.attrs, data.in_shape, inplace.get(name, False)), make_part)
        if data.attrs.get("zero_init"):  # a norm whose scale starts at 0
            zero_init.append(name)
    whole = Region("", tuple(n for n in ops.nodes if n != "input"), ("input",), net.output_nodes, True)
    module = fx.GraphModule(root, _forward_graph(ops, inplace, whole, {}, net), class_name=net.name)
    for child, container in root.named_children():  # keep the spec's containers, in execution order
        if isinstance(container, Part):
            setattr(module, child, container)
    _initialise(module, zero_init)
    return module


def make_parameter(kind: str, attrs: dict, x: tuple[int, ...]) -> nn.Parameter:
    """The bare parameter an op is (`layer_scale`), from its description, filled with its start value."""
    described = ALL[kind].parameter(attrs, x[0], len(x))
    assert described is not None  # the ops in PARAMETERS are parameters
    return nn.Parameter(torch.full(described.shape, float(described.fill)))


def _install(root: nn.Module, path: str, module: nn.Module | nn.Parameter, make_part: Callable[[str], Part]) -> None:
    """Put `module` (or a bare parameter) at the dotted `path`, creating the stage / block / group
    containers on the way."""
    *parents, leaf = path.split(".")
    parent, prefix = root, ""
    for part in parents:
        prefix = f"{prefix}.{part}" if prefix else part
        child = parent._modules.get(part)
        if child is None:
            child = make_part(prefix)
            parent.add_module(part, child)
        parent = child
    if isinstance(module, nn.Parameter):
        parent.register_parameter(leaf, module)
    else:
        parent.add_module(leaf, module)


def _descriptions(net: Network) -> dict[str, str]:
    """What each container path is, for print(model): stages, blocks, shortcuts (the record's)."""
    record = net.record
    found = {}
    for part in record.parts:
        if part.stage is not None:
            found[part.name] = f"stage: {part.description.replace(' /', ', stride ')}, shortcut {part.stage.policy}"
    for path, block in record.blocks.items():
        found.setdefault(path, f"block: {block.instance.called}")
    for slot, nodes in record.shortcuts.items():
        merge = net.ops.nodes[nodes[0]].merge
        assert merge is not None  # an inserted op feeds a merge
        found.setdefault(slot, f"shortcut: {net.ops.nodes[merge].shortcut}")
    return found


@torch.no_grad()
def _initialise(module: nn.Module, zero_init: list[str]) -> None:
    # ECA's conv across channels keeps torch's default init, as timm leaves every Conv1d of a 2-d model
    across_channels = {id(m.conv) for m in module.modules() if isinstance(m, layers.EfficientChannelAttention)}
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and id(m) not in across_channels:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for name in zero_init:
        weight = module.get_submodule(name).weight
        assert isinstance(weight, torch.Tensor)  # a norm's scale
        nn.init.zeros_(weight)
