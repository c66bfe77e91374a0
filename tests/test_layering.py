"""The pipeline's data flows one way: no module imports a module above it.

Ranks follow the pipeline (README, "Layout"). The test reads every import
statement of the package, at module level and inside functions, except those
under `if TYPE_CHECKING:` (annotations only), and also checks that check and
summary never import torch, networkx or graphviz.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "resdsl"

RANK = {
    "errors": 0, "units": 0, "reserved": 0, "near_keywords": 0, "version": 0,
    "syntax": 1, "syntax_errors": 1, "files": 1,
    "values": 2, "parse": 2,
    "graph": 3, "ops": 3, "network": 3,       # the op kinds, the typed graph and the Network result sit low
    "library": 4, "requirements": 4,
    "scope": 5, "binding": 5, "branches": 5, "calls": 5, "elaborate": 5,
    "shapes": 6,
    "analysis": 7,
    "pipeline": 8, "memory": 8, "report": 8, "input_sizes": 8,
    "draw": 9, "backend": 9, "formats": 8, "verify": 9, "space": 1,
    "train": 10, "testing": 10,
    "cli": 11, "verify_cli": 11, "train_cli": 11, "pytest_plugin": 11, "__main__": 11, "__init__": 11,
}
# The two facade methods of Network reach up on demand, by design: `net.to_torch()` and Jupyter's display.
ALLOWED_UPWARD = {("network", "backend"), ("network", "draw")}


def top(module: str) -> str:
    """resdsl.ops.conv -> ops; resdsl.backend.eject -> backend."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every relative import of `path` (a file of the package at `root`)
    outside `if TYPE_CHECKING:`, at module level or inside functions."""
    package = list(path.relative_to(root.parent).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
               for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package[:len(package) - node.level + 1]
        for alias in node.names:
            found.append((".".join(base + ([node.module] if node.module else [alias.name])), node.lineno))
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
    (root / "graph.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .shapes import x\n"
                                   "def f():\n    from .shapes import infer\n")
    assert upward_imports(root) == ["resdsl/graph.py:5 imports resdsl.shapes"]


def test_check_and_summary_import_neither_torch_nor_networkx_nor_graphviz():
    code = ("import sys; from resdsl.cli import main; main(['check', 'resnet50']); main(['summary', 'resnet20']);"
            "heavy = [m for m in ('torch', 'networkx', 'graphviz') if m in sys.modules];"
            "sys.exit(f'imported {heavy}' if heavy else 0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
