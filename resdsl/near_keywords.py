"""Group names that are a keyword misspelt: `Residual { ... }` and `residul { ... }` are valid specs.

`NAME { ... }` is a named group (docs/language.md §11), so a keyword that takes a body, written
with a capital or a typo, still parses: `residul { conv 64 k3 }` is a group named `residul` whose
ops run in sequence, and the network has no residual add. `check` cannot call it an error (a group
may have any free name), so the elaborator warns (W0201) when a group's name is a keyword in another
case, or one edit away from it (two for the long ones; a short one with a letter replaced, as
`step`, or a name ending in a digit, as `dense1`, is taken as meant), and says which keyword was likely meant.
"""

from __future__ import annotations

# Every keyword that a `{ ... }` body follows inside a network or block body (grammars/resdsl.lark):
# the merges, the multi-branch construct and its attention, a written shortcut, `else`, the sections.
BODY_KEYWORDS: dict[str, str] = {
    "residual": "adds its input to the body's output",
    "dense": "concatenates its input with the body's output",
    "branches": "runs its body once per branch and merges them",
    "attend": "weighs the branches of `branches(..., merge = select)`",
    "shortcut": "is the shortcut path a `residual { ... }` writes itself",
    "else": "is the body an `if` runs when its condition is false",
    "stem": "is the section of ops before the stages (it adds no level to the names)",
    "head": "is the section of ops after the stages (it adds no level to the names)",
}


def keyword_like(name: str) -> str | None:
    """The keyword `name` is probably a misspelling of, or None."""
    lower = name.lower()
    if lower != name and lower in BODY_KEYWORDS:
        return lower
    if name[-1].isdigit():  # `dense1`, `head2`: numbered on purpose
        return None
    for word in BODY_KEYWORDS:
        # a short keyword with one letter replaced is another word (`step`, `heap`, `tense`)
        if _distance(lower, word, replace=1 if len(word) >= 6 else 2) <= (2 if len(word) >= 8 else 1):
            return word
    return None


def _distance(a: str, b: str, replace: int = 1) -> int:
    """Edits (insert, delete, replace at cost `replace`, swap two neighbours) that turn `a` into `b`."""
    if abs(len(a) - len(b)) > 2:
        return 3
    previous, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + replace * (ca != cb))
            if previous is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous[j - 2] + 1)
        previous, row = row, current
    return row[-1]
