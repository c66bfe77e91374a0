"""resdsl: a declarative language and compiler for residual networks.

    >>> import resdsl
    >>> net = resdsl.load("resnet50")
    >>> net.params, net.macs, net.output_shape
    (25557032, 4089184256, (1000,))
"""

from .errors import Diagnostic, SpecError
from .errors import UsageError
from .network import Network, load, loads

__version__ = "0.1.0"
__all__ = ["Diagnostic", "Network", "SpecError", "UsageError", "load", "loads", "__version__"]
