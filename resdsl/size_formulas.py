"""Valid sizes and output sizes in words, for `summary --input-sizes` and `verify --input-range`.

`describe` turns a set of valid sizes into a run, a stride or a repeating pattern ("H from 9 with H
odd"); `fit` finds the formula floor((X + a)/S) + b that maps an axis's input size to a part's
output size, and `show` writes it with the axis's letter (L; D, H, W).
"""

from __future__ import annotations

from collections.abc import Callable


def _bits(valid: tuple[int, ...], low: int, high: int) -> bytearray:
    bits = bytearray(high - low + 1)
    for v in valid:
        bits[v - low] = 1
    return bits


def _first_runs(bits: bytearray, low: int, count: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    i = bits.find(1)
    while i != -1 and len(runs) < count:
        j = bits.find(0, i)
        j = len(bits) if j == -1 else j
        runs.append((low + i, low + j - 1))
        i = bits.find(1, j)
    return runs


def describe(valid: tuple[int, ...], low: int, high: int, axis: str = "H") -> str:
    """The valid sizes of `axis` in words: a run, a stride, or the runs themselves (byte maps: fast
    for a million sizes)."""
    if not valid:
        return f"no {axis} from {low} to {high}"
    bits = _bits(valid, low, high)
    n_runs = (b"\0" + bytes(bits)).count(b"\0\1")
    if n_runs == 1:
        a, b = valid[0], valid[-1]
        if (a, b) == (low, high):
            return f"every {axis} from {low} to {high}"
        return f"{axis} from {a} to {b}" if b < high else f"every {axis} from {a} (up to {high})"
    # a stride: every m-th size from the first one on
    first, last, step = valid[0], valid[-1], valid[1] - valid[0]
    if (
        len(valid) == (last - first) // step + 1
        and bits[first - low : last - low + 1 : step].count(0) == 0
        and last + step > high
    ):
        if step == 2:
            parity = "odd" if first % 2 else "even"
            return f"{axis} from {first} with {axis} {parity}"
        return f"{axis} from {first} with {axis} ≡ {first % step} (mod {step})"
    # a pattern that repeats every m sizes (ceil and floor halvings that must agree)
    window = bytes(bits[first - low :])
    for m in range(2, min(65, (high - first + 1) // 2 + 1)):  # seen at least twice over
        if window[m:] == window[:-m] and 0 in window[:m]:
            residues = sorted({(first + i) % m for i in range(m) if window[i]})
            return f"{axis} from {first} with {axis} mod {m} in {{{', '.join(map(str, residues))}}}"
    runs = _first_runs(bits, low, 8)
    shown = ", ".join(f"{a}..{b}" if a != b else f"{a}" for a, b in runs)
    return f"{axis} in {shown}" + (f", … ({n_runs} runs)" if n_runs > 8 else "")


Fit = tuple[int, int, int]  # (S, a, b): floor((X + a)/S) + b; (0, 0, c) for the constant c


def fit(
    pairs: list[tuple[int, int]], first: tuple[int, ...] = (), accept: Callable[[int], bool] = lambda s: True
) -> Fit | None:
    """(S, a, b) with floor((X + a)/S) + b = out for every (X, out), 0 <= a < S; (0, 0, c) for a
    constant. `first`: divisors to try first; `accept(S)`: whether a fit with divisor S holds beyond
    the pairs."""
    if not pairs:
        return None
    if len({o for _, o in pairs}) == 1 and accept(0):
        return (0, 0, pairs[0][1])
    h_max, o_max = max(pairs)
    guess = max(1, round(h_max / o_max)) if o_max else 1
    candidates = dict.fromkeys(
        [*first, *range(1, 65), *(1 << k for k in range(13)), *range(max(1, guess - 2), guess + 3)]
    )
    for s in candidates:
        if s < 1 or not accept(s):
            continue
        for a in range(s):  # floor((X + a)/S) + b, with 0 <= a < S: one way to write each such formula
            b = pairs[0][1] - (pairs[0][0] + a) // s
            if all(o == (h + a) // s + b for h, o in pairs):
                return (s, a, b)
    return None


def show(found: Fit, axis: str = "H") -> str:
    s, a, b = found
    if s == 0:
        return str(b)
    tail = f" {'+' if b > 0 else '-'} {abs(b)}" if b else ""
    if s == 1:
        return f"{axis}{tail}"
    if a == 0:
        return f"floor({axis}/{s}){tail}"
    if a == s - 1:
        return f"ceil({axis}/{s}){tail}"
    return f"floor(({axis} + {a})/{s}){tail}"


def formula(pairs: list[tuple[int, int]], axis: str = "H") -> str | None:
    """A formula f with f(X) = out for every (X, out): a constant, X, ceil(X/S), floor((X + a)/S) + b."""
    found = fit(pairs)
    return None if found is None else show(found, axis)
