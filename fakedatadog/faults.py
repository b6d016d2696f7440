"""Fault injection: which queued fault, if any, a request consumes, and which org it concerns."""

from __future__ import annotations

from collections.abc import Mapping

from fakedatadog.state import EmulatorState, Fault


def take_fault(
    state: EmulatorState, host: str, path: str, org_of_request: str | None
) -> Fault | None:
    """Consume one use of the oldest fault matching the request, dropping it when used up.

    A fault matches when each of its `host`, `path` and `dd_oid` is unset or equal to the
    request's. Consumption happens on arrival, so concurrent requests each take their own use.
    """
    for fault in state.faults:
        if (
            fault.host in (None, host)
            and fault.path in (None, path)
            and fault.dd_oid in (None, org_of_request)
        ):
            fault.remaining -= 1
            if fault.remaining <= 0:
                state.faults.remove(fault)
            return fault
    return None


def org_of_request(
    state: EmulatorState, headers: Mapping[str, str], params: Mapping[str, str]
) -> str | None:
    """The dd_oid a request acts for, from the first credential in it the emulator knows.

    Looks at `Authorization: Bearer`, `DD-API-KEY`, then the `code`, `refresh_token`, `token`
    and `dd_oid` parameters (query or body). Expired and revoked credentials still count.
    `headers` must have lower-case names.
    """
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and bearer in state.access_tokens:
        return state.access_tokens[bearer].grant.org.dd_oid
    api_key = state.api_keys.get(headers.get("dd-api-key", ""))
    if api_key is not None:
        return api_key.org.dd_oid
    if (code := state.codes.get(params.get("code", ""))) is not None:
        return code.org.dd_oid
    for name in ("refresh_token", "token"):
        value = params.get(name, "")
        token = state.refresh_tokens.get(value) or state.access_tokens.get(value)
        if token is not None:
            return token.grant.org.dd_oid
    return params.get("dd_oid")
