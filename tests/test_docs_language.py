"""docs/language.md: every example in it does what the text says.

- each ```res block is a whole file: if it defines networks, each one must
  pass `resdsl.loads`; if it holds only blocks, it must parse;
- a ```res block whose first line is `# error: E0xxx` must fail with that code;
- a leading `# file: NAME.res` line saves the block under that name first, so
  other examples (and the command lines below) can `use` or check it;
- ```python blocks are doctests (`>>>`), ```console blocks hold `$ resdsl ...`
  command lines followed by their exact output;
- every op in resdsl.ops.OPS, and each of its options, is documented.

Examples run in a temporary directory holding the `# file:` blocks, so
`use "blocks.res"` finds the bundled library and a local name finds its block.
"""

from __future__ import annotations

import doctest
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

import resdsl
from resdsl import SpecError
from resdsl.cli import main
from resdsl.errors import CODES
from resdsl.ops import OPS
from resdsl.parse import parse_module

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
TEXT = DOC.read_text(encoding="utf-8")
FENCE = re.compile(r"^```([A-Za-z]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
DIRECTIVE = re.compile(r"#\s*(error|file):\s*(\S+)\s*$")


@dataclass(frozen=True)
class Example:
    lang: str
    text: str
    line: int  # line of the opening fence in docs/language.md
    error: str | None = None
    file: str | None = None

    @property
    def id(self) -> str:
        return f"{self.lang}-line{self.line}"


def _examples() -> list[Example]:
    found = []
    for match in FENCE.finditer(TEXT):
        lang, body = match.group(1), match.group(2)
        line = TEXT.count("\n", 0, match.start()) + 1
        error = file = None
        lines = body.splitlines()
        for i, text in enumerate(lines):
            if not text.startswith("#"):
                break
            directive = DIRECTIVE.fullmatch(text.strip())
            if directive and directive.group(1) == "error":
                assert i == 0, f"line {line}: `# error:` must be the first line of the example"
                error = directive.group(2)
            elif directive:
                file = directive.group(2)
        found.append(Example(lang, body, line, error, file))
    return found


EXAMPLES = _examples()
RES = [e for e in EXAMPLES if e.lang == "res"]
PYTHON = [e for e in EXAMPLES if e.lang == "python"]
CONSOLE = [e for e in EXAMPLES if e.lang == "console"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory holding every `# file:` example, made the current directory."""
    for example in RES:
        if example.file is not None:
            (tmp_path / example.file).write_text(example.text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _check(example: Example, directory: Path) -> list[str]:
    """Parse the example; load every network it defines. Returns their names."""
    path = str(directory / (example.file or f"example_line{example.line}.res"))
    module = parse_module(example.text, path)
    assert module.definitions or example.error, f"line {example.line}: the example defines nothing"
    networks = [d.name for d in module.definitions if d.kind == "network"]
    for name in networks:
        net = resdsl.loads(example.text, name, path=path)
        assert net.output_shape, name
    return networks


def test_the_document_has_examples_of_each_kind():
    assert len(RES) >= 30 and PYTHON and CONSOLE
    files = [e.file for e in RES if e.file]
    assert len(files) == len(set(files)), "two examples save the same `# file:`"


@pytest.mark.parametrize("example", RES, ids=[e.id for e in RES])
def test_res_example(example: Example, workdir: Path):
    if example.error is None:
        _check(example, workdir)
        return
    assert example.error in CODES, f"line {example.line}: unknown code {example.error}"
    with pytest.raises(SpecError) as info:
        _check(example, workdir)
    codes = [d.code for d in info.value.diagnostics]
    assert codes[0] == example.error, (
        f"line {example.line}: expected {example.error}, got {codes}\n{info.value.render()}"
    )


@pytest.mark.parametrize("example", PYTHON, ids=[e.id for e in PYTHON])
def test_python_example(example: Example, workdir: Path):
    parser = doctest.DocTestParser()
    test = parser.get_doctest(example.text, {}, f"language.md:{example.line}", str(DOC), example.line)
    assert test.examples, f"line {example.line}: a python example without `>>>`"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def _commands(example: Example) -> list[tuple[str, list[str]]]:
    commands: list[tuple[str, list[str]]] = []
    for line in example.text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            assert commands, f"line {example.line}: output before the first `$` command"
            commands[-1][1].append(line.rstrip())
    return commands


@pytest.mark.parametrize("example", CONSOLE, ids=[e.id for e in CONSOLE])
def test_console_example(example: Example, workdir: Path, capsys):
    for command, expected in _commands(example):
        argv = shlex.split(command)
        assert argv[0] == "resdsl", command
        main(argv[1:])
        captured = capsys.readouterr()
        output = [line.rstrip() for line in (captured.out + captured.err).splitlines()]
        while output and not output[-1]:
            output.pop()
        assert output == expected, f"$ {command}"


def test_every_op_is_documented():
    for kind in OPS:
        assert f"`{kind}`" in TEXT, f"op `{kind}` is not mentioned in docs/language.md"


def test_every_option_and_alias_is_documented():
    section = TEXT[TEXT.index("## 9. Ops") : TEXT.index("## 10.")]
    for kind, spec in OPS.items():
        for option in spec.options:
            for word in (option.name, *option.aliases):
                assert f"`{word}`" in section, f"option `{word}` of `{kind}` is not in section 9"


def test_every_op_appears_in_a_checked_example():
    used = set()
    for example in RES:
        if example.error is None:
            used.update(re.findall(r"[A-Za-z_]+", example.text))
    assert set(OPS) <= used, set(OPS) - used
