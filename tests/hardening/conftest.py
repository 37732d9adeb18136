"""Shared by the hardening tests: the hostile-input tallies and their terminal summary."""

from __future__ import annotations

import pytest

from tests.hardening.tally import Tally, summary_lines, tally_for


@pytest.fixture(scope="module")
def hostile_tally(request: pytest.FixtureRequest) -> Tally:
    """The tally named after the test's module (``test_fuzz_schema``, ...)."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    return tally_for(request.config, name)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = summary_lines(config)
    if lines:
        terminalreporter.section("hostile input")
        for line in lines:
            terminalreporter.write_line(line)
