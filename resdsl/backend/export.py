"""What `resdsl compile` writes: a torch.export program, TorchScript, ONNX or a state dict.

Every output goes through files.write_atomically, so an interrupted compile
never leaves half a file where a good one was.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import torch

from ..files import write_atomically
from ..library import UsageError

if TYPE_CHECKING:
    from ..network import Network

EMITS = {"pt2": ".pt2", "torchscript": ".ts.pt", "onnx": ".onnx", "state": ".pth", "python": ".py"}


def example_input(net: "Network", batch: int = 2) -> torch.Tensor:
    return torch.randn((batch,) + tuple(net.input_shape))


def emit(net: "Network", model: torch.nn.Module, kind: str, out: str) -> None:
    model.eval()
    if kind == "pt2":
        program = torch.export.export(model, (example_input(net),))
        write_atomically(out, lambda f: torch.export.save(program, f))
    elif kind == "torchscript":
        scripted = torch.jit.script(model)
        write_atomically(out, lambda f: torch.jit.save(scripted, f))
    elif kind == "onnx":
        missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            raise UsageError(f"--emit onnx needs the {' and '.join(missing)} package"
                             f"{'s' if len(missing) > 1 else ''}: pip install {' '.join(missing)}")
        program = torch.onnx.export(model, (example_input(net),), dynamo=True)
        write_atomically(out, lambda f: f.write(program.model_proto.SerializeToString()))
    elif kind == "state":
        from .. import __version__
        payload = {"state_dict": model.state_dict(), "network": net.name, "spec": net.sources.get(net.path, ""),
                   "sources": dict(net.sources), "resdsl_version": __version__,
                   "input_shape": list(net.input_shape)}
        write_atomically(out, lambda f: torch.save(payload, f))
    elif kind == "python":
        from .eject import eject
        source = eject(net, model)
        write_atomically(out, lambda f: f.write(source.encode("utf-8")))
    else:  # pragma: no cover - argparse restricts the choices
        raise UsageError(f"unknown --emit {kind}")
