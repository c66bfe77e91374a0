"""`resdsl verify` (resdsl/verify.py, verify_cli.py) and the machine formats of check and verify.

tests/data/planted.res has three planted failure regions (a width the grouped conv cannot split,
odd input sizes at a concat, inputs below 8 for an unpadded 7×7 conv); verify must find each, in
both the exhaustive and the sampled modes, shrunk to its minimal configuration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import resdsl
from resdsl import SpecError
from resdsl.cli import main
from resdsl.errors import UsageError
from resdsl.verify import Space, parse_input_range, parse_vary, verify

DATA = Path(__file__).resolve().parent / "data"
PLANTED = str(DATA / "planted.res")


def space(*vary: str, inputs: str | None = None) -> Space:
    dims = [parse_vary(v) for v in vary] + ([parse_input_range(inputs)] if inputs else [])
    return Space(tuple(dims))


def brute_force_failures(widths, sizes) -> dict[str, tuple[int, int]]:
    """Every configuration checked with resdsl.load, the first (smallest) failing one per code and line."""
    found = {}
    for width in widths:
        for size in sizes:
            try:
                resdsl.load(PLANTED, width=width, input_shape=(3, size, size))
            except SpecError as exc:
                d = exc.diagnostics[0]
                found.setdefault(f"{d.code}:{d.line}", (width, size))
    return found


def failures_of(report) -> dict[str, tuple[int, int]]:
    return {
        f"{f.diagnostic.code}:{f.diagnostic.line}": (int(f.config["width"]), int(f.config["input"].split("x")[0]))
        for f in report.failures
    }


# ---- the space ----------------------------------------------------------------------------------


def test_values_lists_ranges_and_expressions():
    assert parse_vary("depth=18,34,50").values == ("18", "34", "50")
    assert parse_vary("width=16..64:16").values == ("16", "32", "48", "64")
    assert parse_vary("width=8, 16..32:8").values == ("8", "16", "24", "32")
    assert parse_vary("layers=[2,2,2,2],[3,4,6,3]").values == ("[2,2,2,2]", "[3,4,6,3]")
    assert parse_vary("unit=basic,bottleneck").values == ("basic", "bottleneck")
    assert parse_input_range("32..40:4").values == ((32, 32), (36, 36), (40, 40))
    assert parse_input_range("8..9x16..17").values == ((8, 16), (8, 17), (9, 16), (9, 17))


@pytest.mark.parametrize("bad", ["depth", "=3", "depth=", "depth=5..1", "depth=1..9:0", "depth=1,,2"])
def test_bad_vary_is_a_usage_error(bad):
    with pytest.raises(UsageError):
        parse_vary(bad)


@pytest.mark.parametrize("bad", ["32", "0..8", "8..4", "a..b", "8..16x"])
def test_bad_input_range_is_a_usage_error(bad):
    with pytest.raises(UsageError):
        parse_input_range(bad)


# ---- finding and shrinking the planted failures -------------------------------------------------


def test_exhaustive_finds_every_planted_failure_at_its_minimum():
    widths, sizes = range(8, 41, 4), range(4, 41)
    report = verify(PLANTED, space("width=8..40:4", inputs="4..40"), examples=10_000)
    assert report.exhaustive and report.tried == 9 * 37 and not report.ok
    assert failures_of(report) == brute_force_failures(widths, sizes)
    assert set(failures_of(report)) == {"E0403:10", "E0402:11", "E0404:13", "E0403:14"}


def test_sampling_finds_the_planted_failures_and_shrinks_each_to_its_minimum():
    """A space of 99 × 509 configurations, 300 sampled: each failure is shrunk to the smallest
    configuration that shows it (the brute-force minimum over the whole space)."""
    report = verify(PLANTED, space("width=8..400:4", inputs="4..512"), examples=300, seed=3)
    assert not report.exhaustive and not report.ok
    assert failures_of(report) == {"E0403:10": (8, 4), "E0402:11": (12, 7), "E0404:13": (8, 9), "E0403:14": (8, 7)}
    for failure in report.failures:  # the reproduction command shows the same error
        args = failure.reproduce.split()[1:]
        assert args[:2] == ["check", report.spec]
        assert main(args) == 1


def test_a_space_where_every_rule_holds(capsys):
    assert main(["verify", "resnet", "--vary", "depth=18,50", "--input-range", "32..40"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok resnet (resnet): 18 configurations of 2 depth × 9 input (every one)")
    assert "valid input sizes at the spec's own values: every H from 32 to 40 (the smallest input is 1x1)" in out


def test_text_output_and_exit_1(capsys):
    assert main(["verify", PLANTED, "--vary", "width=8,12,16", "--input-range", "30..33"]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "3 distinct failures" not in captured.out
    assert "error[E0402]: groups=8 does not divide the input channels (12)" in captured.err
    assert "= minimal failing configuration: width=12, input=30x30" in captured.err
    assert f"= reproduce: resdsl check {PLANTED} --set width=12 --input 3x30x30" in captured.err


@pytest.mark.parametrize(
    "args",
    [["--vary", "width"], ["--input-range", "9..3"], ["--examples", "0"], ["--vary", "width=8", "--vary", "width=16"]],
)
def test_usage_errors_exit_2(args, capsys):
    assert main(["verify", PLANTED, *args]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_unknown_parameter_is_one_located_failure(capsys):
    assert main(["verify", PLANTED, "--vary", "nosuch=1,2"]) == 1
    err = capsys.readouterr().err
    assert err.count("error[") == 1 and "nosuch" in err


def test_runtime_builds_and_runs_a_sample(capsys):
    assert main(["verify", "resnet20", "--vary", "n=1,2", "--input-range", "16..20:4", "--runtime"]) == 0
    assert "built and run" in capsys.readouterr().out


def test_runtime_reports_a_module_that_differs_from_the_spec(monkeypatch):
    import resdsl.backend.runtime as runtime

    monkeypatch.setattr(
        runtime, "runtime_mismatch", lambda net, batch=1: "MACs: FlopCounterMode counts 1, the spec says 2"
    )
    report = verify("resnet20", space("n=1,2"), runtime=True)
    assert not report.ok and report.failures[0].key[0] == "runtime" and "--runtime" in report.failures[0].reproduce


# ---- pyproject.toml -------------------------------------------------------------------------------


def test_verify_with_no_arguments_reads_pyproject(tmp_path, monkeypatch, capsys):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "planted.res").write_text(Path(PLANTED).read_text())
    (tmp_path / "specs" / "good.res").write_text('use "resnet20.res"\nnetwork good = resnet20(n = 1)\n')
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[[tool.resdsl.verify]]\n'
        'specs = "specs/good.res"\ninput-range = "16..24:8"\n\n'
        '[[tool.resdsl.verify]]\nspecs = ["specs/planted.res"]\n'
        'vary = ["width=16,24"]\ninput-range = "30..31"\n'
    )
    monkeypatch.chdir(tmp_path / "specs")  # found in a parent folder
    assert main(["verify"]) == 1
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("  ")]
    assert out[0].startswith("ok ") and "good.res" in out[0] and "2 configurations" in out[0]
    assert out[1].startswith("FAILED ") and "planted.res" in out[1]


@pytest.mark.parametrize(
    "table, message",
    [
        ("", "no [[tool.resdsl.verify]] table"),
        ('[[tool.resdsl.verify]]\nvary = ["depth=1"]\n', "needs `specs`"),
        ('[[tool.resdsl.verify]]\nspecs = "nothing/*.res"\n', "no spec matches"),
        (
            '[[tool.resdsl.verify]]\nspecs = "*.res"\ncolour = 1\n',
            "pyproject.toml:3: [[tool.resdsl.verify]] #1 has no key `colour`",
        ),
        (
            '[[tool.resdsl.verify]]\nspecs = "*.res"\nexamples = 0\n',
            "pyproject.toml:3: [[tool.resdsl.verify]] #1: `examples` is 0 (an integer); expected a whole number from 1",
        ),
    ],
)
def test_pyproject_mistakes_are_usage_errors(tmp_path, monkeypatch, capsys, table, message):
    (tmp_path / "a.res").write_text('use "resnet20.res"\nnetwork a = resnet20()\n')
    (tmp_path / "pyproject.toml").write_text(table)
    monkeypatch.chdir(tmp_path)
    assert main(["verify"]) == 2
    assert message in capsys.readouterr().err


# ---- machine formats ---------------------------------------------------------------------------


def test_check_json_lists_every_spec_and_finding(capsys, tmp_path):
    bad = tmp_path / "bad.res"
    bad.write_text("network bad {\n    input 3x8x8\n    conv 16 k9 p0\n}\n")
    assert main(["check", "resnet20", str(bad), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in data["results"]] == [True, False]
    [finding] = data["findings"]
    assert finding["code"] == "E0403" and finding["line"] == 3 and finding["column"] == 5


def test_github_annotations_point_at_the_spec_line(capsys, tmp_path):
    bad = tmp_path / "bad.res"
    bad.write_text("network bad {\n    input 3x8x8\n    conv 16 k9 p0\n}\n")
    assert main(["check", str(bad), "--format", "github"]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"::error file={bad},line=3,col=5,endColumn=18,title=resdsl E0403::`conv` with kernel 9")
    assert "\n" not in line and "%0Ahelp: " in line


def _sarif_validator():
    import jsonschema  # in the [test] extra

    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_sarif_of_check_and_verify_is_valid_sarif_2_1_0(capsys, tmp_path):
    validator = _sarif_validator()
    bad = tmp_path / "bad.res"
    bad.write_text("network bad {\n    input 3x8x8\n    conv 16 k9 p0\n}\n")
    assert main(["check", str(bad), "resnet20", "--format", "sarif"]) == 1
    log = json.loads(capsys.readouterr().out)
    validator.validate(log)
    [result] = log["runs"][0]["results"]
    assert result["ruleId"] == "E0403" and result["level"] == "error"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (3, 5)
    assert main(["verify", PLANTED, "--vary", "width=8..16:4", "--input-range", "6..10", "--format", "sarif"]) == 1
    log = json.loads(capsys.readouterr().out)
    validator.validate(log)
    assert {r["ruleId"] for r in log["runs"][0]["results"]} == {"E0402", "E0403", "E0404"}
    assert all("minimal failing configuration" in r["message"]["text"] for r in log["runs"][0]["results"])
    assert main(["check", "resnet20", "--format", "sarif"]) == 0
    validator.validate(json.loads(capsys.readouterr().out))


def test_the_validator_rejects_a_broken_log():
    """The schema check can fail: a result without a message is not SARIF."""
    import jsonschema

    validator = _sarif_validator()
    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "resdsl"}}, "results": [{"ruleId": "E1"}]}]}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
