"""`resdsl compile --emit python`: a standalone PyTorch source file.

The file needs torch alone. It has one class per block type (per shape of
block, when a type comes with and without a projection shortcut), whose
constructor takes the numbers that differ between its uses, as torchvision's
`Bottleneck(inplanes, planes, stride, downsample)` does; a network class whose
forward reads top to bottom; and `build() -> nn.Module`. Module names are
the graph's, so the state dicts of `to_torch()`, torchvision and timm load.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .module import TORCH_DEFAULTS, SqueezeExcite, ZeroPadShortcut, module_call

if TYPE_CHECKING:
    from ..network import Network

@dataclass
class _Unit:
    """One line of a forward: a module (or a container called whole) from `source` to `output`."""

    attr: str                # attribute path relative to the scope, e.g. "conv1" or "downsample"
    source: str              # node whose tensor goes in
    output: str              # node whose tensor comes out
    kind: str = "module"     # "module" | "add" | "concat"
    other: str | None = None  # the shortcut input of a merge
    flatten: bool = False


def _call_name(attr: str) -> str:
    return "self." + ".".join(f"[{p}]" if p.isdigit() else p for p in attr.split(".")).replace(".[", "[")


def _units(net: "Network", names: list[str], prefix: str, whole: dict[str, tuple[str, str]]) -> list[_Unit]:
    """The forward of one scope as units; `whole` maps container paths called as one to (first, last)."""
    ops, units, done = net.ops, [], set()
    for name in names:
        if name in done:
            continue
        data = ops.nodes[name]
        inputs = {edge["role"]: u for u, edge in ops.pred[name].items()}
        container = next((c for c in whole if name.startswith(c + ".")), None)
        if container is not None:
            first, last = whole[container]
            members = [n for n in names if n.startswith(container + ".")]
            done.update(members)
            source = next(u for u, e in ops.pred[first].items() if e["role"] == "main")
            units.append(_Unit(container[len(prefix):], source, last))
            continue
        if data["kind"] in ("add", "concat"):
            units.append(_Unit("", inputs["main"], name, data["kind"], inputs["shortcut"]))
        else:
            units.append(_Unit(name[len(prefix):], inputs["main"], name,
                               flatten=data["kind"] == "fc" and len(data["in_shape"]) == 3))
    return units


def _forward(units: list[_Unit], entry: str) -> list[str]:
    """Straight-line code: `x` carries the main path; a tensor read again later is kept
    as `identity`, and the shortcut ops work on that name (`identity = self.downsample(identity)`)."""
    uses: dict[str, int] = {}
    for u in units:
        for src in (u.source, u.other):
            if src is not None:
                uses[src] = uses.get(src, 0) + 1
    on_shortcut, shortcut_nodes = set(), {u.other for u in units if u.other}
    for u in reversed(units):
        if u.kind == "module" and u.output in shortcut_nodes and uses.get(u.output, 0) == 1:
            on_shortcut.add(id(u))
            shortcut_nodes.add(u.source)
    saved: dict[str, str] = {}
    lines: list[str] = []
    x_holds = entry

    def keep(node: str) -> None:
        name = "identity" if not saved else f"identity{len(saved) + 1}"
        saved[node] = name
        lines.append(f"{name} = x")

    def read(node: str) -> str:
        return "x" if x_holds == node else saved[node]

    if uses.get(entry, 0) > 1:
        keep(entry)
    for u in units:
        if id(u) in on_shortcut:
            source = read(u.source)
            target = source if source != "x" and uses.get(u.source, 0) <= 2 else f"shortcut{len(saved) + 1}"
            lines.append(f"{target} = {_call_name(u.attr)}({source})")
            saved[u.output] = target
            continue
        if u.kind == "add":
            expr = f"{read(u.source)} + {read(u.other)}"
        elif u.kind == "concat":
            expr = f"torch.cat([{read(u.other)}, {read(u.source)}], 1)"
        else:
            arg = read(u.source)
            if u.flatten:
                lines.append(f"x = torch.flatten({arg}, 1)")
                arg = "x"
            expr = f"{_call_name(u.attr)}({arg})"
        lines.append(f"x = {expr}")
        x_holds = u.output
        if uses.get(u.output, 0) > 1:
            keep(u.output)
    return lines + ["return x"]


def _render_call(constructor: str, args: list[tuple[str, object]], names: dict[int, str] | None = None) -> str:
    """`nn.Conv2d(64, 256, kernel_size=1, bias=False)`; `names` maps an argument index to a parameter name."""
    parts, keywords = [], False
    for i, (arg, value) in enumerate(args):
        text = names[i] if names and i in names else None
        if text is None and arg in TORCH_DEFAULTS and value == TORCH_DEFAULTS[arg]:
            keywords = True
            continue
        text = text or repr(value)
        keywords = keywords or not (i < 2 and arg in ("in_channels", "out_channels", "num_features", "in_features",
                                                      "out_features", "channels", "hidden", "output_size"))
        parts.append(f"{arg}={text}" if keywords else text)
    return f"{constructor}({', '.join(parts)})"


def _class_name(block_type: str) -> str:
    return "".join(part.capitalize() for part in block_type.split("_")) or "Block"


class _Writer:
    def __init__(self, net: "Network"):
        self.net = net
        self.ops = net.ops
        self.classes: list[str] = []
        self.variants: dict[tuple, tuple[str, list[str], list]] = {}  # key -> (class, params, instances)
        self.instances: dict[str, tuple] = {}  # block path -> (variant key, arguments per instance)

    # -- modules of one scope -----------------------------------------------------------------
    def members(self, prefix: str) -> list[str]:
        return [n for n in self.ops.nodes if n.startswith(prefix) and n != "input"]

    def module_of(self, name: str) -> tuple[str, list[tuple[str, object]]]:
        data = self.ops.nodes[name]
        entry = next(u for u, e in self.ops.pred[name].items() if e["role"] == "main")
        inplace = len(self.ops.succ[entry]) == 1 and self.ops.nodes[entry]["kind"] != "input"
        return module_call(data["kind"], data["attrs"], data["in_shape"], inplace)

    def containers(self, names: list[str], prefix: str) -> dict[str, tuple[str, str]]:
        """Shortcut and group containers that are plain chains: called whole, built as nn.Sequential."""
        found: dict[str, list[str]] = {}
        for n in names:
            parent = n.rpartition(".")[0]
            if parent.startswith(prefix) and parent != prefix.rstrip(".") and self.ops.nodes[n]["kind"] not in (
                    "add", "concat") and parent[len(prefix):].count(".") == 0 and n.rpartition(".")[2].isdigit():
                found.setdefault(parent, []).append(n)
        whole = {}
        for parent, chain in found.items():
            if all(next(u for u, e in self.ops.pred[b].items() if e["role"] == "main") == a
                   for a, b in zip(chain, chain[1:])) and all(len(self.ops.succ[a]) == 1 for a in chain[:-1]):
                whole[parent] = (chain[0], chain[-1])
        return whole

    def constructors(self, names: list[str], prefix: str, whole: dict[str, tuple[str, str]]):
        """[(attribute, constructor, args or list of child (constructor, args))] in order."""
        out, seen = [], set()
        for n in names:
            if self.ops.nodes[n]["kind"] in ("add", "concat"):
                continue
            container = next((c for c in whole if n.startswith(c + ".")), None)
            if container is not None:
                if container not in seen:
                    seen.add(container)
                    children = [self.module_of(m) for m in names if m.startswith(container + ".")]
                    skip = int(whole[container][0].rpartition(".")[2])  # ResNet-D at stride 1: slot 0 empty
                    out.append((container[len(prefix):], "seq", ([("nn.Identity", [])] * skip) + children))
                continue
            out.append((n[len(prefix):], *self.module_of(n)))
        return out

    # -- classes ----------------------------------------------------------------------------
    def block_class(self, path: str) -> tuple[str, list[str]]:
        """The class for the block instance at `path`, and its constructor arguments for this instance."""
        prefix = path + "."
        names = self.members(prefix)
        whole = self.containers(names, prefix)
        built = self.constructors(names, prefix, whole)
        entry = next(u for u, e in self.ops.pred[names[0]].items() if e["role"] == "main")
        code = _forward(_units(self.net, names, prefix, whole), entry)
        shape = [(attr, ctor, [(c, [a for a, _ in args]) for c, args in spec] if ctor == "seq"
                  else [a for a, _ in spec]) for attr, ctor, spec in built]
        key = (self.ops.nodes[names[0]]["block_type"], repr(shape), "\n".join(code))
        values = []
        for attr, ctor, spec in built:
            for c, args in (spec if ctor == "seq" else [(ctor, spec)]):
                values.extend(v for _, v in args)
        info = self.variants.setdefault(key, {"built": built, "code": code, "uses": [], "path": path,
                                              "in": self.ops.nodes[entry]["shape"][0],
                                              "out": self.ops.nodes[names[-1]]["shape"][0]})
        info["uses"].append((path, values, self.ops.nodes[entry]["shape"][0], self.ops.nodes[names[-1]]["shape"][0]))
        return key

    def render_classes(self) -> dict[tuple, tuple[str, list[int], list[str], list[str]]]:
        """Write one class per variant; return key -> (class name, varying positions, their parameter
        names, the constructor's signature)."""
        done, taken = {}, set()
        for key, info in self.variants.items():
            block_type = key[0]
            name = _class_name(block_type) + ("Downsample" if any(a == "downsample" for a, *_ in info["built"])
                                              and any(k[0] == block_type and k != key for k in self.variants)
                                              else "")
            base, n = name, 1
            while name in taken:
                n += 1
                name = f"{base}{n}"
            taken.add(name)
            vectors = list(zip(*[values for _, values, _, _ in info["uses"]]))
            varying = [i for i, vec in enumerate(vectors) if len(set(map(repr, vec))) > 1]
            params: dict[tuple, str] = {}
            labels: list[str] = []
            positions = self._positions(info["built"])
            ins = tuple(c for _, _, c, _ in info["uses"])
            outs = tuple(c for _, _, _, c in info["uses"])
            for i in varying:
                vec = tuple(vectors[i])
                if vec not in params:
                    attr, arg = positions[i]
                    label = ("in_channels" if vec == ins else "out_channels" if vec == outs else
                             "stride" if arg == "stride" and "stride" not in params.values() else
                             f"{attr.replace('.', '_')}_{arg}")
                    params[vec] = label
                labels.append(params[vec])
            names = {i: labels[j] for j, i in enumerate(varying)}
            signature = list(dict.fromkeys(labels))
            self.classes.append(self._class_source(name, signature, info, names))
            done[key] = (name, varying, [params[tuple(vectors[i])] for i in varying], signature)
        return done

    @staticmethod
    def _positions(built) -> list[tuple[str, str]]:
        out = []
        for attr, ctor, spec in built:
            if ctor == "seq":
                for i, (_, args) in enumerate(spec):
                    out.extend((f"{attr}.{i}", a) for a, _ in args)
            else:
                out.extend((attr, a) for a, _ in spec)
        return out

    def _class_source(self, name: str, signature: list[str], info: dict, names: dict[int, str]) -> str:
        lines = [f"class {name}(nn.Module):",
                 f'    """Block `{info["uses"][0][0]}` and the {len(info["uses"]) - 1} other uses like it."""',
                 "",
                 f"    def __init__(self{''.join(', ' + p for p in signature)}):",
                 "        super().__init__()"]
        lines += ["        " + line for line in self._init_lines(info["built"], names)]
        lines += ["", "    def forward(self, x):"] + ["        " + line for line in info["code"]]
        return "\n".join(lines)

    def _init_lines(self, built, names: dict[int, str] | None, calls: dict[str, str] | None = None) -> list[str]:
        lines, made, index = [], set(), 0
        for attr, ctor, spec in built:
            parts = attr.split(".")
            for depth in range(1, len(parts)):
                parent = ".".join(parts[:depth])
                if parent not in made:
                    made.add(parent)
                    holder = "nn.Sequential()" if parts[depth].isdigit() else "nn.Module()"
                    lines.append(_assign(parent, holder))
            if calls is not None and attr in calls:
                expr = calls[attr]
            elif ctor == "seq":
                children = []
                for child_ctor, args in spec:
                    local = {i: names[index + i] for i in range(len(args)) if names and index + i in names}
                    children.append(_render_call(child_ctor, args, local))
                    index += len(args)
                expr = "nn.Sequential(\n    " + ",\n    ".join(children) + ",\n)"
            else:
                local = {i: names[index + i] for i in range(len(spec)) if names and index + i in names}
                expr = _render_call(ctor, spec, local)
                index += len(spec)
            lines += _assign(attr, expr).split("\n")
        return lines


def _assign(attr: str, expr: str) -> str:
    parent, _, leaf = attr.rpartition(".")
    if leaf.isdigit():
        return f"{_call_name(parent)}.add_module({leaf!r}, {expr})"
    return f"{_call_name(attr)} = {expr}"


def eject(net: "Network", model=None) -> str:
    """Standalone PyTorch source for `net`."""
    from .. import __version__
    writer = _Writer(net)
    ops = net.ops
    blocks: dict[str, tuple] = {}  # outermost block path -> variant key
    for name, data in ops.nodes.items():
        path = data.get("block")
        if path and path not in blocks and not any(path.startswith(b + ".") for b in blocks):
            blocks[path] = writer.block_class(path)
    classes = writer.render_classes()

    def instance_call(path: str) -> str:
        key = blocks[path]
        cls, varying, labels, signature = classes[key]
        info = writer.variants[key]
        values = next(v for p, v, _, _ in info["uses"] if p == path)
        chosen = dict(zip(labels, (values[i] for i in varying)))
        return f"{cls}({', '.join(repr(chosen[p]) for p in signature)})"

    # the network's own scope: stages and block instances are called whole
    names = writer.members("")
    whole = writer.containers(names, "")
    built = []
    calls: dict[str, str] = {}
    covered: set[str] = set()
    for stage in net.stages:
        members = [n for n in names if ops.nodes[n]["stage"] == stage.name]
        whole[stage.name] = (members[0], members[-1])
        repeats = sorted({b for b in blocks if b.startswith(stage.name + ".")}, key=lambda b: int(b.split(".")[1]))
        calls[stage.name] = "nn.Sequential(\n    " + ",\n    ".join(instance_call(b) for b in repeats) + ",\n)"
        covered.update(members)
    for path in blocks:
        if ops.nodes[next(n for n in names if ops.nodes[n]["block"] == path)]["stage"] is None:
            members = [n for n in names if (ops.nodes[n]["block"] or "").startswith(path)]
            whole[path] = (members[0], members[-1])
            calls[path] = instance_call(path)
            covered.update(members)
    for name in names:
        if name in covered or ops.nodes[name]["kind"] in ("add", "concat"):
            continue
        container = next((c for c in whole if name.startswith(c + ".")), None)
        if container is not None and container not in [b[0] for b in built]:
            children = [writer.module_of(m) for m in names if m.startswith(container + ".")]
            built.append((container, "seq", children))
        elif container is None:
            built.append((name, *writer.module_of(name)))
    order = {n: i for i, n in enumerate(names)}
    for path in calls:
        built.append((path, "call", None))
    built.sort(key=lambda item: order[whole[item[0]][0]] if item[0] in whole else order[item[0]])
    units = _units(net, names, "", whole)
    forward = _forward(units, "input")
    init = writer._init_lines(built, None, calls)
    zero_init = [n for n, d in ops.nodes.items() if d["kind"] == "bn" and d["attrs"].get("zero_init")]
    class_name = _class_name(net.name)
    helpers = []
    kinds = {d["kind"] for d in ops.nodes.values()}
    for cls, needed in ((SqueezeExcite, "se"), (ZeroPadShortcut, "zeropad")):
        if needed in kinds:
            helpers.append(inspect.getsource(cls))
    source = [f'"""{net.name}: ejected by resdsl {__version__} from {net.path}.',
              "",
              "Needs torch alone. build() returns the network with torchvision's initialisation;",
              "module names match resdsl's compiled module (and torchvision / timm where those have the model),",
              "so their state dicts load with strict=True.",
              '"""',
              "",
              "import torch",
              "import torch.nn.functional as F",
              "from torch import nn",
              "", ""]
    source += [h.rstrip() + "\n\n" for h in helpers]
    source += [c + "\n\n" for c in writer.classes]
    source += [f"class {class_name}(nn.Module):",
               f'    """{net.name}: {net.params:,} parameters, {net.macs:,} multiply-accumulates on '
               f'{"x".join(map(str, net.input_shape))}."""',
               "",
               "    def __init__(self):",
               "        super().__init__()"]
    source += ["        " + line for line in init]
    source += ["", "    def forward(self, x):"] + ["        " + line for line in forward]
    source += ["", "",
               "def build() -> nn.Module:",
               f'    """{net.name}, initialised as torchvision does (Kaiming normal, fan_out; BN 1 and 0)."""',
               f"    model = {class_name}()",
               "    for m in model.modules():",
               "        if isinstance(m, nn.Conv2d):",
               '            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
               "        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):",
               "            nn.init.ones_(m.weight)",
               "            nn.init.zeros_(m.bias)",
               "    with torch.no_grad():"]
    source += [f"        model.get_submodule({n!r}).weight.zero_()" for n in zero_init] or ["        pass"]
    source += ["    return model", ""]
    return "\n".join(source)
