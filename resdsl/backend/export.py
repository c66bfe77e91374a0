"""What `resdsl compile` writes: a torch.export program, TorchScript, ONNX or a state dict.

Every output is serialised into memory first and then written through
files.write_atomically: an interrupted compile never leaves half a file where a
good one was, and a full disk is a Python error (`cannot write PATH: No space
left on device`) rather than an abort inside torch's C++ file writer.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

import torch

from ..errors import UsageError
from ..files import write_atomically

if TYPE_CHECKING:
    from ..network import Network

EMITS = {"pt2": ".pt2", "torchscript": ".ts.pt", "onnx": ".onnx", "state": ".state.pt", "python": ".py"}
EXAMPLE_BATCH = 2  # the batch torch.export traces with (and memory.check_memory sizes)
PACKAGES = {"onnx": ("onnx", "onnxscript")}  # what an --emit needs beyond torch


def require_packages(kind: str) -> None:
    """Fail before any work if `--emit kind` needs a package that is not installed."""
    missing = [m for m in PACKAGES.get(kind, ()) if not _installed(m)]
    if missing:
        raise UsageError(
            f"--emit {kind} needs the {' and '.join(missing)} package"
            f"{'s' if len(missing) > 1 else ''}: pip install {' '.join(missing)}"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked with sys.modules[name] = None
        return False


def example_input(net: Network, batch: int = EXAMPLE_BATCH) -> torch.Tensor:
    return torch.randn((batch,) + tuple(net.input_shape))


def _in_memory(save: Callable[[IO[bytes]], None]) -> bytes:
    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()


def _script(model: torch.nn.Module) -> bytes:
    """TorchScript, without the warnings torch prints for it: the deprecation of torch.jit (the user
    asked for TorchScript by name) and a note on an annotation inside torch.fx's GraphModule, neither of
    which the user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        warnings.filterwarnings(
            "ignore",
            message="The TorchScript type system doesn't support instance-level annotations",
            category=UserWarning,
        )
        scripted = torch.jit.script(model)
        return _in_memory(lambda f: torch.jit.save(scripted, f))


def emit(net: Network, model: torch.nn.Module, kind: str, out: str, deployed: bool = False) -> None:
    """Write `model` (built from `net`) as `kind`; `deployed`: net is a --deploy form (deploy_plan.py),
    whose Python is one flat class and whose state file says so."""
    require_packages(kind)
    model.eval()
    if kind == "pt2":
        program = torch.export.export(model, (example_input(net),))
        data = _in_memory(lambda f: torch.export.save(program, f))
    elif kind == "torchscript":
        data = _script(model)
    elif kind == "onnx":
        onnx_program = torch.onnx.export(model, (example_input(net),), dynamo=True)
        assert onnx_program is not None  # the dynamo exporter returns its program
        data = onnx_program.model_proto.SerializeToString()
    elif kind == "state":
        from ..version import __version__

        payload = {
            "state_dict": model.state_dict(),
            "network": net.name,
            "spec": net.sources.get(net.path, ""),
            "sources": dict(net.sources),
            "resdsl_version": __version__,
            "input_shape": list(net.input_shape),
            "deployed": deployed,  # its state dict loads into the deployed form (deploy_plan.plan_deploy)
        }
        data = _in_memory(lambda f: torch.save(payload, f))
    elif kind == "python" and deployed:
        from .eject_deploy import eject_deployed

        data = eject_deployed(net).encode("utf-8")
    elif kind == "python":
        from .eject import eject

        data = eject(net, model).encode("utf-8")
    else:  # pragma: no cover - argparse restricts the choices
        raise UsageError(f"unknown --emit {kind}")

    def write(f: IO[bytes]) -> None:
        f.write(data)

    write_atomically(out, write)
