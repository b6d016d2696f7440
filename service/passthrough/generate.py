"""Generate the pass-through's operation table from Datadog's published OpenAPI definitions.

    python -m service.passthrough.generate [--definitions DIR] [--output FILE]

reads `v1.yaml` and `v2.yaml` from DIR (default: the checkout's `datadog-openapi/`) and writes
FILE (default: `operations.json` beside this module), one operation per line, sorted, so a
new definition shows as a readable diff. Every operation of both definitions is listed, with:

- `scopes`: the alternatives Datadog accepts with OAuth (`AuthZ` alone in a security
  requirement), each the list of scopes it needs together (an empty list: any token); None
  when no alternative is OAuth, so the operation needs keys a partner never holds;
- `other_auth`: the other alternatives (`apiKeyAuth+appKeyAuth`), for the refusal's wording;
- `servers`: only when the operation is served elsewhere than `api.<domain>` (its own
  `servers` list in the definition).

An operation without its own `security` takes the definition's top-level one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEFINITIONS = HERE.parents[1] / "datadog-openapi"
OUTPUT = HERE / "operations.json"
VERSIONS = ("v1", "v2")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
OAUTH = "AuthZ"


def operations_of(definition: dict[str, Any], version: str) -> list[dict[str, Any]]:
    """Every operation of one parsed definition, as table entries."""
    default_security = definition.get("security") or []
    entries = []
    for path, item in definition["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            security = operation.get("security", default_security) or []
            oauth = [list(alt[OAUTH]) for alt in security if set(alt) == {OAUTH}]
            entry: dict[str, Any] = {
                "version": version,
                "method": method.upper(),
                "path": path,
                "operation_id": operation["operationId"],
                "scopes": oauth or None,
                "other_auth": ["+".join(alt) for alt in security if set(alt) != {OAUTH}],
            }
            if "servers" in operation:
                entry["servers"] = [server["url"] for server in operation["servers"]]
            entries.append(entry)
    return entries


def build(definitions: Path) -> dict[str, Any]:
    """The table for `definitions/{v1,v2}.yaml`, with each file's size and SHA-256."""
    sources: dict[str, Any] = {}
    operations: list[dict[str, Any]] = []
    for version in VERSIONS:
        raw = (definitions / f"{version}.yaml").read_bytes()
        sources[version] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        operations.extend(operations_of(yaml.load(raw, Loader=loader), version))  # noqa: S506
    operations.sort(key=lambda e: (e["version"], e["path"], METHODS.index(e["method"].lower())))
    return {
        "generated_by": "python -m service.passthrough.generate",
        "definitions": sources,
        "operations": operations,
    }


def render(table: dict[str, Any]) -> str:
    """The table as JSON with one operation per line."""
    head = {key: value for key, value in table.items() if key != "operations"}
    lines = [json.dumps(entry, separators=(", ", ": ")) for entry in table["operations"]]
    body = ",\n    ".join(lines)
    return json.dumps(head, indent=2)[:-2] + f',\n  "operations": [\n    {body}\n  ]\n}}\n'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--definitions", type=Path, default=DEFINITIONS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    table = build(args.definitions)
    args.output.write_text(render(table))
    oauth = sum(1 for entry in table["operations"] if entry["scopes"] is not None)
    print(f"{args.output}: {len(table['operations'])} operations, {oauth} with OAuth")


if __name__ == "__main__":
    main()
