"""The pass-through's operation table against Datadog's definitions: it lists every operation
that takes OAuth (`AuthZ`), with its scopes, and regenerating it is one command that changes
nothing while the definitions stay as they are."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.processes import REPO_ROOT

DEFINITIONS = REPO_ROOT / "datadog-openapi"
TABLE = REPO_ROOT / "service" / "passthrough" / "operations.json"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def definitions() -> dict[str, dict[str, Any]]:
    return {
        version: yaml.load((DEFINITIONS / f"{version}.yaml").read_bytes(), Loader=yaml.CSafeLoader)
        for version in ("v1", "v2")
    }


def _table() -> dict[str, Any]:
    table: dict[str, Any] = json.loads(TABLE.read_text())
    return table


def _authz_operations(version: str, definition: dict[str, Any]) -> set[tuple[Any, ...]]:
    """(version, METHOD, path, operationId, scope alternatives) of each operation whose
    security requirements (its own, else the definition's) name AuthZ."""
    found = set()
    for path, item in definition["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            security = operation.get("security", definition.get("security", []))
            alternatives = [alt for alt in security if "AuthZ" in alt]
            if alternatives:
                scopes = tuple(sorted(tuple(sorted(alt["AuthZ"])) for alt in alternatives))
                found.add((version, method.upper(), path, operation["operationId"], scopes))
    return found


def test_the_table_covers_every_authz_operation_of_both_definitions(
    definitions: dict[str, dict[str, Any]],
) -> None:
    expected = set().union(*(_authz_operations(v, d) for v, d in definitions.items()))
    listed = {
        (
            entry["version"],
            entry["method"],
            entry["path"],
            entry["operation_id"],
            tuple(sorted(tuple(sorted(alt)) for alt in entry["scopes"])),
        )
        for entry in _table()["operations"]
        if entry["scopes"] is not None
    }

    by_version = {v: sum(1 for e in expected if e[0] == v) for v in ("v1", "v2")}
    print(f"AuthZ operations in the definitions: {by_version}; in the table: {len(listed)}")
    assert listed == expected
    assert by_version["v1"] > 100
    assert by_version["v2"] > 400
    assert ("v1", "GET", "/api/v1/dashboard", "ListDashboards", (("dashboards_read",),)) in listed


def test_the_table_lists_every_other_operation_as_not_oauth(
    definitions: dict[str, dict[str, Any]],
) -> None:
    everything = {
        (version, method.upper(), path)
        for version, definition in definitions.items()
        for path, item in definition["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    table = _table()["operations"]

    assert {(e["version"], e["method"], e["path"]) for e in table} == everything
    assert len(table) == len(everything)
    [create_event] = [
        e for e in table if (e["version"], e["operation_id"]) == ("v1", "CreateEvent")
    ]
    assert (create_event["scopes"], create_event["other_auth"]) == (None, ["apiKeyAuth"])


def test_the_table_was_generated_from_the_shipped_definitions_by_its_command(
    tmp_path: Path,
) -> None:
    output = tmp_path / "operations.json"
    subprocess.run(
        [sys.executable, "-m", "service.passthrough.generate", "--output", str(output)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )

    assert output.read_bytes() == TABLE.read_bytes(), "run `make operations` and commit"
    for version, source in _table()["definitions"].items():
        raw = (DEFINITIONS / f"{version}.yaml").read_bytes()
        assert source == {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
