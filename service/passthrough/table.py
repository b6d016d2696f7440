"""The operation table: every operation of Datadog's v1 and v2 definitions, and how a
request's method and path find theirs.

The table is data (`operations.json`, written by `python -m service.passthrough.generate`),
read once on first use. A path is matched segment by segment against the path templates:
a `{param}` takes one non-empty segment, a literal segment must be equal, and where several
templates fit (`/api/v2/incidents/config/...` and `/api/v2/incidents/{incident_id}/...`) the
one with the request's method whose literal segments come first wins, as a router would. v1 and v2 stay apart because
their templates start with `/api/v1/` and `/api/v2/`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import unquote

from service.errors import ServiceError

TABLE_FILE = "operations.json"


class UnknownOperation(ServiceError):
    """No operation of Datadog's definitions has this method and path; nothing was sent."""

    status_code = 404
    code = "unknown_operation"


class NotOAuth(ServiceError):
    """The operation exists, but Datadog does not accept OAuth tokens for it; nothing was sent."""

    status_code = 403
    code = "operation_not_oauth"


class NotOnApiHost(ServiceError):
    """The operation is served on hosts of its own, not the site's API host; nothing was sent."""

    status_code = 403
    code = "operation_not_forwarded"


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of the definitions. `scopes` lists the OAuth alternatives (each a set
    of scopes needed together), None when Datadog takes no OAuth token for it."""

    version: str
    method: str
    path: str
    operation_id: str
    scopes: tuple[frozenset[str], ...] | None
    other_auth: tuple[str, ...]
    servers: tuple[str, ...] | None

    @property
    def name(self) -> str:
        """`v1.ListMonitors`: the id is unique within a version only (both have ListEvents)."""
        return f"{self.version}.{self.operation_id}"

    def oauth_scopes(self) -> tuple[frozenset[str], ...]:
        """The OAuth alternatives; raises `NotOAuth` or `NotOnApiHost` if it is not forwarded."""
        if self.scopes is None:
            takes = " or ".join(self.other_auth)
            raise NotOAuth(
                f"{self.method} {self.path} ({self.name}) does not accept OAuth tokens "
                f"({f'Datadog takes only {takes}' if takes else 'it takes no credential'}); "
                "nothing was sent to Datadog",
                operation=self.name,
            )
        if self.servers is not None:
            raise NotOnApiHost(
                f"{self.method} {self.path} ({self.name}) is served on "
                f"{', '.join(self.servers)}, not the site's API host; nothing was sent to Datadog",
                operation=self.name,
            )
        return self.scopes

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Operation:
        scopes = entry["scopes"]
        servers = entry.get("servers")
        return cls(
            version=entry["version"],
            method=entry["method"],
            path=entry["path"],
            operation_id=entry["operation_id"],
            scopes=None if scopes is None else tuple(frozenset(alt) for alt in scopes),
            other_auth=tuple(entry["other_auth"]),
            servers=None if servers is None else tuple(servers),
        )


@dataclass(frozen=True, slots=True)
class _Template:
    operation: Operation
    segments: tuple[str | None, ...]
    """Literal segments as they are; None where a `{param}` stands."""

    def fits(self, segments: Sequence[str]) -> bool:
        for literal, part in zip(self.segments, segments, strict=True):
            if literal is None:
                if not part or unquote(part) in (".", ".."):
                    return False
            elif part != literal:
                return False
        return True

    def specificity(self) -> tuple[bool, ...]:
        """Sorts first where literal segments come first."""
        return tuple(literal is None for literal in self.segments)


_Key = tuple[int, tuple[str | None, ...]]


def _key(segments: Sequence[str | None]) -> _Key:
    """Templates are grouped by length and first three segments (`api`, `v2`, `incidents`)."""
    return len(segments), tuple(segments[:3])


class OperationTable:
    def __init__(self, operations: Iterable[Operation]) -> None:
        self.operations = tuple(operations)
        groups: dict[_Key, list[_Template]] = {}
        for operation in self.operations:
            segments = tuple(
                None if part.startswith("{") else part for part in operation.path.split("/")[1:]
            )
            groups.setdefault(_key(segments), []).append(_Template(operation, segments))
        assert all(None not in head for _, head in groups), "a template starts with a {param}"
        self._groups = {
            key: sorted(templates, key=_Template.specificity) for key, templates in groups.items()
        }

    def match(self, method: str, path: str) -> Operation:
        """The operation `method path` (the path as sent, percent-encoded) calls; raises
        `UnknownOperation` naming the path (and the methods it has, if any)."""
        segments = path.split("/")[1:] if path.startswith("/") else []
        fitting = [t for t in self._groups.get(_key(segments), []) if t.fits(segments)]
        if not fitting:
            raise UnknownOperation(
                f"no operation of Datadog's v1 or v2 API has the path {path!r}; "
                "nothing was sent to Datadog",
                path=path,
            )
        for template in fitting:
            if template.operation.method == method:
                return template.operation
        nearest = fitting[0].operation.path
        methods = sorted(t.operation.method for t in fitting if t.operation.path == nearest)
        raise UnknownOperation(
            f"Datadog's API has no {method} {nearest} (it has {', '.join(methods)}); "
            "nothing was sent to Datadog",
            path=path,
        )


@cache
def operation_table() -> OperationTable:
    """The shipped table, read once."""
    raw = resources.files(__package__).joinpath(TABLE_FILE).read_text()
    return OperationTable(Operation.of(entry) for entry in json.loads(raw)["operations"])
