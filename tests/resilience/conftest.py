"""Crash and outage tests: each runs its own stack (`tests/support/isolated_stack.py`).

Every test records a one-line tally (accepted, received, lost, duplicates) with
`record_property("resilience", ...)`; the terminal summary below prints those lines and each
test's duration, so duplicates are reported whether the test passes or fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter

ARTIFACTS_NAME = "resilience"


@pytest.fixture
def admin_url(service_urls: tuple[str, str]) -> str:
    """The PostgreSQL admin URL the session uses (each isolated stack creates its own database)."""
    return service_urls[0]


@pytest.fixture
def resilience_logs(log_dir: Path, request: pytest.FixtureRequest) -> Path:
    """Where this test's processes log: `<run artifacts>/resilience/<test name>/`."""
    path: Path = log_dir / ARTIFACTS_NAME / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    lines = []
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            tallies = [value for name, value in report.user_properties if name == "resilience"]
            if tallies:
                lines.append(f"{report.nodeid} [{outcome}, {report.duration:.1f} s]")
                lines.extend(f"    {tally}" for tally in tallies)
    if lines:
        terminalreporter.write_sep("-", "resilience: delivered, lost and duplicated items")
        for line in lines:
            terminalreporter.write_line(line)
