"""One way to write a count, everywhere a person reads one (check, summary, draw, train).

    >>> format_count(4_087_156_736)
    '4.09 G'
    >>> format_count(269_722)
    '270 k'
    >>> format_count(512)
    '512'

Three significant figures with an SI prefix (k, M, G, T): the form torchvision's
docs and timm's tables use for GFLOPs and parameters. Exact figures are always
printed beside it with thousands separators (`format_exact`).
"""

from __future__ import annotations

_PREFIXES = (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))


def format_count(n: int | float) -> str:
    """`4.09 G`, `40.6 M`, `270 k`, `512`: three significant figures and an SI prefix."""
    if n != n or n in (float("inf"), float("-inf")):  # NaN or infinite: say so rather than guess
        return str(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    scale = [(prefix, size) for prefix, size in reversed(_PREFIXES) if n >= size]  # smallest first
    if not scale:
        return f"{sign}{_three(n) if isinstance(n, float) and not n.is_integer() else int(n)}"
    prefix, size = scale[-1]
    bigger = {p: q for (p, _), q in zip(_PREFIXES[1:], _PREFIXES)}  # k -> M, M -> G, G -> T
    if float(f"{n / size:.3g}") >= 1000 and prefix in bigger:  # 999,999 is "1.00 M", not "1000 k"
        prefix, size = bigger[prefix]
    return f"{sign}{_three(n / size)} {prefix}"


def _three(x: float) -> str:
    """Three significant figures without scientific notation: 4.09, 40.6, 270."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def format_exact(n: int) -> str:
    """`25,557,032`."""
    return f"{n:,}"
