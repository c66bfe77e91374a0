"""The torch backend: everything in resdsl that imports torch lives here (and in the trainer).

- module.py: Network -> torch.fx GraphModule (`to_torch`);
- weights.py: checkpoints checked against the spec, each mismatch located at its op;
- export.py: `resdsl compile` outputs (torch.export, TorchScript, ONNX, state dict).
"""

from .module import to_torch

__all__ = ["to_torch"]
