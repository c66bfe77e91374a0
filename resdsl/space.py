"""The space `resdsl verify` checks: dimensions of values, parsed from the command line, never listed.

A dimension is a network parameter's values (`--vary depth=18,34,50`, `--vary width=16..128:8`)
or the input's spatial sizes (`--input-range 32..512`); a space is their product. Ranges stay ranges: a
dimension's length and any one value are arithmetic, and a space is sized (against MAX_SPACE)
before anything is built, so `--vary width=1..1000000000` costs three integers.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

MAX_SPACE = 10**12  # a product of dimensions beyond this is refused: it is a typo, not a space


# ---- the space ---------------------------------------------------------------------------------


class _Lazy(Sequence):
    """A sequence whose items are worked out one at a time (`at`, for 0 <= index < len), never listed."""

    def at(self, index: int):
        raise NotImplementedError

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self.at(i) for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.at(index)


class Values(_Lazy):
    """A dimension's values, lazily: the concatenation of integer ranges (shown as text, as --set takes
    them) and lists of expressions. Nothing is built: `width=1..1000000000` is three integers, and
    its length and any one value are arithmetic."""

    def __init__(self, parts: Sequence[range | tuple[str, ...]]):
        self.parts = tuple(parts)
        self._ends: list[int] = []
        total = 0
        for part in self.parts:
            total += len(part)
            self._ends.append(total)

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def at(self, index: int):
        i = bisect.bisect_right(self._ends, index)
        start = self._ends[i - 1] if i else 0
        value = self.parts[i][index - start]
        return str(value) if isinstance(value, int) else value

    def __repr__(self) -> str:
        return f"Values({self.parts!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, list)):
            return len(self) == len(other) and tuple(self) == tuple(other)
        return isinstance(other, Values) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)


class Sizes(_Lazy):
    """The input dimension's sizes, one per spatial axis, lazily. One range gives every axis the same
    size (a square, a cube: `axes` copies of each size, 2 until the network's rank is known, see
    `fitted`); one range per axis gives every size of each axis with every size of the others (the
    last axis varies fastest)."""

    def __init__(self, ranges: Sequence[range], axes: int | None = None):
        self.ranges = tuple(ranges)
        self.alike = len(self.ranges) == 1
        self.axes = (axes or 2) if self.alike else len(self.ranges)

    def fitted(self, axes: int) -> Sizes:
        """One range for every axis alike, on a network with `axes` spatial axes (per-axis ranges stay)."""
        return Sizes(self.ranges, axes) if self.alike else self

    def __len__(self) -> int:
        n = 1
        for r in self.ranges:
            n *= len(r)
        return n

    def at(self, index: int) -> tuple[int, ...]:
        if self.alike:
            return (self.ranges[0][index],) * self.axes
        sizes = []
        for r in reversed(self.ranges):
            index, i = divmod(index, len(r))
            sizes.append(r[i])
        return tuple(reversed(sizes))

    def show(self) -> str:
        """As --input-range takes it: `16..40`, `8..16x32..64:8`."""
        return "x".join(f"{r.start}..{r[-1]}" + (f":{r.step}" if r.step != 1 else "") for r in self.ranges)

    def __repr__(self) -> str:
        return f"Sizes({self.ranges!r}, {self.axes!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, list)):
            return len(self) == len(other) and tuple(self) == tuple(other)
        return isinstance(other, Sizes) and (self.ranges, self.axes) == (other.ranges, other.axes)

    def __hash__(self) -> int:
        return hash((self.ranges, self.axes))


@dataclass(frozen=True)
class Dimension:
    """One axis of the space: a network parameter, or `input` (the input's spatial sizes)."""

    name: str
    values: Sequence[Any]  # parameter values as --set text, or size tuples (L; H, W; D, H, W) for `input`; lazy

    def show(self, value: Any) -> str:
        return "x".join(map(str, value)) if self.name == "input" else str(value)


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets: `[2,2],[3,4]` is two values."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return parts


_RANGE = re.compile(r"(-?\d+)\.\.(-?\d+)(?::(\d+))?")
MAX_DIGITS = 15  # a range bound or step of more digits is refused before int() reads it (10^15 > MAX_SPACE)


def bound(text: str, what: str, whole: str) -> int:
    """One integer of a range, its digits counted before int() reads it (int() refuses more than 4,300)."""
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise UsageError(
            f"{what}: {text[:20]}{'…' if len(text) > 20 else ''} in {_short(whole)} has "
            f"{len(text.lstrip('-')):,} digits; range bounds and steps have at most {MAX_DIGITS}"
        )
    return int(text)


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _range(text: str, what: str) -> range:
    """`LO..HI` or `LO..HI:STEP` as a range object, sized (and refused past MAX_SPACE) before anything is built."""
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{what}: expected LO..HI or LO..HI:STEP (e.g. 16..128:8), not {_short(text)}")
    low, high = bound(match[1], what, text), bound(match[2], what, text)
    step = bound(match[3], what, text) if match[3] else 1
    if step < 1 or high < low:
        raise UsageError(f"{what}: {text!r} is empty (HI must be at least LO, and STEP at least 1)")
    count = (high - low) // step + 1
    if count > MAX_SPACE:
        raise UsageError(f"{what}: {text!r} has {count:,} values; at most {MAX_SPACE:,}")
    return range(low, high + 1, step)


def parse_vary(text: str) -> Dimension:
    """`NAME=VALUES`: a list (`depth=18,34,50`, `layers=[2,2,2,2],[3,4,6,3]`), an integer range with an
    optional step (`width=16..128:8`), or both (`width=8,16..64:16`). Values are expressions, as --set's.
    Ranges stay range objects: a value is worked out when a configuration needs it."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not values.strip():
        raise UsageError(f"--vary: expected NAME=VALUES (e.g. depth=18,34,50 or width=16..128:8), not {_short(text)}")
    if name == "input":
        raise UsageError(
            f"--vary {name}: `input` is not a network parameter; vary the input size with "
            "--input-range LO..HI (e.g. --input-range 32..256)"
        )
    parts: list[range | tuple[str, ...]] = []
    listed: list[str] = []
    for part in _split_top(values):
        if not part:
            raise UsageError(f"--vary {name}: an empty value in {_short(values)}")
        if _RANGE.fullmatch(part):
            if listed:
                parts.append(tuple(listed))
                listed = []
            parts.append(_range(part, f"--vary {name}"))
        else:
            listed.append(part)
    if listed:
        parts.append(tuple(listed))
    if sum(len(p) for p in parts) <= SMALL:  # small: repeated values are dropped (`8,8..32:8` is 4 values)
        return Dimension(name, tuple(dict.fromkeys(str(v) for p in parts for v in p)))
    return Dimension(name, Values(parts))


SMALL = 100_000  # a dimension of at most this many values is listed (and its repeats dropped)


MAX_AXES = 3  # D×H×W


def parse_input_range(text: str) -> Dimension:
    """`LO..HI[:STEP]`: the same size on every spatial axis (L; a square H×W; a cube D×H×W), or one
    range per axis joined by `x` (`16..32x16..64`: every H with every W; three for D×H×W). Whether the
    count fits the network is verify's to say, once the spec is read."""
    parts = text.split("x")
    if len(parts) > MAX_AXES:
        raise UsageError(
            f"--input-range: at most {MAX_AXES} ranges (one per axis, D×H×W), not {len(parts)} in {_short(text)}"
        )
    ranges = [_range(part, "--input-range") for part in parts]
    if any(r[0] < 1 for r in ranges):
        raise UsageError(f"--input-range: sizes start at 1, not {_short(text)}")
    return Dimension("input", Sizes(ranges))


@dataclass(frozen=True)
class Space:
    dimensions: tuple[Dimension, ...]

    @property
    def size(self) -> int:
        """The number of configurations: the product of the dimensions' lengths (nothing is built)."""
        n = 1
        for d in self.dimensions:
            n *= len(d.values)
        return n

    def describe(self) -> str:
        return " × ".join(f"{len(d.values)} {d.name}" for d in self.dimensions) or "the spec as written"

    def configuration(self, indices: Sequence[int]) -> dict[str, Any]:
        return {d.name: d.values[i] for d, i in zip(self.dimensions, indices)}

    def indices(self, flat: int) -> tuple[int, ...]:
        """The flat index of a configuration (in the order of itertools.product) as one index per dimension."""
        out = []
        for d in reversed(self.dimensions):
            flat, i = divmod(flat, len(d.values))
            out.append(i)
        return tuple(reversed(out))
