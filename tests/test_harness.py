"""The shared process helpers point at this checkout."""

from __future__ import annotations

from harness.processes import REPO_ROOT


def test_repo_root_is_the_checkout() -> None:
    assert (REPO_ROOT / "pyproject.toml").is_file()
    assert (REPO_ROOT / "harness" / "processes.py").is_file()
