"""A pytest plugin: with `pytest --resdsl` (or `resdsl = true` in the pytest ini options), every
`*.res` file under the test paths is collected: one test item per file that checks it as
`resdsl check` does, and one more per `[[tool.resdsl.verify]]` entry of pyproject.toml that names
the file, which runs `resdsl verify` over that space. A failure shows the located diagnostic.

A `[tool.resdsl]` table that cannot be read or is not valid (a TOML syntax error, a key of the
wrong type, an unknown key) is a failing item, `pyproject.toml::resdsl-config`, that names the file,
the line and the problem: never a silent pass with nothing verified. A spec that cannot be read is
its check item's one-line failure.

Registered through the `pytest11` entry point, so it is there whenever resdsl is installed, and
does nothing unless asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resdsl")
    group.addoption(
        "--resdsl",
        action="store_true",
        default=None,
        help="collect *.res files: check each, and verify those pyproject.toml's [tool.resdsl] names",
    )
    parser.addini("resdsl", type="bool", default=False, help="collect *.res files as with --resdsl")


def _enabled(config: pytest.Config) -> bool:
    option = config.getoption("resdsl")
    return bool(option) if option is not None else bool(config.getini("resdsl"))


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == ".res" and _enabled(parent.config):
        return SpecFile.from_parent(parent, path=file_path)
    return None


class SpecFailure(Exception):
    """A spec that failed: its rendered diagnostics (or verify's report)."""


_REPORTED = pytest.StashKey[set]()


class SpecFile(pytest.File):
    def collect(self):
        yield CheckItem.from_parent(self, name="check")
        from .errors import UsageError
        from .verify_cli import find_pyproject, jobs_of_config

        found = find_pyproject(self.path.parent)
        if found is None:
            return
        try:
            jobs = jobs_of_config(found)
        except UsageError as exc:  # the table is broken: one failing item for the file, with the problem
            reported = self.config.stash.setdefault(_REPORTED, set())
            if found.resolve() not in reported:
                reported.add(found.resolve())
                yield ConfigItem.from_parent(self, name="resdsl-config", problem=str(exc), pyproject=found)
            return
        for i, job in enumerate(j for j in jobs if Path(j.spec).resolve() == self.path.resolve()):
            yield VerifyItem.from_parent(
                self,
                name=f"verify[{job.space.describe()}]" if i == 0 else f"verify{i + 1}[{job.space.describe()}]",
                job=job,
            )


def _not_run(path: Path, exc: Exception) -> SpecFailure:
    """A spec that cannot be read (or a space that cannot be built): one line, never a traceback."""
    if isinstance(exc, OSError):
        return SpecFailure(f"resdsl: error: cannot read {path}: {exc.strerror or exc}")
    return SpecFailure(f"resdsl: error: {exc}")


class CheckItem(pytest.Item):
    # No fixtures, but an empty `funcargs` as a test function has: some plugins' hook wrappers read it
    # and return without yielding when it is missing (pytest-lsp 1.0's pytest_runtest_call), which
    # would fail every item here.
    funcargs: dict = {}  # noqa: RUF012 - never written

    def runtest(self) -> None:
        from .errors import SpecError, UsageError
        from .pipeline import Checker

        try:
            checker = Checker(str(self.path))
        except (UsageError, OSError) as exc:
            raise _not_run(self.path, exc) from None
        except SpecError as exc:
            from .cli import _is_library

            if _is_library(exc):
                return  # a file of blocks: parsed and its `use`s found, nothing to check
            raise SpecFailure(exc.render()) from None
        try:
            checker.check({})
        except SpecError as exc:
            raise SpecFailure(exc.render()) from None

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SpecFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"resdsl check {self.path.name}"


class VerifyItem(CheckItem):
    def __init__(self, *, job, **kwargs):
        super().__init__(**kwargs)
        self.job = job

    def runtest(self) -> None:
        from .errors import SpecError, UsageError
        from .verify import verify
        from .verify_cli import summary_line

        job = self.job
        try:
            report = verify(
                str(self.path),
                job.space,
                examples=job.examples,
                runtime=job.runtime,
                seed=job.seed,
                network=job.network,
            )
        except SpecError as exc:
            raise SpecFailure(exc.render()) from None
        except (UsageError, OSError) as exc:
            raise _not_run(self.path, exc) from None
        if not report.ok:
            parts = [
                f"{f.text}\n  = minimal failing configuration: "
                f"{', '.join(f'{k}={v}' for k, v in f.config.items())}\n  = reproduce: {f.reproduce}"
                for f in report.failures
            ]
            raise SpecFailure("\n\n".join(parts + [summary_line(report)]))

    def reportinfo(self):
        return self.path, None, f"resdsl verify {self.path.name} over {self.job.space.describe()}"


class ConfigItem(CheckItem):
    """pyproject.toml's [tool.resdsl] cannot be read or is not valid: this item fails with the problem."""

    def __init__(self, *, problem: str, pyproject: Path, **kwargs):
        super().__init__(**kwargs)
        self.problem, self.pyproject = problem, pyproject

    def runtest(self) -> None:
        raise SpecFailure(f"resdsl: error: {self.problem}\n(no space of {self.pyproject} was verified)")

    def reportinfo(self):
        return self.pyproject, None, f"resdsl [tool.resdsl] of {self.pyproject}"
