"""`verify`, `summary --input-sizes` and the pytest plugin where things go wrong (issue 17, section 3):
an unreadable or invalid `[tool.resdsl]`, an unreadable spec, outcomes in the --format asked for,
spaces too large to list, long input-size ranges, --runtime without torch or without the memory,
and range texts that are not what they seem."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest

import resdsl
from resdsl.cli import main
from resdsl.errors import UsageError
from resdsl.input_sizes import input_sizes, spatial_sizes
from resdsl.verify import Space, parse_input_range, parse_vary, verify
from resdsl.verify_cli import ConfigError, read_config

pytest_plugins = ["pytester"]

DATA = Path(__file__).resolve().parent / "data"
PLANTED = str(DATA / "planted.res")
GOOD = 'use "resnet20.res"\nnetwork good = resnet20(n = 1)\n'
HUGE = "9" * 5000  # more digits than int() reads (4,300)


def pyproject(tmp_path: Path, body: str) -> Path:
    (tmp_path / "good.res").write_text(GOOD)
    path = tmp_path / "pyproject.toml"
    path.write_text(body)
    return path


# ---- [tool.resdsl]: one validation, against a schema ---------------------------------------------


@pytest.mark.parametrize(
    "line, message",
    [
        ('runtime = "no"', '`runtime` is "no" (a string); expected true or false'),
        ("runtime = 1", "`runtime` is 1 (an integer); expected true or false"),
        ('examples = "500"', '`examples` is "500" (a string); expected a whole number from 1'),
        ("examples = true", "`examples` is true (a boolean); expected a whole number from 1"),
        ("examples = 1.5", "`examples` is 1.5 (a number); expected a whole number from 1"),
        ('seed = "x"', '`seed` is "x" (a string); expected a whole number'),
        ("network = 3", "`network` is 3 (an integer); expected a network name"),
        ("vary = 3", "`vary` is 3 (an integer); expected a NAME=VALUES string or a list of them"),
        ("vary = [1, 2]", "`vary` is [1, 2] (an array); expected a NAME=VALUES string"),
        ("input-range = 32", "`input-range` is 32 (an integer); expected a string LO..HI[:STEP]"),
        ("input-range = [32, 64]", "`input-range` is [32, 64] (an array)"),
        ("exmaples = 5", "has no key `exmaples`; did you mean `examples`?"),
        ('inputrange = "1..4"', "has no key `inputrange`; did you mean `input-range`?"),
        ('vary = ["depth"]', "`vary`: --vary: expected NAME=VALUES"),
        ('input-range = "8..4"', "`input-range`: --input-range: '8..4' is empty"),
    ],
)
def test_a_wrong_key_or_type_is_one_located_error_naming_key_value_and_type(
    tmp_path, monkeypatch, capsys, line, message
):
    path = pyproject(tmp_path, f'[project]\nname = "x"\n\n[[tool.resdsl.verify]]\nspecs = "good.res"\n{line}\n')
    monkeypatch.chdir(tmp_path)
    assert main(["verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resdsl: error: pyproject.toml:6: [[tool.resdsl.verify]] #1") and message in err, err
    assert err.count("\n") == 1
    with pytest.raises(ConfigError):
        from resdsl.verify_cli import jobs_of_config

        jobs_of_config(path)


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("[tool.resdsl\n", 1, "not valid TOML"),
        ("[tool.resdsl]\nverfy = 1\n", 2, "[tool.resdsl] has no key `verfy`; did you mean `verify`?"),
        ("[tool.resdsl]\nverify = 3\n", 2, "`verify` is 3 (an integer); expected an array of tables"),
        ('[tool]\nresdsl = "yes"\n', 1, '`tool.resdsl` is "yes" (a string); expected a table'),
        ('[[tool.resdsl.verify]]\nvary = "depth=1"\n', 1, "[[tool.resdsl.verify]] #1 needs `specs`"),
        ("[[tool.resdsl.verify]]\nspecs = []\n", 2, "`specs` is [] (an array); expected a glob or a non-empty list"),
    ],
)
def test_the_table_itself(tmp_path, body, line, message):
    with pytest.raises(ConfigError) as caught:
        read_config(pyproject(tmp_path, body))
    assert caught.value.line == line and message in str(caught.value), str(caught.value)


def test_a_file_without_the_table_is_no_job_and_a_good_table_reads(tmp_path):
    assert read_config(pyproject(tmp_path, '[project]\nname = "x"\n')) == []
    [entry] = read_config(
        pyproject(
            tmp_path,
            '[[tool.resdsl.verify]]\nspecs = ["good.res"]\nruntime = false\nexamples = 3\nseed = 2\nvary = "n=1,2"\n',
        )
    )
    assert entry.values["runtime"] is False and entry.values["examples"] == 3


# ---- the pytest plugin ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table, message",
    [
        ("[tool.resdsl\n", "sub/pyproject.toml:1: not valid TOML"),
        (
            '[[tool.resdsl.verify]]\nspecs = "good.res"\nruntime = "no"\n',
            'sub/pyproject.toml:3: [[tool.resdsl.verify]] #1: `runtime` is "no" (a string); expected true or false',
        ),
        ('[[tool.resdsl.verify]]\nspecs = "good.res"\nexmaples = 5\n', "did you mean `examples`?"),
    ],
)
def test_pytest_fails_when_the_table_cannot_be_read(pytester, table, message):
    pytester.makeini("[pytest]\n")
    sub = pytester.mkdir("sub")
    (sub / "good.res").write_text(GOOD)
    (sub / "other.res").write_text(GOOD)
    (sub / "pyproject.toml").write_text(table)
    result = pytester.runpytest("--resdsl", "-rA", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)  # the two checks, and one item for the broken table
    out = result.stdout.str()
    assert message in out and "FAILED sub/good.res::resdsl-config" in out and "Traceback" not in out, out


def test_an_unreadable_spec_is_one_located_failure(pytester, monkeypatch):
    import resdsl.pipeline as pipeline

    pytester.makefile(".res", locked=GOOD, good=GOOD)
    real = pipeline.read_source

    def read_source(path, shown=None):  # as open() fails on a file without read permission
        if Path(path).name == "locked.res":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, shown)

    monkeypatch.setattr(pipeline, "read_source", read_source)
    result = pytester.runpytest_inprocess("--resdsl", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "Traceback" not in out and len(out.splitlines()) < 20, out
    result.stdout.fnmatch_lines(
        ["*resdsl: error: cannot read locked.res: Permission denied*", "*FAILED locked.res::check*"]
    )


# ---- every outcome in the --format asked for ---------------------------------------------------------

BROKEN = "network broken {\n    input 3x8x8\n    conv 16 k3 ->\n}\n"


def _sarif_validator():
    import jsonschema

    return jsonschema.Draft7Validator(json.loads((DATA / "sarif-schema-2.1.0.json").read_text()))


@pytest.mark.parametrize("fmt", ["json", "sarif", "github"])
def test_a_spec_that_does_not_parse_is_written_in_the_format(tmp_path, capsys, fmt):
    bad = tmp_path / "broken.res"
    bad.write_text(BROKEN)
    assert main(["verify", str(bad), "--vary", "n=1,2", "--format", fmt]) == 1
    captured = capsys.readouterr()
    out = captured.out
    assert out.strip() and not captured.err, captured
    if fmt == "json":
        data = json.loads(out)
        assert data["results"] == [{"spec": str(bad), "ok": False, "errors": 1}]
        assert data["findings"][0]["code"].startswith("E01") and data["findings"][0]["line"] == 4
    elif fmt == "sarif":
        log = json.loads(out)
        _sarif_validator().validate(log)
        [result] = log["runs"][0]["results"]
        assert result["ruleId"].startswith("E01") and result["locations"][0]["physicalLocation"]["region"]["startLine"]
    else:
        assert out.startswith(f"::error file={bad},line=4,")


@pytest.mark.parametrize(
    "args",
    [
        ["--vary", "width"],
        ["--vary", "input=32"],
        ["--examples", "0"],
        ["--seed", "x"],
        ["--input-range", f"1..{HUGE}"],
    ],
)
@pytest.mark.parametrize("fmt", ["json", "sarif", "github"])
def test_usage_errors_are_written_in_the_format(capsys, fmt, args):
    assert main(["verify", PLANTED, *args, "--format", fmt]) == 2
    captured = capsys.readouterr()
    assert not captured.err and captured.out.strip()
    if fmt == "json":
        [finding] = json.loads(captured.out)["findings"]
        assert finding["code"] == "usage"
    elif fmt == "sarif":
        log = json.loads(captured.out)
        _sarif_validator().validate(log)
        assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["usage"]
    else:
        assert captured.out.startswith("::error title=resdsl usage::")


def test_a_config_error_is_written_at_its_line_of_pyproject(tmp_path, monkeypatch, capsys):
    pyproject(tmp_path, '[[tool.resdsl.verify]]\nspecs = "good.res"\nruntime = "no"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["verify", "--format", "sarif"]) == 2
    log = json.loads(capsys.readouterr().out)
    _sarif_validator().validate(log)
    [result] = log["runs"][0]["results"]
    assert result["ruleId"] == "config" and '`runtime` is "no"' in result["message"]["text"]
    where = result["locations"][0]["physicalLocation"]
    assert where["artifactLocation"]["uri"] == "pyproject.toml" and where["region"]["startLine"] == 3
    assert main(["verify", "--format", "github"]) == 2
    assert capsys.readouterr().out.startswith("::error file=pyproject.toml,line=3,col=1,")


# ---- spaces: sized before built, values lazy -----------------------------------------------------------


def test_ranges_stay_lazy_and_the_space_is_sized_before_it_is_built():
    tracemalloc.start()
    try:
        million = parse_vary("width=1..1000000")
        sizes = parse_input_range("1..1000x1..1000")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # listed, the million values took 60 MB
    assert len(million.values) == 10**6 and million.values[0] == "1" and million.values[-1] == "1000000"
    assert len(sizes.values) == 10**6 and sizes.values[1001] == (2, 2)
    trillion = parse_vary("width=1..1000000000000")
    assert len(trillion.values) == 10**12 and trillion.values[10**12 - 1] == str(10**12)
    assert Space((trillion,)).size == 10**12
    assert parse_vary("width=8,4..12:4").values == ("8", "4", "12")  # small: listed, repeats dropped
    with pytest.raises(UsageError, match="at most"):
        parse_vary("width=1..1000000000001")
    with pytest.raises(UsageError, match="configurations; at most"):
        verify("resnet20", Space((trillion, parse_vary("classes=1,2"))))


def test_a_trillion_configurations_are_sampled_without_listing_them():
    tracemalloc.start()
    try:
        report = verify("resnet20", Space((parse_vary("classes=1..1000000000000"),)), examples=3, workers=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not report.exhaustive and report.space == "1000000000000 classes"
    assert peak < 100_000_000


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "resnet20", "--vary", f"n=1..{HUGE}"],
        ["verify", "resnet20", "--vary", f"n={HUGE}..{HUGE}"],
        ["verify", "resnet20", "--vary", f"n=1..9:{HUGE}"],
        ["verify", "resnet20", "--input-range", f"{HUGE}..{HUGE}"],
        ["verify", "resnet20", "--input-range", f"1..4x1..{HUGE}"],
        ["summary", "resnet20", "--input-sizes", f"1..{HUGE}"],
    ],
)
def test_range_bounds_with_thousands_of_digits_are_usage_errors(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("resdsl: error: ") and err.count("\n") == 1 and len(err) < 300, err


def test_input_is_not_a_parameter_to_vary(capsys):
    assert main(["verify", "resnet20", "--vary", "input=32,64"]) == 2
    assert "vary the input size with --input-range" in capsys.readouterr().err


def test_an_empty_input_sizes_range_is_a_usage_error(capsys):
    assert main(["summary", "resnet20", "--input-sizes", ""]) == 2
    assert "--input-sizes: expected LO..HI" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["summary", "mlp_resnet", "--input-sizes", "1..8"],
        ["summary", "mlp_resnet", "--input-sizes", "1..8", "--json"],
        ["verify", "mlp_resnet", "--input-range", "1..4"],
    ],
)
def test_a_vector_network_has_no_spatial_size(capsys, argv):
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "resdsl: error: "
        + ("--input-range: " if argv[0] == "verify" else "")
        + "`mlp_resnet` takes a vector input: it has no spatial input size\n"
    )


# ---- input sizes: by periods, over the whole accepted range ---------------------------------------------


def test_the_whole_accepted_range_takes_well_under_a_second(capsys):
    start = time.process_time()
    assert main(["summary", "resnet18", "--input-sizes", "1..1000000", "--json"]) == 0
    assert main(["verify", PLANTED, "--input-range", "1..1000000", "--examples", "2"]) == 1
    spent = time.process_time() - start
    data = json.loads(capsys.readouterr().out.split("\nFAILED")[0].rsplit("\nok ", 1)[0])["input_sizes"]
    assert data["valid"] == "every H from 1 to 1000000" and len(data["valid_sizes"]) == 10**6
    assert spent < 10, spent  # size by size: 145 CPU-s


ONE_SIZE = """network one_size {
    input 3x1x1
    both {
        branches(2, merge = concat) {
            if branch == 0 { conv 4 k3 s2 } else { conv 4 k1 }
        }
    }
}
"""
FC_ON_A_MAP = "network fc_on_a_map {\n    input 3x2x2\n    conv 4 k3 s2\n    fc 10\n}\n"


@pytest.mark.parametrize(
    "spec, high",
    [
        ("resnet50", 300),
        ("densenet_cifar", 300),
        ("res2net50_26w_4s", 300),
        ("resnetv2_50x1_bit", 300),
        (PLANTED, 300),
        ("ONE_SIZE", 200),
        ("FC_ON_A_MAP", 200),
    ],
)
def test_the_periods_give_what_each_size_pushed_through_the_graph_gives(spec, high):
    net = resdsl.loads(globals()[spec]) if spec.isupper() else resdsl.load(spec)
    found = input_sizes(net, 1, high)
    truth = tuple(h for h in range(1, high + 1) if spatial_sizes(net.ops, h) is not None)
    assert found.valid == truth
    assert found.smallest == next((h for h in range(1, 5000) if spatial_sizes(net.ops, h) is not None), None)
    if spec == "ONE_SIZE":
        assert found.valid == (1,) and found.describe_valid() == "H from 1 to 1"
    if spec == "FC_ON_A_MAP":
        assert found.valid == (1, 2)


# ---- --runtime -------------------------------------------------------------------------------------------------


def test_runtime_without_torch_is_one_line(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    assert main(["verify", "resnet20", "--vary", "n=1,2", "--runtime"]) == 2
    assert capsys.readouterr().err == (
        "resdsl: error: resdsl verify --runtime needs PyTorch: pip install 'resdsl[torch]'\n"
    )


def test_runtime_refuses_what_cannot_fit_in_memory_before_building_it(monkeypatch, capsys):
    import resdsl.backend.runtime as runtime

    def never(net, batch=1):
        raise AssertionError("built a configuration that cannot fit")

    monkeypatch.setattr(runtime, "runtime_mismatch", never)
    assert main(["verify", "resnet20", "--input-range", "20000..20000", "--runtime", "--max-memory", "100M"]) == 1
    captured = capsys.readouterr()
    assert "error[E0506]: `resnet20` needs about" in captured.err and "more than --max-memory 100 MB" in captured.err
    assert (
        "reproduce: resdsl verify resnet20 --input-range 20000..20000 --runtime --max-memory 100000000" in captured.err
    )
    assert "built and run" not in captured.out
