"""Checking a connection's data flow the way Datadog's partner review asks: the token
refreshes, the API key validates, and each granted scope ddbridge uses works with a harmless
call. Every check goes through the credential door; none changes the connection's data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from service import credentials
from service.credentials import GrantGone, OperationRefused, RefreshResult
from service.datadog.errors import DatadogError
from service.errors import ServiceError
from service.resources import Resources
from service.signals import Signal

HARMLESS_READS = {
    "monitors_read": ("/api/v1/monitor", {"page_size": "1"}),
    "incident_read": ("/api/v2/incidents", {"page[size]": "1"}),
}
"""Scopes ddbridge uses that a read can prove, with the smallest such read."""
SCOPES_USED = {
    "api_keys_write": "creating the org's API key at onboarding",
    "monitors_read": "reading monitors",
    "incident_write": "sending incidents",
    "incident_read": "checking for an incident before sending it again",
}


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the table: `passed` is None when no harmless call can prove it."""

    name: str
    passed: bool | None
    detail: str


async def verify(res: Resources, connection_id: uuid.UUID) -> list[Check]:
    """Run every check; raises `NotFound` for an unknown connection."""
    checks = [await _token_refreshes(res, connection_id), await _key_validates(res, connection_id)]
    for scope, use in SCOPES_USED.items():
        checks.append(await _scope_works(res, connection_id, scope, use))
    return checks


async def _token_refreshes(res: Resources, connection_id: uuid.UUID) -> Check:
    name = "token refreshes"
    try:
        outcome = await credentials.refresh(res, connection_id, margin=timedelta(days=366))
    except ServiceError as exc:
        return Check(name, False, exc.detail)
    if outcome.result is RefreshResult.REFRESHED:
        return Check(name, True, "Datadog issued a new access token")
    if outcome.result is RefreshResult.DEFERRED:
        return Check(name, False, "Datadog could not refresh the token now (see the logs)")
    return Check(name, False, "the grant is gone or the connection cannot refresh")


async def _key_validates(res: Resources, connection_id: uuid.UUID) -> Check:
    name = "API key validates"
    try:
        creds = await credentials.open_for_signal(res, connection_id, Signal.METRICS)
        valid = await credentials.key_validates(res, creds)
    except ServiceError as exc:
        return Check(name, False, exc.detail)
    except DatadogError as exc:
        return Check(name, False, f"Datadog could not answer: {exc.description}")
    if valid:
        return Check(name, True, "/api/v1/validate accepts the key")
    return Check(name, False, "Datadog says the key is invalid (revoked in the org?)")


async def _scope_works(res: Resources, connection_id: uuid.UUID, scope: str, use: str) -> Check:
    name = f"scope {scope}"
    read = HARMLESS_READS.get(scope)
    try:
        creds = await credentials.open_for_scope(res, connection_id, scope)
        if read is None:
            return Check(name, None, f"granted; no harmless call proves {use}")
        path, params = read
        await credentials.call_with_bearer(
            res, creds, lambda auth: res.datadog.read(creds.site, path, auth, params)
        )
    except credentials.MissingScope:
        return Check(name, False, f"not granted: {use} will not work")
    except ServiceError as exc:
        return Check(name, False, exc.detail)
    except OperationRefused as refused:
        return Check(name, False, f"Datadog refused {path}: {refused.refusal.description}")
    except (GrantGone, DatadogError) as exc:
        return Check(name, False, str(exc))
    return Check(name, True, f"GET {path} answered")
