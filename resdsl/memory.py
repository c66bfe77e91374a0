"""Will a run fit in memory? Refuse before allocating, with a located error (E0506).

`resdsl compile` runs an example batch of 2 through torch.export and `resdsl train` a batch of
`--batch-size`; a spec that checks (`--input 3x100000x100000` is a valid shape) could otherwise ask
the allocator for terabytes and die with a traceback, or be killed by the kernel. The estimate comes
from shapes alone (analysis.memory_estimate); the limit is the machine's physical memory (the free
memory of a CUDA device), or `--max-memory`.
"""

from __future__ import annotations

import os
import re

from .analysis import MemoryEstimate, memory_estimate
from .errors import Diagnostic, SpecError
from .graph import show_shape
from .network import Network
from .units import format_count

_SIZE = re.compile(r"(?i)\s*([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([kmgt]?)i?b?\s*")
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """`64G`, `1.5T`, `512MB`, `8GiB` (read as 8 G: the estimate is not that precise), `1e9`: bytes."""
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f"expected a size such as 16G, 512M or 1e9, not {text!r}")
    value = float(m.group(1)) * _SCALE[m.group(2).lower()]
    if not 0 < value < 1e18:
        raise ValueError(f"expected a positive size, not {text!r}")
    return int(value)


def physical_memory() -> int | None:
    """The machine's RAM in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def show_bytes(n: int) -> str:
    return f"{format_count(n)}B"


def check_memory(
    net: Network,
    batch: int,
    *,
    training: bool,
    limit: int | None,
    where: str,
    activation_bytes: int = 4,
    extra: int = 0,
    extra_what: str = "",
) -> MemoryEstimate:
    """Raise SpecError E0506 at the network's input line if the estimate exceeds `limit` bytes.

    `where` says whose limit it is ("the 23.4 GB of memory of this machine", "--max-memory 1.00 GB");
    `extra` adds bytes the estimate does not see (the training data, held in memory), described by
    `extra_what`. A `limit` of None (unknown) checks nothing.
    """
    estimate = memory_estimate(net.ops, net.params, batch, training=training, activation_bytes=activation_bytes)
    total = estimate.total + extra
    if limit is None or total <= limit:
        return estimate
    step = "training" if training else "inference"
    notes = [
        f"{step} at batch {batch}: about {show_bytes(estimate.activations)} of activations "
        f"(the largest, `{estimate.largest}`, is {show_shape(estimate.largest_shape)} per example) and "
        f"{show_bytes(estimate.weights)} of weights" + (", gradients and optimizer state" if training else "")
    ]
    if extra:
        notes.append(f"{extra_what}: about {show_bytes(extra)}")
    span = net.ops.nodes["input"].span
    raise SpecError(
        [
            Diagnostic(
                "E0506",
                f"`{net.name}` needs about {show_bytes(total)} for input {show_shape(net.input_shape)}, "
                f"more than {where}",
                span,
                notes=tuple(notes),
                help="use a smaller --input"
                + (" or --batch-size" if training else "")
                + ", or set --max-memory if the estimate is too cautious for this machine",
            )
        ],
        net.sources,
    )
