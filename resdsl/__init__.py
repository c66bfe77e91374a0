"""resdsl: a declarative language and compiler for residual networks.

>>> import resdsl
>>> net = resdsl.load("resnet50")
>>> net.params, net.macs, net.output_shape
(25557032, 4089184256, (1000,))
"""

from .errors import Diagnostic, SpecError, UsageError
from .network import Network
from .pipeline import load, loads
from .version import __version__

__all__ = ["Diagnostic", "Network", "SpecError", "UsageError", "load", "loads", "__version__"]
