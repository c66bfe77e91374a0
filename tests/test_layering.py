"""The pipeline's data flows one way: no module imports a module above it, and no imports go round in a circle.

Ranks follow the pipeline (README, "Layout"). The test reads every import
statement of the package, at module level and inside functions, except those
under `if TYPE_CHECKING:` (annotations only). Ranks order the top-level
modules; the cycle check works on every module, so it also sees a circle
inside one rank or inside `backend/`, `train/`, `ops/` and `testing/`. It also
checks that check and summary never import torch, networkx or graphviz.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "resdsl"

RANK = {
    "errors": 0,
    "units": 0,
    "reserved": 0,
    "near_keywords": 0,
    "version": 0,
    "syntax": 1,
    "syntax_errors": 1,
    "files": 1,
    "values": 2,
    "functions": 2,  # the builtin functions of expressions, on values
    "evaluation": 2,  # expressions evaluated: values, operators, comprehensions, functions
    "parse": 2,
    "labels": 2,  # the parse side of names: label and group paths, quoted names
    "format_layout": 1,  # `resdsl fmt`'s rules, on tokens
    "format": 3,  # `resdsl fmt`: parse, then the layout
    "format_edits": 4,  # the formatter's answer to an editor: line edits
    "graph": 3,
    "ops": 3,
    "network": 3,  # the op kinds, the typed graph and the Network result sit low
    "outputs": 3,  # a network's outputs: key, point, shape, stride (Network holds them)
    "library": 4,
    "requirements": 4,
    "scope": 5,
    "binding": 5,
    "branches": 5,
    "calls": 5,
    "naming": 5,  # the elaboration side of names: claimed, checked, groups reopened
    "points": 5,  # `output` and `from`: labelled points of the elaboration
    "elaborate": 5,
    "shapes": 6,
    "analysis": 7,
    "pipeline": 8,
    "record": 8,
    "memory": 8,
    "report": 8,
    "deploy_plan": 8,  # --deploy's graph rewrite (torch-free): analysis's counts over the rewritten graph
    "input_sizes": 8,
    "axis_sizes": 8,  # one spatial axis through the graph, for input_sizes
    "size_formulas": 8,
    "draw": 9,
    "backend": 9,
    "formats": 8,
    "verify": 9,
    "space": 1,
    "train": 10,
    "testing": 10,
    "lsp": 11,  # the language server: analyses a buffer through the pipeline, answers the editor
    "arguments": 11,  # the exit codes, argparse types and option groups the commands share
    "cli": 12,
    "verify_cli": 12,
    "train_cli": 12,
    "format_cli": 12,
    "pytest_plugin": 12,
    "__main__": 12,
    "__init__": 12,
}
# The two facade methods of Network reach up on demand, by design: `net.to_torch()` and Jupyter's display.
ALLOWED_UPWARD = {("network", "backend"), ("network", "draw"), ("network", "record")}


def top(module: str) -> str:
    """resdsl.ops.conv -> ops; resdsl.backend.eject -> backend."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import of the package by `path` (a file of the package at `root`)
    outside `if TYPE_CHECKING:`, at module level or inside functions."""
    return [(target, line) for target, line, _ in runtime_imports(path, root)]


def runtime_imports(path: Path, root: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of the package by `path`, relative
    (`from .shapes import x`) or absolute (`import resdsl.shapes`), outside `if TYPE_CHECKING:`.
    `from .ops import conv` names `resdsl.ops.conv` where that is a module of the package."""
    package = list(path.relative_to(root.parent).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    lazy = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for n in ast.walk(node)
        if n is not node
    }
    name = root.name

    def is_module(dotted: str) -> bool:
        where = root.parent.joinpath(*dotted.split("."))
        return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()

    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names if alias.name.split(".")[0] == name]
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == name):
            base = package[: len(package) - node.level + 1] if node.level else []
            for alias in node.names:
                if node.module is None:
                    targets.append(".".join(base + [alias.name]))
                else:
                    module = ".".join(base + [node.module])
                    submodule = f"{module}.{alias.name}"
                    targets.append(submodule if is_module(submodule) else module)
        found += [(target, node.lineno, id(node) in lazy) for target in targets]
    return found


def upward_imports(root: Path) -> list[str]:
    """Every import of a module ranked above its importer, as `path:line imports module`."""
    wrong = []
    for path in sorted(root.rglob("*.py")):
        importer = top(".".join(path.relative_to(root.parent).with_suffix("").parts))
        for target, line in imports(path, root):
            imported = top(target)
            assert imported in RANK and importer in RANK, f"{path}: give {imported!r} or {importer!r} a rank"
            if RANK[imported] > RANK[importer] and (importer, imported) not in ALLOWED_UPWARD:
                wrong.append(f"{path.relative_to(root.parent)}:{line} imports {target}")
    return wrong


def test_no_module_imports_a_module_above_it():
    wrong = upward_imports(PACKAGE)
    assert not wrong, "\n".join(wrong)


def test_an_upward_import_is_found(tmp_path):
    """The checker itself, on a small package: graph importing shapes, even inside a function, is wrong;
    an annotation-only import is not."""
    root = tmp_path / "resdsl"
    root.mkdir()
    (root / "shapes.py").write_text("from .graph import OpGraph\n")
    (root / "graph.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .shapes import x\n"
        "def f():\n    from .shapes import infer\n"
    )
    assert upward_imports(root) == ["resdsl/graph.py:5 imports resdsl.shapes"]


def import_graph(root: Path) -> nx.DiGraph:
    """Module -> module for every runtime import of the package at `root` (a package is its `__init__`),
    each edge with the line of its first import and whether every import along it is inside a function."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for importer, path in modules.items():
        for target, line, lazy in runtime_imports(path, root):
            while target not in modules and "." in target:  # `from .x import name` of a module not in the tree
                target = target.rsplit(".", 1)[0]
            if target == importer:
                continue
            if graph.has_edge(importer, target):
                graph.edges[importer, target]["lazy"] &= lazy
            else:
                graph.add_edge(importer, target, line=line, lazy=lazy, where=f"{path.relative_to(root.parent)}:{line}")
    return graph


def import_cycles(root: Path) -> list[str]:
    """Every circle of imports, as `a -> b -> a` with the line of each step. Only the reach-ups of
    ALLOWED_UPWARD may close a circle, and only from inside a function (they run long after both
    modules are loaded)."""
    graph = import_graph(root)
    graph.remove_edges_from(
        [(a, b) for a, b, lazy in graph.edges(data="lazy") if lazy and (top(a), top(b)) in ALLOWED_UPWARD]
    )
    cycles = []
    rotated = [cycle[cycle.index(min(cycle)) :] + cycle[: cycle.index(min(cycle))] for cycle in nx.simple_cycles(graph)]
    for cycle in sorted(rotated, key=lambda c: (len(c), c)):
        steps = zip(cycle, cycle[1:] + cycle[:1])
        cycles.append(
            " -> ".join(cycle + cycle[:1]) + " (" + ", ".join(graph.edges[a, b]["where"] for a, b in steps) + ")"
        )
    return cycles


def test_no_imports_go_round_in_a_circle():
    cycles = import_cycles(PACKAGE)
    assert not cycles, "\n".join(cycles)


def test_a_circle_is_found(tmp_path):
    """The checker itself: a circle inside one rank (cli and train_cli), one inside a subpackage even when
    one side imports inside a function, and none for an annotation-only import."""
    root = tmp_path / "resdsl"
    (root / "backend").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "cli.py").write_text("def f():\n    from .train_cli import g\n")
    (root / "train_cli.py").write_text("from .cli import EXIT_OK\n")
    (root / "backend" / "__init__.py").write_text("from . import eject\n")
    (root / "backend" / "eject.py").write_text("from .render import x\n")
    (root / "backend" / "render.py").write_text("def f():\n    from .eject import y\n")
    (root / "graph.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .shapes import x\n")
    (root / "shapes.py").write_text("import resdsl.graph\n")
    assert import_cycles(root) == [
        "resdsl.backend.eject -> resdsl.backend.render -> resdsl.backend.eject "
        "(resdsl/backend/eject.py:1, resdsl/backend/render.py:2)",
        "resdsl.cli -> resdsl.train_cli -> resdsl.cli (resdsl/cli.py:2, resdsl/train_cli.py:1)",
    ]


def test_check_and_summary_import_neither_torch_nor_networkx_nor_graphviz():
    code = (
        "import sys; from resdsl.cli import main; main(['check', 'resnet50']); main(['summary', 'resnet20']);"
        "heavy = [m for m in ('torch', 'networkx', 'graphviz', 'pygls', 'lsprotocol') if m in sys.modules];"
        "sys.exit(f'imported {heavy}' if heavy else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
