"""The pytest plugin (resdsl/pytest_plugin.py): `pytest --resdsl` turns *.res files into test items."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

PLANTED = (Path(__file__).resolve().parent / "data" / "planted.res").read_text()
GOOD = 'use "resnet20.res"\nnetwork good = resnet20(n = 1)\n'
BLOCKS = "block twice(width) { conv width k3 -> conv width k3 }\n"
BAD = "network bad {\n    input 3x8x8\n    conv 16 k9 p0\n}\n"


def test_without_the_option_res_files_are_not_collected(pytester):
    pytester.makefile(".res", bad=BAD)
    result = pytester.runpytest()
    assert result.ret == 5  # no tests collected


def test_every_res_file_is_checked_and_a_failure_shows_the_located_diagnostic(pytester):
    pytester.makefile(".res", good=GOOD, bad=BAD, blocks=BLOCKS)
    result = pytester.runpytest("--resdsl", "-rA")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*error[[]E0403[]]: `conv` with kernel 9, stride 1, padding 0 turns 8x8 into 0x0*",
            "*--> *bad.res:3:5*",
            "*FAILED bad.res::check*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_the_ini_option_turns_it_on_and_pyproject_spaces_are_verified(pytester):
    pytester.makefile(".res", planted=PLANTED.replace('use "blocks.res"', 'use "blocks.res"'), good=GOOD)
    pytester.makefile(
        ".toml",
        pyproject="[tool.pytest.ini_options]\nresdsl = true\n\n"
        '[[tool.resdsl.verify]]\nspecs = "planted.res"\nvary = ["width=8,12,16"]\n'
        'input-range = "30..32"\n\n'
        '[[tool.resdsl.verify]]\nspecs = "good.res"\ninput-range = "16..24:8"\n',
    )
    result = pytester.runpytest("-rA")
    # planted.res: check passes (its defaults are valid), verify finds the planted failures
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*error[[]E0402[]]: groups=8 does not divide the input channels (12)*",
            "*= minimal failing configuration: width=12, input=30x30*",
            "*FAILED planted.res::verify*",
        ]
    )
