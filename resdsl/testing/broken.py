"""Broken specs for robustness tests: `invalid_networks()` (one deliberate mistake each, with the
error code resdsl must report) and `mutated_sources()` (valid texts damaged: character and token
edits, random characters, keywords, brackets, huge numbers, truncation), which must never crash
resdsl or hang it."""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import strategies as st

from ..library import specs_dir
from .generate import MIN_WIDTH, NetworkSpec, networks, render

# ---- deliberately invalid networks ------------------------------------------------------


@st.composite
def invalid_networks(draw) -> tuple[str, str, NetworkSpec]:
    """(source, the error code resdsl must report, the spec before the mistake)."""
    spec = draw(networks(square=True, allow_special=False))
    mistake = draw(st.sampled_from(["shrink_under_A", "groups", "stem_too_small", "identity_mismatch"]))
    stages = list(spec.stages)
    first = stages[0]
    if mistake == "shrink_under_A":
        # a first stage that drops channels below the stem's under policy A
        cin = first.in_shape[0]
        if cin <= MIN_WIDTH:
            spec = replace(spec, stem_width=MIN_WIDTH + 4)
            cin = MIN_WIDTH + 4
            first = replace(first, in_shape=(cin,) + first.in_shape[1:])
        stages[0] = replace(
            first,
            kind="basic",
            block="basic",
            width=draw(st.integers(MIN_WIDTH, cin - 1)),
            expansion=1,
            groups=1,
            shortcut="A",
            policy="A",
            se_ratio=0,
            base_width=64,
        )
        code = "E0401"
    elif mistake == "groups":
        # a custom block whose grouped conv splits channels unevenly
        cin = first.in_shape[0]
        bad = next(g for g in range(2, 70) if cin % g)
        stages[0] = replace(
            first,
            kind="custom",
            block="custom0",
            groups=bad,
            kernel=3,
            dilation=1,
            se_ratio=0,
            width=bad * draw(st.integers(1, 4)),
        )
        code = "E0402"
    elif mistake == "stem_too_small":
        # a stem kernel larger than the padded input
        h = spec.input_shape[1]
        spec = replace(spec, stem_kernel=h + 3, stem_padding=0, stem_stride=1)
        code = "E0403"
    else:
        # `shortcut identity` on a stage that changes the shape
        stages[0] = replace(
            first,
            kind="basic",
            block="basic",
            width=first.in_shape[0] + 4,
            expansion=1,
            groups=1,
            se_ratio=0,
            base_width=64,
            shortcut="identity",
            policy="identity",
            stride=draw(st.sampled_from([1, 2])),
        )
        code = "E0401"
    spec = replace(spec, stages=tuple(stages))
    return render(spec), code, spec


# ---- mutations --------------------------------------------------------------------------

_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:x[0-9]+)*|->|==|!=|<=|>=|//|\*\*|"[^"\n]*"|\s+|.', re.S)

KEYWORDS = [
    "use",
    "block",
    "network",
    "input",
    "shortcut",
    "residual",
    "dense",
    "stem",
    "head",
    "if",
    "else",
    "x",
    "true",
    "false",
    "not",
    "and",
    "or",
    "->",
    "=",
    ",",
    ":",
    "#",
    "\\\n",
    "\n",
    "\r\n",
    "\r",
    "\t",
    '"',
    'use "blocks.res"',
    'use "resnet.res"',
    'use "missing.res"',
    'use ""',
    'use "../specs/blocks.res"',
    'use "' + "a" * 300 + '.res"',
    'use "specs"',
    'use "."',
    # expressions of docs/language.md §23-24: functions, powers, comprehensions, names made from values
    "for",
    "**",
    "round(",
    "log(0)",
    "range(100000)",
    "[i for i in range(9) if i]",
    "2 ** 64",
    '"b{repetition}"',
    '"{"',
    '"}"',
    '"{{x}}"',
    '"s1"."b{repetition + 1}":',
    "residual {",
    "dense {",
    "stem {",
    "head {",
    "block b(w) { conv w k3 }",
    "network m { input 3x8x8 }",
    "input 3x8x8",
    "input 0x0x0",
    "input 3x8",
    "input 3 x 8 x 8 x 8",
    "shortcut A",
    "shortcut identity",
    "shortcut none",
    "shortcut Z",
    "basic(8)",
    "bottleneck(4) x2 s2",
    "x3",
    "x0",
    "s2",
    "k3",
    "p1",
    "d2",
    "g3",
    "g=3",
    "k4096",
    "k4097",
    "s4097",
    "x100001",
    "stride=",
    "conv",
    "conv 8",
    "bn",
    "relu",
    "maxpool",
    "avgpool k3",
    "fc",
    "fc 10",
    "se",
    "se 3",
    "flatten",
    "dropout 2.0",
    "identity",
    "zeropad",
    "A",
    "B",
    "C",
    "D",
    "None",
    "classes",
    "width",
    "stride",
    "groups",
    "[1, 2][5]",
    "1 / 0",
    "7 / 2",
    "3 // 0",
    "1.5",
    "1e400",
    "-1",
    "not 3",
    "[]",
    "[,]",
]
HUGE_NUMBERS = [
    "0",
    "-1",
    "00",
    "2147483647",
    "2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "1" + "0" * 40,
    "9" * 41,
    "9" * 400,
    "1e308",
    "1e309",
    "4096",
    "4097",
    "100001",
    "1000000",
    "0.5",
    "3.0",
    "1" + "0" * 500,
]
BRACKETS = ["(", ")", "[", "]", "{", "}", "{}", "()", "[]"]


def _deep(n: int) -> list[str]:
    return [
        "(" * n + "1" + ")" * n,
        "[" * n,
        "{" * n,
        "(" * n,
        "1" + "+1" * n,
        "-" * n + "1",
        "not " * n + "true",
        "a" * n,
    ]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


@st.composite
def mutate(draw, text: str) -> str:
    """Apply 1–4 random damaging edits to `text`."""
    for _ in range(draw(st.integers(1, 4))):
        n = len(text)
        op = draw(
            st.sampled_from(
                [
                    "delete_chars",
                    "duplicate_chars",
                    "swap_chars",
                    "delete_token",
                    "duplicate_token",
                    "swap_tokens",
                    "insert_chars",
                    "insert_bytes",
                    "insert_keyword",
                    "insert_bracket",
                    "replace_number",
                    "insert_deep",
                    "truncate",
                    "replace_token",
                ]
            )
        )
        i = draw(st.integers(0, n))
        if op == "delete_chars":
            j = draw(st.integers(i, min(n, i + 12)))
            text = text[:i] + text[j:]
        elif op == "duplicate_chars":
            j = draw(st.integers(i, min(n, i + 40)))
            text = text[:j] + text[i:j] * draw(st.integers(1, 3)) + text[j:]
        elif op == "swap_chars" and n >= 2:
            a, b = sorted((min(i, n - 1), draw(st.integers(0, n - 1))))
            text = text[:a] + text[b] + text[a + 1 : b] + text[a] + text[b + 1 :]
        elif op in ("delete_token", "duplicate_token", "swap_tokens", "replace_token"):
            tokens = _tokens(text)
            if not tokens:
                continue
            t = draw(st.integers(0, len(tokens) - 1))
            if op == "delete_token":
                del tokens[t]
            elif op == "duplicate_token":
                tokens.insert(t, tokens[t])
            elif op == "swap_tokens":
                u = draw(st.integers(0, len(tokens) - 1))
                tokens[t], tokens[u] = tokens[u], tokens[t]
            else:
                tokens[t] = draw(st.sampled_from(KEYWORDS + HUGE_NUMBERS))
            text = "".join(tokens)
        elif op == "insert_chars":
            text = text[:i] + draw(st.text(min_size=1, max_size=6)) + text[i:]
        elif op == "insert_bytes":
            raw = draw(st.binary(min_size=1, max_size=6))
            text = text[:i] + raw.decode("latin-1") + text[i:]
        elif op == "insert_keyword":
            word = draw(st.sampled_from(KEYWORDS))
            text = text[:i] + draw(st.sampled_from([" ", "", "\n"])) + word + " " + text[i:]
        elif op == "insert_bracket":
            text = text[:i] + draw(st.sampled_from(BRACKETS)) * draw(st.integers(1, 3)) + text[i:]
        elif op == "replace_number":
            numbers = list(re.finditer(r"[0-9]+", text))
            if not numbers:
                continue
            m = numbers[draw(st.integers(0, len(numbers) - 1))]
            new = draw(st.sampled_from(HUGE_NUMBERS) | st.integers(0, 300).map(str))
            text = text[: m.start()] + new + text[m.end() :]
        elif op == "insert_deep":
            depth = draw(st.sampled_from([10, 63, 64, 65, 200, 3000]))
            text = text[:i] + draw(st.sampled_from(_deep(depth))) + text[i:]
        elif op == "truncate":
            text = text[:i]
    return text


def bundled_sources() -> st.SearchStrategy[str]:
    """The texts of the bundled specs (they use more of the language: if/else, dense, aliases)."""
    texts = sorted(p.read_text(encoding="utf-8") for p in specs_dir().glob("*.res"))
    return st.sampled_from(texts) if texts else st.nothing()


def mutated_sources(sources=None) -> st.SearchStrategy[str]:
    """Damaged versions of valid sources.

    `sources`: a strategy of .res texts, one text, or None for generated
    networks (mostly) and the bundled specs.
    """
    if sources is None:
        generated = networks().map(lambda spec: spec.source)
        sources = st.one_of(generated, generated, bundled_sources())
    elif isinstance(sources, str):
        sources = st.just(sources)
    return sources.flatmap(mutate)
