"""Diagnostics that point the right way (issue 17, section 5).

- what follows an element that failed is not shape-checked against a guess, so no
  follow-on error is reported, let alone before its cause;
- a `carry` mismatch says `carry`, and a `branches` size mismatch names the ops
  that changed H×W and why (a stride, or an even kernel);
- a bare unknown word where only a flag can go is E0203 "has no option";
- a dotted label may add to a named group;
- `s1` out of place is explained as the stride shorthand;
- a non-overlapping pool that pads only by the same-padding rule warns (W0401),
  in every output format;
- a checkpoint with many mismatches says how many there are; torch's reason is
  quoted in whole sentences; a bundled spec is shown by name, not by a path of
  the machine;
- an error in a block repeated 100,000 times stops the stage at once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import resdsl
from resdsl import SpecError
from resdsl.cli import main


def errors_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        resdsl.loads(text, path="example.res")
    return info.value


# ---- follow-on errors ---------------------------------------------------------------------------------

FOLLOW_ON = """network n {
    input 3x32x32
    conv 16 k3
    branches(2, merge = concat) {
        if branch == 0 { conv 16 k3 s2 } else { conv 16 k3 zap=2 }
    }
    residual { conv 16 k3 -> convv 32 k1 }
    head { avgpool -> fc 10 }
}
"""


def test_a_failed_op_has_no_follow_on_errors():
    error = errors_of(FOLLOW_ON)
    # Before: E0404 (concat of 16x16x16 and 16x32x32, made up by passing the failed conv through) came
    # first, at the `branches` line, before its cause on line 5.
    assert [(d.code, d.line) for d in error.diagnostics] == [("E0203", 5), ("E0202", 7)]


def test_a_failed_op_in_a_repeated_block_has_no_follow_on_errors():
    error = errors_of(
        "block b(w) {\n    residual { conv w k3 -> bnn -> conv (w * 2) k1 }\n}\n"
        "network n {\n    input 3x8x8\n    conv 8 k3\n    layer1: b(8) x2\n"
        "    layer2: b(8) x2\n    fc 10\n}\n"
    )
    assert [d.code for d in error.diagnostics] == ["E0202"]


def test_independent_errors_before_a_failure_are_still_reported():
    error = errors_of("network n {\n    input 3x8x8\n    conv 8 k3 g=3\n    conv 8 k3 -> frob\n}\n")
    assert [(d.code, d.line) for d in error.diagnostics] == [("E0402", 3), ("E0202", 4)]


def test_an_error_in_a_block_repeated_100000_times_stops_the_stage(monkeypatch):
    from resdsl import elaborate as elab_module

    counted = []
    original = elab_module._Elaborator.count_work

    def count(self):
        counted.append(1)
        return original(self)

    monkeypatch.setattr(elab_module._Elaborator, "count_work", count)
    error = errors_of(
        "block b(w) {\n    conv w k3 -> frob\n}\nnetwork n {\n    input 3x8x8\n    layer1: b(8) x 100000\n}\n"
    )
    assert [d.code for d in error.diagnostics] == ["E0202"]
    assert len(counted) < 20  # before: every one of the 100,000 repetitions was expanded


# ---- branches -----------------------------------------------------------------------------------------


def branches_error(body: str) -> SpecError:
    return errors_of("network n {\n    input 3x32x32\n    conv 16 k3\n" + body + "    head { avgpool -> fc 10 }\n}\n")


def test_a_carry_mismatch_says_carry_not_the_merge():
    error = branches_error(
        "    branches(4, split = true, merge = concat, carry = branch > 0) {\n        conv (4 + branch) k3\n    }\n"
    )
    [d] = error.diagnostics
    assert d.code == "E0409" and "`carry`" in d.message and "merge = sum" not in d.message
    assert "5x32x32" in d.message and "4x32x32" in d.message


def test_a_size_mismatch_from_an_even_kernel_says_so():
    [d] = branches_error("    branches(2, merge = concat) {\n        conv 16 k=(branch + 2)\n    }\n").diagnostics
    assert d.code == "E0404"
    assert "stride" not in d.help and "even kernel" in d.help
    assert d.notes == ("branch 0: `conv` at line 5 makes 32x32 into 33x33 (its even kernel 2)",)


def test_a_size_mismatch_from_a_stride_says_so():
    [d] = branches_error("    branches(2, merge = sum) {\n        conv 16 k3 s=(branch + 1)\n    }\n").diagnostics
    assert d.code == "E0409" and "same stride" in d.help
    assert d.notes == ("branch 1: `conv` at line 5 makes 32x32 into 16x16 (stride 2)",)


# ---- names and flags ----------------------------------------------------------------------------------


def test_an_unknown_bare_flag_is_an_unknown_option():
    error = errors_of("network n {\n    input 3x8x8\n    conv 8 k3 gain\n    conv 8 k3 biass\n    conv wdth k3\n}\n")
    assert [(d.code, d.message) for d in error.diagnostics] == [
        ("E0203", "`conv` has no option `gain`"),  # like `gain=2`; before: E0201 "unknown name"
        ("E0203", "`conv` has no option `biass`"),
        ("E0201", "unknown name `wdth`"),  # where a value goes, it is a name
    ]
    assert error.diagnostics[1].help == "did you mean `bias`?"


def test_a_dotted_label_may_add_to_a_named_group():
    torch = pytest.importorskip("torch")
    net = resdsl.loads(
        "network n {\n    input 3x8x8\n    encoder { conv 8 k3 -> bn }\n"
        "    encoder.bn1: bn\n    head { avgpool -> fc 10 }\n}\n"
    )
    model = net.to_torch()
    assert "encoder.bn1.weight" in model.state_dict() and "encoder.1.weight" in model.state_dict()
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_a_dotted_label_that_a_group_uses_is_still_a_duplicate():
    [d] = errors_of(
        "network n {\n    input 3x8x8\n    encoder { conv 8 k3 -> bn1: bn }\n    encoder.bn1: bn\n}\n"
    ).diagnostics
    assert d.code == "E0206" and d.line == 4 and d.notes == ("first used at example.res:3:33",)


@pytest.mark.parametrize("text, shorthand", [("    conv 8 -> s1\n", "stride=1"), ("    k3\n", "kernel=3")])
def test_a_shorthand_out_of_place_is_explained(text, shorthand):
    [d] = errors_of("network n {\n    input 3x8x8\n" + text + "}\n").diagnostics
    assert d.code == "E0103"
    assert f"the shorthand for `{shorthand}`" in d.help


# ---- pools --------------------------------------------------------------------------------------------

POOLS = (
    "network n {\n    input 3x64x64\n    conv 8 k3\n    avgpool k8\n    avgpool k2 s2\n"
    "    maxpool k3 s2\n    maxpool k3 p1\n    head { avgpool -> fc 10 }\n}\n"
)


def test_a_non_overlapping_pool_that_pads_warns():
    net = resdsl.loads(POOLS, path="example.res")
    [w] = net.warnings  # k2 s2 pads 0, k3 s2 overlaps, k3 p1 says its padding
    assert (w.code, w.severity, w.line) == ("W0401", "warning", 4)
    assert "pads 3" in w.message and "AvgPool2d(8) pads 0" in w.message
    assert "`avgpool k8 p0`" in w.help


def test_a_warning_is_shown_by_check_in_every_format(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("example.res").write_text(POOLS)
    assert main(["check", "example.res"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok n:") and "warning[W0401]" in err and " --> example.res:4:5" in err
    assert main(["check", "example.res", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(f["code"], f["severity"]) for f in data["findings"]] == [("W0401", "warning")]
    assert main(["check", "example.res", "--format", "sarif"]) == 0
    [result] = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    assert result["level"] == "warning"
    assert main(["check", "example.res", "--format", "github"]) == 0
    assert capsys.readouterr().out.startswith("::warning file=example.res,line=4")


# ---- checkpoints and paths ----------------------------------------------------------------------------


def test_many_checkpoint_mismatches_say_how_many(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    assert main(["compile", "resnet34", "--weights", str(tmp_path / "r18.pth"), "-o", str(tmp_path / "x.pt2")]) == 1
    err = capsys.readouterr().err
    total = int(re.search(r"^50 of (\d+) errors shown$", err, re.M).group(1))
    assert total > 50 and "50 errors found" not in err
    assert len(re.findall(r"^error\[E0601\]", err, re.M)) == 50
    # resnet34's blocks live in the bundled blocks.res: shown by name, not by where it is installed
    assert re.search(r"^ +--> blocks\.res:\d+:\d+$", err, re.M), err
    assert str(Path(resdsl.__file__).resolve().parent.parent) not in err


class Unsafe:  # a pickled class: torch.load(weights_only=True) refuses it
    pass


def test_torch_load_reasons_are_quoted_in_whole_sentences(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.save({"a": Unsafe()}, tmp_path / "unsafe.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "unsafe.pt").read_bytes()[:50])
    notes = []
    for name in ("unsafe.pt", "cut.pt"):
        assert main(["compile", "resnet18", "--weights", str(tmp_path / name), "-o", str(tmp_path / "x.pt2")]) == 1
        err = capsys.readouterr().err
        assert "error[E0602]" in err and "\x1b" not in err
        notes.append(re.search(r"= note: (.*)", err).group(1))
    assert notes[0].startswith("Unsupported global: GLOBAL") and notes[0].endswith(".")
    assert notes[1].startswith("PytorchStreamReader failed") and notes[1].endswith(".")


def test_a_bundled_spec_is_shown_by_name(capsys):
    assert main(["check", "resnet", "--set", "depth=3"]) == 1
    err = capsys.readouterr().err
    assert "(resnet.res:" in err and "specs/resnet.res" not in err.replace("(resnet.res:", "")
    assert str(Path(resdsl.__file__).resolve().parent.parent) not in err


# ---- the warnings' documentation ---------------------------------------------------------------------


def test_every_warning_is_documented_and_its_example_gives_it(tmp_path, monkeypatch):
    from test_errors import DOC, FENCE  # the fenced blocks of docs/errors.md, as its own tests read them

    from resdsl.errors import WARNINGS

    text = DOC.read_text(encoding="utf-8")
    warnings = text[text.index("\n# Warnings\n") :]
    sections = dict(re.findall(r"(?ms)^## (W\d{4}): .*?\n(.*?)(?=^## |\Z)", warnings))
    titles = re.findall(r"(?m)^## (W\d{4}): (.+)$", warnings)
    assert titles == list(WARNINGS.items()), "one `## WXXXX: title` section per warning, in order"
    monkeypatch.chdir(tmp_path)
    for code, body in sections.items():
        blocks = {kind: body_ for kind, body_ in ((m.group(1), m.group(2)) for m in FENCE.finditer(body))}
        Path("example.res").write_text(blocks["res"])
        net = resdsl.load("example.res")  # a warning never fails the load
        assert [w.code for w in net.warnings] == [code], (code, net.warnings)
        from resdsl.errors import render

        assert render(net.warnings[0], net.sources).startswith(blocks["text"].rstrip()), code
        assert "Fix:" in body, code


def test_the_readme_example_diagnostic_is_what_check_prints(tmp_path, monkeypatch, capsys):
    from test_errors import FENCE

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("A shape error points at the spec") : readme.index("Exit codes: 0 ok")]
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(section)]
    assert [kind for kind, _ in blocks] == ["res", "text"]
    monkeypatch.chdir(tmp_path)
    Path("oops.res").write_text(blocks[0][1])
    assert main(["check", "oops.res"]) == 1
    assert capsys.readouterr().err.rstrip() == blocks[1][1].rstrip()


def test_loose_ops_are_parts_of_their_own_as_the_language_docs_say():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
    assert "is the three rows `conv1`, `bn1` and `relu` of\n`resdsl summary`" in doc
    loose = resdsl.loads("network n {\n    input 3x32x32\n    conv 16 k3 -> bn -> relu\n    avgpool -> fc 10\n}\n")
    assert [part.name for part in loose.parts] == ["conv1", "bn1", "relu", "avgpool", "fc"]
    wrapped = resdsl.loads(
        "network n {\n    input 3x32x32\n    stem { conv 16 k3 -> bn -> relu }\n    head { avgpool -> fc 10 }\n}\n"
    )
    assert [part.name for part in wrapped.parts] == ["stem", "head"]
