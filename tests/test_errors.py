"""Diagnostics: docs/errors.md, rendering, several errors per run, robustness.

- every code in resdsl.errors.CODES has a section in docs/errors.md, in order,
  and the section's ```res example, written out as `example.res` (plus any
  `# file: NAME` blocks), fails with exactly that code at the documented place;
- a rendered diagnostic has the rustc shape: `error[CODE]: ...`, `--> path:line:col`,
  the source line, `^` under the right columns, `= note:` / `= help:` lines,
  and for a mistake inside a block the call chain down from the stage line;
- one run reports every independent mistake, not just the first;
- `python3 -m resdsl check` on hostile input (garbage, binary, truncation,
  huge numbers, deep nesting, a megabyte of text) exits 1 with a located
  `error[E...]` within 20 s and never prints a traceback; usage mistakes exit 2.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import resdsl
from resdsl import Diagnostic, SpecError, UsageError
from resdsl.errors import CODES

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "errors.md"
FENCE = re.compile(r"^```([A-Za-z]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
FILE_HEADER = re.compile(r"#\s*file:\s*(\S+)(?:\s*\(([\w-]+)\))?\s*$")
TIMEOUT = 20  # seconds a hostile input may take, start-up included


# ---- docs/errors.md --------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    code: str
    title: str
    text: str

    def blocks(self, lang: str) -> list[str]:
        return [m.group(2) for m in FENCE.finditer(self.text) if m.group(1) == lang]

    def files(self) -> list[tuple[str, str, str]]:
        """(name, encoding, text) of each ```res block; a block without a `# file:` line is example.res."""
        out = []
        for body in self.blocks("res"):
            header = FILE_HEADER.match(body.split("\n", 1)[0])
            if header:
                out.append((header.group(1), header.group(2) or "utf-8", body))
            else:
                out.append(("example.res", "utf-8", body))
        return out

    def materialise(self, where: Path) -> Path:
        for name, encoding, body in self.files():
            path = where / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body.encode(encoding))
        return where / "example.res"

    def rendered(self) -> str:
        """The documented diagnostic: the ```text block after the last ```res block."""
        last_res = [m for m in FENCE.finditer(self.text) if m.group(1) == "res"][-1]
        return next(m.group(2) for m in FENCE.finditer(self.text, last_res.end()) if m.group(1) == "text")


def _sections() -> dict[str, Section]:
    text = DOC.read_text(encoding="utf-8")
    out = {}
    for part in re.split(r"(?m)^(?=## )", text):
        heading = part.split("\n", 1)[0]
        m = re.fullmatch(r"## (E\d{4}): (.+)", heading.strip())
        key = m.group(1) if m else heading[3:].strip()
        out[key] = Section(key, m.group(2) if m else key, part)
    return out


SECTIONS = _sections()
# Run through the command line instead of resdsl.load: an import cycle across two files, and
# the network-size limit (a million ops, a lot of memory, better spent in a child process).
VIA_CLI = {"E0501": 60, "E0504": 300}
# Codes raised by `resdsl compile`: its arguments, and the checkpoint the example needs.
VIA_COMPILE = {
    "E0505": ["--max-params", "1000"],
    "E0506": ["--max-memory", "64G"],
    "E0601": ["--weights", "ckpt.pt"],
    "E0602": ["--weights", "ckpt.pt"],
    "E0213": ["--emit", "python"],
    "E0603": ["--weights", "ckpt.pt", "--deploy"],
}


def write_checkpoint(code: str, folder: Path) -> None:
    import torch

    if code == "E0601":
        state = resdsl.load(str(folder / "example.res")).to_torch().state_dict()
        state["layer1.1.conv2.weight"] = torch.zeros(16, 16, 5, 5)
        torch.save(state, folder / "ckpt.pt")
    elif code == "E0602":
        torch.save([1, 2, 3], folder / "ckpt.pt")
    elif code == "E0603":  # a norm whose running variance is negative: the network itself gives NaN
        state = resdsl.load(str(folder / "example.res")).to_torch().state_dict()
        state["layer1.0.bn1.running_var"] -= 10.0
        torch.save(state, folder / "ckpt.pt")


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def cli(*args: str, cwd: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resdsl", *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout
    )


def load_error(path: str | Path = "example.res", **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        resdsl.load(path, **kwargs)
    return info.value


def loads_error(text: str, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        resdsl.loads(text, **kwargs)
    return info.value


def test_every_code_has_a_section_in_order():
    documented = [key for key in SECTIONS if re.fullmatch(r"E\d{4}", key)]
    assert documented == list(CODES), "docs/errors.md must have one `## EXXXX: ...` section per code, in order"
    for code, summary in CODES.items():
        section = SECTIONS[code]
        assert section.title == summary, f"{code}: heading says {section.title!r}, CODES says {summary!r}"
        assert section.blocks("res"), f"{code}: no ```res example"
        assert section.rendered().startswith(f"error[{code}]: "), f"{code}: no rendered ```text diagnostic"
        assert "Fix:" in section.text, f"{code}: no `Fix:` guidance"


def test_docs_describe_exit_codes_and_several_errors():
    exit_codes = SECTIONS["Exit codes"].text
    for code in "012":
        assert re.search(rf"^\| {code} \|", exit_codes, re.M), f"exit code {code} is not in the table"
    assert "Several errors per run" in SECTIONS


@pytest.mark.parametrize("code", list(CODES))
def test_documented_example_triggers_its_code(code, tmp_path, monkeypatch):
    section = SECTIONS[code]
    section.materialise(tmp_path)
    documented = section.rendered()
    where = re.search(r"--> (\S+:\d+:\d+)", documented)
    if code in VIA_COMPILE:
        write_checkpoint(code, tmp_path)
        result = cli("compile", "example.res", "-o", "out.pt2", *VIA_COMPILE[code], cwd=tmp_path, timeout=300)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert set(re.findall(r"^error\[(E\d{4})\]", result.stderr, re.M)) == {code}, result.stderr
        assert not (tmp_path / "out.pt2").exists()
        assert result.stderr.rstrip() == documented.rstrip()  # the page shows what the command prints
        return
    if code in VIA_CLI:
        result = cli("check", "example.res", cwd=tmp_path, timeout=VIA_CLI[code])
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert set(re.findall(r"^error\[(E\d{4})\]", result.stderr, re.M)) == {code}, result.stderr
        if where:
            assert f"--> {where.group(1)}" in result.stderr
        assert result.stderr.rstrip() == documented.rstrip()
        return
    monkeypatch.chdir(tmp_path)
    error = load_error("example.res")
    codes = [d.code for d in error.diagnostics]
    assert set(codes) == {code}, f"{code}: the example gives {codes}:\n{error.render()}"
    first = error.diagnostics[0]
    if where:
        assert where.group(1) == str(first.span), f"{code}: documented at {where.group(1)}, reported at {first.span}"
    assert error.render().rstrip() == documented.rstrip(), f"{code}: docs/errors.md shows another rendering"


def test_several_errors_example_in_docs(tmp_path, monkeypatch):
    section = SECTIONS["Several errors per run"]
    section.materialise(tmp_path)
    monkeypatch.chdir(tmp_path)
    error = load_error("example.res")
    assert [d.code for d in error.diagnostics] == ["E0405", "E0203", "E0202"]
    assert section.rendered().rstrip().endswith("3 errors found")
    assert section.rendered().rstrip() == error.render()


# ---- rendering ----------------------------------------------------------------------------------


def snippet(rendered: str, line: int) -> tuple[str, int, int]:
    """The source text shown for `line` in a rendering, and the caret run's (start, width) in it."""
    lines = rendered.splitlines()
    for i, text in enumerate(lines):
        m = re.match(rf"^ *{line} \| (.*)$", text)
        if m and i + 1 < len(lines):
            caret = re.match(r"^ *\| ( *)(\^+) *$", lines[i + 1])
            assert caret, f"no caret line under line {line}:\n{rendered}"
            return m.group(1), len(caret.group(1)), len(caret.group(2))
    raise AssertionError(f"source line {line} is not shown:\n{rendered}")


def write(tmp_path: Path, text: str, name: str = "example.res") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_render_has_code_location_source_caret_and_help(tmp_path, monkeypatch):
    write(tmp_path, "network n {\n    input 3x32x32\n    conv 16 k3 -> bnn\n}\n")
    monkeypatch.chdir(tmp_path)
    error = load_error()
    rendered = error.render()
    lines = rendered.splitlines()
    assert lines[0] == "error[E0202]: no op or block named `bnn`"
    assert lines[1] == " --> example.res:3:19"
    shown, start, width = snippet(rendered, 3)
    assert shown == "    conv 16 k3 -> bnn"
    assert shown[start : start + width] == "bnn"
    assert re.search(r"^ += help: did you mean `bn`\?$", rendered, re.M)
    assert lines[-1] == "1 error found"
    assert str(error) == rendered


def test_render_cli_matches_api(tmp_path):
    write(tmp_path, "network n {\n    input 3x32x32\n    conv 16 k3 -> bnn\n}\n")
    result = cli("check", "example.res", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "error[E0202]: no op or block named `bnn`\n --> example.res:3:19\n" in result.stderr
    assert result.stderr.rstrip().endswith("1 error found")


@pytest.mark.parametrize(
    "text, line, target",
    [
        # the caret covers exactly the offending token ...
        ("network n(width = 10) {\n    input 3x32x32\n    conv 16 k3 -> conv width / 4 k3\n}\n", 3, "width / 4"),
        ("network n {\n    input 3x32x32\n    conv 16 k3 stride=2 pad=1\n}\n", 3, "pad=1"),
        ("network n {\n    input 3x32x32\n    conv 16 k3 -> relu -> fc 10\n}\n", 3, "fc 10"),
        ("network n(l = [1, 2]) {\n    input 3x32x32\n    conv l[7] k3\n}\n", 3, "7"),
        # ... after tabs (shown expanded, columns re-measured) ...
        ("network n {\n\tinput 3x32x32\n\tconv 16 k3 ->\tbnn\n}\n", 3, "bnn"),
        # ... and after wide characters: columns count characters, not bytes
        ("network n {\n    input 3x32x32\n    conv 16 k3 -> bn  # größe\n    conv ü16 k3\n}\n", 4, "ü"),
        ('use "größe.res"\nnetwork n {\n    input 3x32x32\n    conv 16 k3\n}\n', 1, 'use "größe.res"'),
        # with Windows line ends
        ("network n {\r\n    input 3x32x32\r\n    conv 16 k3 -> bnn\r\n}\r\n", 3, "bnn"),
    ],
)
def test_caret_under_the_right_columns(text, line, target, tmp_path, monkeypatch):
    write(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    rendered = load_error().render()
    shown, start, width = snippet(rendered, line)
    assert "\r" not in rendered
    assert "\t" not in shown
    assert shown[start : start + width] == target, rendered


def test_caret_at_end_of_file(tmp_path, monkeypatch):
    write(tmp_path, "network n {\n    input 3x32x32\n    conv 16 k3 -> relu")
    monkeypatch.chdir(tmp_path)
    error = load_error()
    assert [d.code for d in error.diagnostics] == ["E0104"]
    shown, start, width = snippet(error.render(), 3)
    assert shown == "    conv 16 k3 -> relu"
    assert (start, width) == (len(shown), 1)


def test_no_help_line_when_there_is_no_help(tmp_path, monkeypatch):
    write(tmp_path, "network n {\n    input 3x32x32\n    conv 16 k0\n}\n")
    monkeypatch.chdir(tmp_path)
    error = load_error()
    assert [d.code for d in error.diagnostics] == ["E0303"]
    assert error.diagnostics[0].help is None
    assert "= help:" not in error.render()


BLOCK_SPEC = """\
block unit(width) {
    conv width k3 -> bn -> relu
    conv width k3 g=3 -> bn
}
network n {
    input 3x32x32
    conv 16 k3
    layer1: unit(16) x2
}
"""


def test_shape_error_in_a_block_shows_template_line_and_stage_line(tmp_path, monkeypatch):
    write(tmp_path, BLOCK_SPEC)
    monkeypatch.chdir(tmp_path)
    error = load_error()
    assert [d.code for d in error.diagnostics] == ["E0402"], "one report for both repetitions of the stage"
    rendered = error.render()
    assert rendered.splitlines()[1].strip() == "--> example.res:3:5"
    shown, start, width = snippet(rendered, 3)
    assert shown[start : start + width] == "conv width k3 g=3"
    note = re.search(r"^ += note: in block `unit`.*instantiated at (\S+)$", rendered, re.M)
    assert note, rendered
    assert note.group(1) == "example.res:8:13"  # `unit(16) x2` on the stage line
    shown, start, width = snippet(rendered, 8)
    assert shown == "    layer1: unit(16) x2"
    assert shown[start : start + width] == "unit(16) x2"
    trace = error.diagnostics[0].trace
    assert [str(span) for span, _ in trace] == ["example.res:8:13"]


def test_shape_error_in_a_bundled_block_points_back_at_the_stage(tmp_path, monkeypatch):
    write(
        tmp_path,
        'use "blocks.res"\nnetwork n {\n    input 3x32x32\n    conv 64 k3\n'
        "    layer1: bottleneck(64, se_ratio=7) x3\n}\n",
    )
    monkeypatch.chdir(tmp_path)
    error = load_error()
    assert [d.code for d in error.diagnostics] == ["E0301"]
    d = error.diagnostics[0]
    assert Path(d.span.path).name == "blocks.res"
    rendered = error.render()
    shown, start, width = snippet(rendered, d.line)
    assert shown[start : start + width].startswith("se se_ratio")
    assert re.search(
        r"= note: in block `bottleneck` \(layer1\.0\), instantiated at example\.res:5:13$", rendered, re.M
    ), rendered


def test_nested_blocks_list_every_call_outermost_first(tmp_path, monkeypatch):
    write(
        tmp_path,
        "block inner(width) {\n    conv width k3 g=3\n}\nblock outer(width) {\n    inner(width)\n}\n"
        "network n {\n    input 3x32x32\n    outer(16)\n}\n",
    )
    monkeypatch.chdir(tmp_path)
    error = load_error()
    rendered = error.render()
    notes = re.findall(r"= note: in block `(\w+)`.*instantiated at (\S+)$", rendered, re.M)
    assert notes == [("outer", "example.res:9:5"), ("inner", "example.res:5:5")]


def test_redefined_imported_block_is_reported_in_the_users_file(tmp_path, monkeypatch):
    """Redefining a block from a `use`d library: the mistake is the user's line, not the library's.

    The user's definition comes after the `use`, so it is the second one, and the library
    file may not even be editable (it is installed with resdsl).
    """
    write(
        tmp_path,
        'use "blocks.res"\nblock basic(width) {\n    conv width k3\n}\n'
        "network n {\n    input 3x32x32\n    basic(16)\n}\n",
    )
    monkeypatch.chdir(tmp_path)
    error = load_error()
    assert [d.code for d in error.diagnostics] == ["E0205"]
    assert str(error.diagnostics[0].span) == "example.res:2:7", error.render()


# ---- several errors in one run -----------------------------------------------------------------


def test_two_unrelated_mistakes_are_both_reported(tmp_path, monkeypatch):
    write(
        tmp_path,
        "network n {\n    input 3x32x32\n    conv width k3 -> bn\n    conv 16 k3 -> relu\n    conv 16 k3 -> bnorm\n}\n",
    )
    monkeypatch.chdir(tmp_path)
    error = load_error()
    assert [(d.code, d.line) for d in error.diagnostics] == [("E0201", 3), ("E0202", 5)]
    rendered = error.render()
    assert rendered.count("error[E") == 2
    assert " --> example.res:3:10" in rendered and " --> example.res:5:19" in rendered
    assert rendered.rstrip().endswith("2 errors found")


def test_name_value_and_shape_errors_in_one_run(tmp_path, monkeypatch):
    # The shape error comes first: what follows an op that failed is not shape-checked (test_diagnostics.py)
    write(
        tmp_path,
        "network n(width = 10) {\n    input 3x32x32\n    conv 16 k3 -> fc 10\n    conv width / 4 k3\n"
        "    conv 16 k0\n    conv 16 k3 -> bnn\n}\n",
    )
    monkeypatch.chdir(tmp_path)
    error = load_error()
    assert [d.code for d in error.diagnostics] == ["E0405", "E0301", "E0303", "E0202"]
    assert [d.line for d in error.diagnostics] == [3, 4, 5, 6]


def test_errors_in_an_imported_file_and_the_main_file(tmp_path, monkeypatch):
    write(tmp_path, "block unit(width) {\n    conv widht k3\n}\n", "lib.res")
    write(tmp_path, 'use "lib.res"\nnetwork n {\n    input 3x32x32\n    unit(16) -> bnn\n}\n')
    monkeypatch.chdir(tmp_path)
    error = load_error()
    where = {(d.code, str(d.span)) for d in error.diagnostics}
    assert where == {("E0201", "lib.res:2:10"), ("E0202", "example.res:4:17")}
    rendered = error.render()
    assert "2 |     conv widht k3" in rendered and "4 |     unit(16) -> bnn" in rendered


def test_a_mistake_in_a_repeated_block_is_reported_once(tmp_path, monkeypatch):
    write(
        tmp_path,
        "block unit(width) {\n    conv width k3 -> bnn\n}\nnetwork n {\n    input 3x32x32\n"
        "    layer1: unit(16) x5\n    layer2: unit(32) x5\n}\n",
    )
    monkeypatch.chdir(tmp_path)
    error = load_error()
    assert [(d.code, d.line) for d in error.diagnostics] == [("E0202", 2)]


def test_many_mistakes_are_capped(tmp_path, monkeypatch):
    body = "".join(f"    conv w{i} k3\n" for i in range(80))
    write(tmp_path, "network n {\n    input 3x32x32\n" + body + "}\n")
    monkeypatch.chdir(tmp_path)
    error = load_error()
    n = len(error.diagnostics)
    assert n == 50
    assert all(d.code == "E0201" for d in error.diagnostics)
    assert error.render().rstrip().endswith("50 of 80 errors shown")  # the count is of all, not of those shown


def test_check_reports_every_file_given(tmp_path):
    write(tmp_path, "network a {\n    input 3x32x32\n    conv 16 k3 -> bnn\n}\n", "a.res")
    write(tmp_path, "network b {\n    input 3x32x32\n    conv 16 k3\n}\n", "b.res")
    write(tmp_path, "network c {\n    input 3x32x32\n    conv 16 k0\n}\n", "c.res")
    result = cli("check", "a.res", "b.res", "c.res", cwd=tmp_path)
    assert result.returncode == 1
    assert "a.res:3:19" in result.stderr and "c.res:3:13" in result.stderr
    assert result.stdout.startswith("ok b:")


# ---- robustness: hostile input through the command line -----------------------------------------


RESNET = """\
use "blocks.res"

network resnet(unit = bottleneck, layers = [3, 4, 6, 3], classes = 1000, in_chans = 3, image_size = 224,
               groups = 1, width_per_group = 64, policy = B, deep_stem = false, stem_width = 32) {
    input in_chans x image_size x image_size
    shortcut policy
    stem {
        if deep_stem {
            conv1 {
                conv stem_width k3 s2 -> bn -> relu
                conv stem_width k3 -> bn -> relu
                conv 64 k3
            }
        } else {
            conv 64 k7 s2
        }
        bn -> relu -> maxpool k3 s2
    }
    layer1: unit(64,  groups=groups, base_width=width_per_group) x layers[0]
    layer2: unit(128, groups=groups, base_width=width_per_group) x layers[1] s2
    layer3: unit(256, groups=groups, base_width=width_per_group) x layers[2] s2
    layer4: unit(512, groups=groups, base_width=width_per_group) x layers[3] s2
    head {
        avgpool -> fc classes
    }
}

network resnet50 = resnet(unit = bottleneck, layers = [3, 4, 6, 3], image_size = 64)
"""


def check_fails_cleanly(tmp_path: Path, data: bytes | str, *args: str, name: str = "example.res") -> str:
    """`resdsl check` on `data`: exit 1, a located `error[E...]`, no traceback, within TIMEOUT."""
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    try:
        result = cli("check", name, *args, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`resdsl check` did not finish within {TIMEOUT} s")
    out = result.stdout + result.stderr
    crashed = "Traceback" in out
    assert not crashed, "resdsl crashed:\n" + out[-1500:]
    assert result.returncode == 1, out[-3000:]
    assert re.search(r"^error\[E\d{4}\]: ", result.stderr, re.M), out[-3000:]
    assert re.search(r"--> \S+:\d+:\d+", result.stderr), out[-3000:]
    return result.stderr


def network(line: str, *, input: str = "3x32x32", params: str = "") -> str:
    return f"network n{params} {{\n    input {input}\n    {line}\n}}\n"


def test_resnet_text_is_valid(tmp_path, monkeypatch):
    write(tmp_path, RESNET)
    monkeypatch.chdir(tmp_path)
    assert resdsl.load("example.res", network="resnet50").output_shape == (1000,)


HOSTILE = {
    "garbage text": 'lorem ipsum dolor sit amet }{ ->-> 3x x x ]] "\n' * 20,
    "punctuation soup": "(){}[]<>=!->,:;#'\"@$%^&*|\\~`" * 50,
    "random binary": random.Random(1).randbytes(8192),
    "random ascii": "".join(random.Random(2).choices("abkx19 (){}[]->=,:\n\t", k=8192)),
    "NUL bytes": b"network n {\n    input 3x32x32\n    conv 16\x00 k3\n}\n",
    "UTF-16": network("conv 16 k3").encode("utf-16"),
    "empty file": "",
    "only whitespace": " \n\t\n\n   \n",
    "only a comment": "# nothing here\n",
    "a lone brace": "}\n",
    "unterminated string": 'use "blocks.res\nnetwork n {\n    input 3x32x32\n}\n',
    "conv 10^12 channels": network("conv 1000000000000 k3"),
    "input 10^12 channels": network("conv 16 k3", input="1000000000000x32x32"),
    "input 10^12 pixels": network("conv 16 k3", input="3x1000000000000x1000000000000"),
    "fc 10^12": network("avgpool -> fc 1000000000000"),
    "5000-digit literal": network("conv " + "9" * 5000 + " k3"),
    "5000-digit shape": network("conv 16 k3", input="3x" + "9" * 5000 + "x32"),
    "5000-digit repeat": 'use "blocks.res"\n' + network("layer1: basic(16) x" + "9" * 5000),
    "huge float": network("conv 1e400 k3"),
    "float overflow": network("conv 1e300 * 1e300 k3"),
    "int64 overflow": network("conv 9223372036854775807 * 9223372036854775807 k3"),
    "conv -3": network("conv -3 k3"),
    "kernel -1": network("conv 16 k=-1"),
    "stride 0": network("conv 16 k3 s0"),
    "x -1": 'use "blocks.res"\n' + network("layer1: basic(16) x -1"),
    "x (0 - 1)": 'use "blocks.res"\n' + network("layer1: basic(16) x (0 - 1)"),
    "x 0": 'use "blocks.res"\n' + network("layer1: basic(16) x0"),
    "input 0x0x0": network("conv 16 k3", input="0x0x0"),
    "5000 nested ( in an argument": network("conv " + "(" * 5000 + "16" + ")" * 5000 + " k3"),
    "5000 unclosed (": network("conv " + "(" * 5000 + "16 k3"),
    "5000 nested [": network("conv " + "[" * 5000 + "16" + "]" * 5000 + " k3"),
    "5000 nested {": "network n " + "{" * 5000 + "\n" + "}" * 5000 + "\n",
    "5000 unclosed {": "network n " + "{" * 5000 + "\n",
    "5000 nested groups": "network n {\n    input 3x32x32\n" + "g {\n" * 5000 + "relu\n" + "}\n" * 5000 + "}\n",
    "20000 chained +": network("conv " + "+".join(["1"] * 20000) + " k3"),
    "20000 unary minus": network("conv " + "- " * 20000 + "16 k3"),
    "20000 not": network("if " + "not " * 20000 + "true { conv 16 k3 }"),
    "20000 indexes": network("conv l" + "[0]" * 20000 + " k3", params="(l = [16])"),
    "200 nested blocks": "".join(f"block b{i}(w) {{\n    b{i + 1}(w)\n}}\n" for i in range(200))
    + "block b200(w) {\n    conv w k3\n}\n"
    + network("b0(16)"),
    "3000 chained aliases": "".join(f"block b{i} = b{i + 1}(w=1)\n" for i in range(3000))
    + "block b3000(w) {\n    conv w k3\n}\n"
    + network("b0(16) -> bnn"),
    "aliases in a circle": "block a = b(w=1)\nblock b = a(w=2)\n" + network("a(16)"),
    "self import": 'use "example.res"\n' + network("conv 16 k3"),
    "import a directory": 'use "."\n' + network("conv 16 k3"),
    "import a device": 'use "/dev/null"\n' + network("conv 16 k3 -> bnn"),
    "1 MB of top-level lines": "conv 16 k3 -> bn -> relu\n" * (1024 * 1024 // 25),
    "huge kernel and padding": network("conv 16 k4096 p4096 d4096 -> maxpool k4096 p2048 -> conv 16 k4096"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_is_a_located_error(name, tmp_path):
    check_fails_cleanly(tmp_path, HOSTILE[name])


def test_random_binary_is_not_utf8(tmp_path):
    assert "error[E0101]" in check_fails_cleanly(tmp_path, HOSTILE["random binary"])


def test_nesting_limits_are_e0105(tmp_path):
    assert "error[E0105]" in check_fails_cleanly(tmp_path, HOSTILE["5000 nested ( in an argument"])
    assert "error[E0105]" in check_fails_cleanly(tmp_path, HOSTILE["5000 nested {"])


def test_huge_numbers_are_out_of_range(tmp_path):
    for name in ("conv 10^12 channels", "input 10^12 channels", "5000-digit literal", "conv -3"):
        assert "error[E0303]" in check_fails_cleanly(tmp_path, HOSTILE[name]), name


def test_file_over_the_size_limit(tmp_path):
    from resdsl.parse import MAX_SOURCE_BYTES

    stderr = check_fails_cleanly(tmp_path, "# padding\n" * (MAX_SOURCE_BYTES // 10 + 1))
    assert "error[E0105]" in stderr


def test_large_network_is_checked_in_time(tmp_path):
    """200 KB of ordinary lines inside a network (a typo on the last): under the 256 KiB limit."""
    line = "    conv 16 k3 -> bn -> relu\n"
    text = "network n {\n    input 3x32x32\n" + line * (200 * 1024 // len(line)) + "    conv 16 k3 -> bnn\n}\n"
    assert "error[E0202]" in check_fails_cleanly(tmp_path, text)


def test_one_megabyte_file_is_refused_up_front(tmp_path):
    line = "    conv 16 k3 -> bn -> relu\n"
    text = "network n {\n    input 3x32x32\n" + line * (1024 * 1024 // len(line)) + "}\n"
    assert "error[E0105]" in check_fails_cleanly(tmp_path, text)


def test_long_ternary_chain(tmp_path):
    """`16 if a else 16 if a else ...` needs no brackets, so the bracket limit does not catch it."""
    check_fails_cleanly(tmp_path, network("conv " + "16 if a else " * 1000 + "16 k3", params="(a = true)"))


def test_long_else_if_chain(tmp_path):
    """`if ... { } else if ... { } else if ...`: every brace is closed, so nesting stays at 2."""
    chain = " else ".join(f"if a == {i} {{ conv 16 k3 }}" for i in range(1000))
    check_fails_cleanly(tmp_path, network(chain, params="(a = 0)"))


@pytest.mark.parametrize(
    "body",
    [
        "conv width k3",  # an unknown name in the only op of the main path
        "bnn",  # an unknown op
        "conv 16 k0",  # a value out of range
        "shortcut A",  # no op at all, only a statement
        "if false { relu }",  # no op once the condition is decided
    ],
)
@pytest.mark.parametrize("kind", ["residual", "dense"])
def test_merge_whose_main_path_has_no_op(kind, body, tmp_path):
    check_fails_cleanly(
        tmp_path, f"network n {{\n    input 3x32x32\n    conv 16 k3\n    {kind} {{\n        {body}\n    }}\n}}\n"
    )


def truncations() -> list[int]:
    """Cut points in RESNET that leave it incomplete (not just after a whole definition)."""
    cuts = []
    for i in range(1, len(RESNET) - 2):
        if not RESNET[:i].rstrip().endswith("}") and RESNET[:i].strip() not in ("", 'use "blocks.res"'):
            cuts.append(i)
    return cuts


def test_truncated_spec_in_process(tmp_path, monkeypatch):
    """Every 3rd cut of a ResNet-50 spec is an error with a location inside the text, never a crash."""
    monkeypatch.chdir(tmp_path)
    for i in truncations()[::3]:
        prefix = RESNET[:i]
        try:
            resdsl.loads(prefix, path="example.res")
        except SpecError as exc:
            assert exc.diagnostics, i
            for d in exc.diagnostics:
                assert d.code in CODES
                if d.span is not None and d.span.path == "example.res":
                    assert 1 <= d.line <= prefix.count("\n") + 1, (i, d)
            exc.render()
        else:
            pytest.fail(f"the spec cut after {i} characters loads: {prefix[-40:]!r}")


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.97])
def test_truncated_spec_via_cli(fraction, tmp_path):
    cuts = truncations()
    i = cuts[int(fraction * (len(cuts) - 1))]
    check_fails_cleanly(tmp_path, RESNET[:i], "--network", "resnet50")


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "no_such_file.res"], "no such file"),
        (["check", "."], "not a file"),
        (["check", "example.res", "--input", "3x"], "--input"),
        (["check", "example.res", "--input", "0x32x32"], "--input"),
        (["check", "example.res", "--input", "3x32x32x32x32"], "--input"),
        (["check", "example.res", "--set", "foo"], "--set"),
        (["check", "example.res", "--set", "=3"], "--set"),
        (["check"], "usage"),
        (["frobnicate"], "usage"),
    ],
)
def test_usage_errors_exit_2(args, message, tmp_path):
    write(tmp_path, network("conv 16 k3"))
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert "error[E" not in result.stderr


def test_bad_set_value_is_a_spec_error(tmp_path):
    write(tmp_path, network("conv 16 k3 -> avgpool -> fc classes", params="(classes = 10)"))
    for value in ("((", "1 / 0", "[1, 2", "x" * 5000, "(" * 5000):
        result = cli("check", "example.res", "--set", f"classes={value}", cwd=tmp_path)
        assert result.returncode == 1, (value, result.stderr)
        assert "Traceback" not in result.stderr
        assert re.search(r"^error\[E\d{4}\]", result.stderr, re.M), value


# ---- the Python API ------------------------------------------------------------------------------


def test_loads_raises_spec_error_with_located_diagnostics():
    with pytest.raises(SpecError) as info:
        resdsl.loads("network n {\n    input 3x32x32\n    conv 16 k3 -> bnn\n}\n")
    error = info.value
    assert isinstance(error, Exception)
    assert len(error.diagnostics) == 1
    d = error.diagnostics[0]
    assert isinstance(d, Diagnostic)
    assert (d.code, d.line, d.column) == ("E0202", 3, 19)
    assert d.message == "no op or block named `bnn`"
    assert d.span.path == "<string>"
    assert d.to_dict()["code"] == "E0202" and d.to_dict()["line"] == 3
    assert str(error) == error.render()


@pytest.mark.parametrize(
    "text, code, line, column",
    [
        ("network n {\n    input 3x32x32\n    conv 16 k3; relu\n}\n", "E0102", 3, 15),
        ("network n {\n    input 3x32x32\n    conv 16 k3 -> -> relu\n}\n", "E0103", 3, 19),
        ("network n {\n    input 3x32x32\n", "E0104", 3, 1),
        ("network n {\n    conv 16 k3\n}\n", "E0209", 1, 9),
        ("network n {\n    input 3x32x32\n    conv 16 k3 s=1.5\n}\n", "E0302", 3, 16),
        ("network n {\n    input 3x32x32\n    flatten -> conv 16 k3\n}\n", "E0406", 3, 16),
    ],
)
def test_loads_diagnostic_fields(text, code, line, column):
    d = loads_error(text).diagnostics[0]
    assert (d.code, d.line, d.column) == (code, line, column)
    assert isinstance(d.message, str) and d.message


def test_loads_with_a_bad_override_and_network_name():
    text = network("conv 16 k3 -> avgpool -> fc classes", params="(classes = 10)")
    assert loads_error(text, classes="1 / 0").diagnostics[0].code == "E0304"
    assert loads_error(text, name="m").diagnostics[0].code == "E0207"
    assert [d.code for d in loads_error(text, clases=3).diagnostics] == ["E0203"]


def test_load_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        resdsl.load(tmp_path / "no_such_file.res")


def test_diagnostics_come_in_reading_order():
    """A shape error (found after elaboration) on line 4 is listed before an argument error on line 6."""
    text = "block b() { nosuch() }\nnetwork n {\n input 3x8x8\n conv 8 k3 g3\n b()\n relu foo=1 }"
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text)
    assert [(d.code, d.line) for d in info.value.diagnostics] == [("E0202", 1), ("E0402", 4), ("E0203", 6)]
    rendered = str(info.value)
    assert rendered.index("E0402") < rendered.index("E0203")
