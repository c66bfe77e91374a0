"""What the three commands (`cli`, `train_cli`, `verify_cli`) share: the exit codes, the argparse types
that read an option's text, and the option groups several subcommands take.

It sits below the commands, so none of them imports another to reach these (tests/test_layering.py).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from .files import expand

EXIT_OK, EXIT_SPEC, EXIT_USAGE = 0, 1, 2


# ---- argparse types: text -> value, or argparse.ArgumentTypeError with what was expected -------------


def input_shape(text: str) -> tuple[int, ...]:
    """--input: CxL, CxHxW, CxDxHxW, or a vector width."""
    if not re.fullmatch(r"[1-9][0-9]{0,9}(x[1-9][0-9]{0,9}){0,3}", text):
        raise argparse.ArgumentTypeError(
            f"expected CxHxW (e.g. 3x224x224), CxL (12x1000), CxDxHxW (3x16x112x112) or a vector width, not {text!r}"
        )
    from .shapes import check_input_shape  # the same limits as resdsl.load's input_shape

    try:
        return check_input_shape(tuple(int(part) for part in text.split("x")))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("input_shape sizes", "--input sizes")) from None


def assignment(text: str) -> tuple[str, str]:
    """--set: key=value."""
    key, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()) or not value.strip():
        raise argparse.ArgumentTypeError(f"expected key=value (e.g. classes=10), not {text!r}")
    return key.strip(), value.strip()


def path(text: str) -> str:
    """A path option: never empty (`-o ""` would silently mean the default), `~` expanded."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, not an empty string")
    return expand(text)


def number(convert: Callable[[str], float], accepts: Callable[[float], bool], expected: str):
    """An argparse type: `convert` the text, then keep a finite value `accepts` takes (argparse's `float`
    alone takes 'nan' and 'inf')."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if convert is int else 'a number'}, not {text!r}"
            ) from None
        if not math.isfinite(value) or not accepts(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
        return value

    return parse


positive_float = number(float, lambda v: v > 0, "a positive finite number")
positive_int = number(int, lambda v: v >= 1, "at least 1")
non_negative_float = number(float, lambda v: v >= 0, "a non-negative finite number")
non_negative_int = number(int, lambda v: v >= 0, "0 or more")


def size(text: str) -> int:
    """A memory size: 16G, 512M, 1000000."""
    from .memory import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration(text: str) -> float:
    """Seconds: `3600`, `90s`, `45m`, `12h`."""
    units = {"s": 1, "m": 60, "h": 3600}
    amount, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        value = float(amount) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 3600, 90m or 12h, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, not {text!r}")
    return value


# ---- option groups --------------------------------------------------------------------------------


def max_memory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-memory",
        type=size,
        metavar="SIZE",
        help="refuse, before allocating, a run whose tensors are estimated to need more (e.g. 16G; "
        "default: the machine's memory, or the free memory of the CUDA device)",
    )


def format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=["text", "json", "sarif", "github"],
        default="text",
        help="text (default), json, sarif (SARIF 2.1.0 for code scanning) or github "
        "(GitHub Actions annotations on the spec's lines)",
    )


def spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        type=assignment,
        action="append",
        default=[],
        help="override a network parameter (the value is an expression: 10, 2*32, [2,2,2,2], basic, A)",
    )
    parser.add_argument(
        "--input",
        dest="input_shape",
        metavar="CxHxW",
        type=input_shape,
        help="override the input shape (e.g. 3x32x32, or 64 for a vector)",
    )
    parser.add_argument("--network", metavar="NAME", help="which network, when a file defines several")
