"""The credential door: the only code that opens a connection's secrets (and seals any stored
secret, the onboarding flows' PKCE verifiers too), refreshes its token, builds Datadog's auth
headers and judges what Datadog's answers say about credentials.

The rules it applies:

- The token endpoint judges whether a grant is alive: `invalid_grant` (or another refusal of
  the grant) makes the connection `reauth_required` at once, after one call. `invalid_client`
  (or a 401) means the partner's client secret is wrong or rotated: an operator problem, so no
  connection is blamed (a metric, a log line and a `client.credentials_refused` webhook event
  say so); the refresh is retried on the schedule like an outage.
- A call whose scope the grant lacks is refused before any request (`MissingScope`); an
  operation Datadog accepts with one of several scope sets needs one set granted whole.
- A 401/403 on a call with the token is retried once after a refresh. A refusal after a
  *successful* refresh means "this operation is not permitted" (`OperationRefused`): that call
  fails, the connection's status never changes.
- A 403 on intake with the API key is judged by `/api/v1/validate`: an invalid key makes the
  connection `key_invalid` (its data is held); a valid one makes the refusal transient.

Refreshes of one org never race: a refresher claims the connection in its row (briefly under
the row lock), calls Datadog holding no database connection, then stores the answer; any other
refresher waits for the claim to end and finds the fresh token. Failed attempts walk
`DDBRIDGE_REFRESH_RETRY_DELAYS` with jitter; the count and the next attempt live in PostgreSQL,
so they survive Redis being lost.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import case, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from service import connections as conns
from service import webhooks
from service.clients import ClientsUnreadable
from service.crypto import KeyRing, KeyRingError
from service.datadog.client import TokenGrant
from service.datadog.errors import (
    DatadogError,
    DatadogRejected,
    DatadogUnauthorized,
    DatadogUnavailable,
)
from service.errors import ServiceError
from service.metrics import CREDENTIAL_FAILURES, TOKEN_REFRESHES
from service.models import Connection, ConnectionStatus, OAuthFlow, utcnow
from service.resources import Resources
from service.signals import SPECS, Credential, Signal
from service.sites import Site

log = logging.getLogger(__name__)

REFRESHABLE = (ConnectionStatus.ACTIVE, ConnectionStatus.KEY_INVALID, ConnectionStatus.PENDING)
RETRY_JITTER = 0.2
"""Each retry of a refresh comes within ±this fraction of its step of
`DDBRIDGE_REFRESH_RETRY_DELAYS`, so a fleet does not retry in step."""
CLAIM_POLL_SECONDS = 0.1
"""How often a refresh waiting for another process's claim looks at the row again."""
SHORT_PAUSE_SECONDS = 0.15
"""A refresh that may call this soon waits in place rather than being rung again (it covers
`TOKEN_CALL_GUARD`, the end of each second closed to token calls)."""
CLIENT_REFUSAL_REPEAT = timedelta(hours=1)
"""While Datadog keeps refusing an OAuth client, its webhook event repeats this often at most."""
CLOCK_SKEW = timedelta(seconds=0.1)
"""A refresh this close to its retry time counts as on time: the time is set, and the job rung
for it runs, on machines whose clocks may differ a little (a job turned away by its own
schedule could not ring itself again under its own id, and would wait for the reconciler)."""
TOKEN_CALL_GUARD = timedelta(milliseconds=100)
"""The end of each second in which no token call is taken: a call's time from its claim to
its arrival at Datadog (commit, request) must fit in it for the per-site cap to hold there."""
EXPIRING = timedelta(seconds=60)
"""A token this close to expiry is refreshed before it is used."""
_SECRETS = ("access_token", "refresh_token", "api_key")
T = TypeVar("T")


class NotDeliverable(ServiceError):
    status_code = 409
    code = "connection_not_deliverable"


class MissingScope(ServiceError):
    """The grant lacks the scope the call needs; nothing was sent to Datadog."""

    status_code = 403
    code = "missing_scope"

    def __init__(
        self, domain: str, alternatives: Sequence[frozenset[str]], granted: set[str]
    ) -> None:
        missing = sorted(alternatives[0] - granted)
        if len(alternatives) == 1:
            detail = (
                f"the org did not grant the scope{'s' * (len(missing) > 1)} "
                f"{', '.join(map(repr, missing))}; nothing was sent to Datadog"
            )
            super().__init__(detail, scope=missing[0])
        else:
            ways = " or ".join("+".join(sorted(alternative)) for alternative in alternatives)
            super().__init__(
                f"the org granted none of the scopes this operation accepts ({ways}); "
                "nothing was sent to Datadog",
                scope=missing[0],
                any_of=[sorted(alternative) for alternative in alternatives],
            )
        self.scope = missing[0]
        self.domain = domain


class DatadogDown(ServiceError):
    """503: Datadog cannot answer now; `Retry-After` says when to ask again (5 s if unknown)."""

    status_code = 503
    code = "datadog_unavailable"

    def __init__(self, detail: str, *, retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        seconds = 5 if self.retry_after is None else max(1, math.ceil(self.retry_after))
        return {"Retry-After": str(seconds)}


class SecretUnreadable(ServiceError):
    """A stored secret does not open with the configured keys: the operator's to fix."""

    status_code = 503
    code = "secret_unreadable"


class GrantGone(Exception):
    """The connection cannot make Bearer calls until the org re-authorizes."""


class OperationRefused(Exception):
    """Datadog refused this call although the token was just refreshed: not permitted."""

    def __init__(self, refusal: DatadogUnauthorized) -> None:
        super().__init__(refusal.description)
        self.refusal = refusal


class RefreshResult(enum.StrEnum):
    REFRESHED = "refreshed"
    FRESH = "fresh"  # nothing to do: the token is valid for longer than the margin
    GONE = "gone"  # the grant is gone, or the connection cannot refresh
    DEFERRED = "deferred"  # Datadog could not answer, or refused the client: try at `retry_at`


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    result: RefreshResult
    expires_at: datetime | None = None
    retry_at: datetime | None = None
    bearer: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class OrgCredentials:
    """What one Datadog call for a connection needs, opened once and never re-read."""

    connection_id: uuid.UUID
    site: Site
    scopes: frozenset[str]
    api_key: str | None = field(repr=False)
    bearer: str | None = field(repr=False)

    def headers(self, credential: Credential) -> dict[str, str]:
        """The auth header of `credential` (API key or Bearer token)."""
        if credential is Credential.API_KEY:
            assert self.api_key is not None
            return api_key_header(self.api_key)
        assert self.bearer is not None
        return bearer_header(self.bearer)


def api_key_header(api_key: str) -> dict[str, str]:
    return {"DD-API-KEY": api_key}


def bearer_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Sealing. Each ciphertext is bound to its connection and column.


def _seal(keyring: KeyRing, connection: Connection, column: str, value: str) -> bytes:
    return _seal_for(keyring, connection.id, column, value)


def _seal_for(keyring: KeyRing, connection_id: uuid.UUID, column: str, value: str) -> bytes:
    return keyring.seal(value, context=f"connection:{connection_id}:{column}")


def _open(keyring: KeyRing, connection: Connection, column: str) -> str | None:
    """The plaintext of a secret column; `SecretUnreadable` when no configured key opens it."""
    sealed: bytes | None = getattr(connection, column)
    return _open_sealed(keyring, connection.id, connection.domain, column, sealed)


def _open_sealed(
    keyring: KeyRing, connection_id: uuid.UUID, domain: str, column: str, sealed: bytes | None
) -> str | None:
    """`_open` for a column's value read without its connection."""
    if sealed is None:
        return None
    try:
        return keyring.open(sealed, context=f"connection:{connection_id}:{column}")
    except KeyRingError as exc:
        CREDENTIAL_FAILURES.labels(kind="undecryptable", site=domain).inc()
        raise SecretUnreadable(
            f"the connection's stored {column} does not open with DDBRIDGE_ENCRYPTION_KEYS "
            f"({exc}); restore the key that sealed it",
            connection_id=str(connection_id),
        ) from exc


async def _note_unreadable(res: Resources, connection_id: uuid.UUID, exc: SecretUnreadable) -> None:
    """Show an unreadable secret on the connection (its status stays: the org is fine)."""
    async with res.sessionmaker() as session, session.begin():
        connection = await conns.lock(session, connection_id)
        if connection is not None:
            conns.transition(session, connection, connection.status, exc.detail)
    log.error("connection %s: %s", connection_id, exc.detail)


def store_grant(keyring: KeyRing, connection: Connection, grant: TokenGrant) -> None:
    """Store a token answer on `connection` (see `_grant_columns`)."""
    for column, value in _grant_columns(keyring, connection.id, grant).items():
        setattr(connection, column, value)


def _grant_columns(
    keyring: KeyRing, connection_id: uuid.UUID, grant: TokenGrant
) -> dict[str, object]:
    """The columns a token answer sets: the new access token and, if sent, the new refresh
    token and scopes; the retry schedule starts over.

    Datadog may or may not invalidate the old refresh token, so the newest one is always kept
    and the old one survives only when the answer carried none.
    """
    columns: dict[str, object] = {
        "access_token": _seal_for(keyring, connection_id, "access_token", grant.access_token),
        "access_token_expires_at": utcnow() + timedelta(seconds=grant.expires_in),
        "refresh_failures": 0,
        "refresh_retry_at": None,
    }
    if grant.refresh_token is not None:
        columns["refresh_token"] = _seal_for(
            keyring, connection_id, "refresh_token", grant.refresh_token
        )
    if grant.scopes:
        columns["scopes"] = grant.scopes
    return columns


def seal_verifier(keyring: KeyRing, flow: OAuthFlow, verifier: str) -> None:
    """Keep an onboarding flow's PKCE verifier sealed until its callback."""
    flow.code_verifier = keyring.seal(verifier, context=f"flow:{flow.id}:code_verifier")


def open_verifier(keyring: KeyRing, flow: OAuthFlow) -> str:
    """The flow's PKCE verifier; `KeyRingError` if no configured key opens it."""
    return keyring.open(flow.code_verifier or b"", context=f"flow:{flow.id}:code_verifier")


def reseal_verifier(keyring: KeyRing, flow: OAuthFlow) -> int:
    """Re-seal the flow's verifier under the ring's first key; 1 if it was under another."""
    if flow.code_verifier is None or keyring.is_current(flow.code_verifier):
        return 0
    seal_verifier(keyring, flow, open_verifier(keyring, flow))
    return 1


def store_api_key(keyring: KeyRing, connection: Connection, api_key: str | None) -> None:
    connection.api_key = None if api_key is None else _seal(keyring, connection, "api_key", api_key)


def erase(connection: Connection) -> None:
    connection.access_token = None
    connection.refresh_token = None
    connection.api_key = None
    connection.access_token_expires_at = None


def reseal(keyring: KeyRing, connection: Connection) -> int:
    """Re-seal every secret of the connection not under the ring's first key; how many.

    A secret no key opens is left as it is (`ddbridge keys status` shows its missing key).
    """
    resealed = 0
    for column in _SECRETS:
        sealed: bytes | None = getattr(connection, column)
        if sealed is None or keyring.is_current(sealed):
            continue
        try:
            value = _open(keyring, connection, column)
        except SecretUnreadable:
            continue
        assert value is not None
        setattr(connection, column, _seal(keyring, connection, column, value))
        resealed += 1
    return resealed


# Judging whether a connection may make a call, before any request.


class Standing(Protocol):
    """What these judgements read of a connection: a `Connection`, or a row of its columns
    (the send path reads only these)."""

    @property
    def status(self) -> str: ...
    @property
    def status_reason(self) -> str | None: ...
    @property
    def scopes(self) -> list[str]: ...
    @property
    def domain(self) -> str: ...
    @property
    def api_key(self) -> bytes | None: ...
    @property
    def refresh_token(self) -> bytes | None: ...


def check_deliverable(connection: Standing, signal: Signal, site: Site) -> None:
    """409 unless the connection can deliver this signal (with its status in the answer);
    403 `missing_scope` if the signal needs a scope the grant lacks."""
    spec = SPECS[signal]
    reason = None
    if (missing := spec.missing_on(site)) is not None:
        reason = missing
    elif connection.status != ConnectionStatus.ACTIVE:
        reason = f"the connection is {connection.status}"
    elif spec.credential is Credential.API_KEY and connection.api_key is None:
        reason = "the connection has no API key"
    elif spec.credential is Credential.BEARER and connection.refresh_token is None:
        reason = "the connection has no token"
    if reason is not None:
        raise NotDeliverable(
            f"{reason}; nothing was accepted",
            status=connection.status,
            status_reason=connection.status_reason,
        )
    if spec.scope is not None:
        require_scope(connection, spec.scope)


def require_scope(connection: Standing, scope: str) -> None:
    require_scopes(connection, [frozenset({scope})])


def require_scopes(connection: Standing, alternatives: Sequence[frozenset[str]]) -> None:
    """`MissingScope` unless the grant holds every scope of at least one alternative; the
    answer names the first missing scope (`scope`) and, when there are several ways, all."""
    granted = set(connection.scopes)
    if not any(alternative <= granted for alternative in alternatives):
        raise MissingScope(connection.domain, alternatives, granted)


async def _noting_unreadable(res: Resources, connection_id: uuid.UUID, opening: Awaitable[T]) -> T:
    """What `opening` gives; a secret no configured key opens is shown on the connection
    before `SecretUnreadable` goes on up."""
    try:
        return await opening
    except SecretUnreadable as exc:
        await _note_unreadable(res, connection_id, exc)
        raise


async def open_for_signal(
    res: Resources, connection_id: uuid.UUID, signal: Signal
) -> OrgCredentials:
    """The credential delivering `signal` needs; raises `NotDeliverable`, `MissingScope`
    (nothing is sent; delivery refuses the items one by one), `GrantGone` or
    `SecretUnreadable` (also shown on the connection)."""
    return await _noting_unreadable(
        res, connection_id, _open_for_signal(res, connection_id, signal)
    )


async def _open_for_signal(
    res: Resources, connection_id: uuid.UUID, signal: Signal
) -> OrgCredentials:
    async with res.autocommit() as session:
        connection = await conns.get_connection(session, connection_id)
    site = res.sites.by_domain(connection.domain)
    check_deliverable(connection, signal, site)
    if SPECS[signal].credential is Credential.API_KEY:
        return _credentials(connection, site, api_key=_open(res.keyring, connection, "api_key"))
    return await _with_fresh_bearer(res, connection, site)


async def open_for_scope(res: Resources, connection_id: uuid.UUID, scope: str) -> OrgCredentials:
    """A fresh token for a call needing `scope`; raises `NotDeliverable`, `MissingScope`,
    `GrantGone` or `SecretUnreadable` (also shown on the connection)."""
    return await open_for_scopes(res, connection_id, [frozenset({scope})])


async def open_for_scopes(
    res: Resources, connection_id: uuid.UUID, alternatives: Sequence[frozenset[str]]
) -> OrgCredentials:
    """A fresh token for a call needing every scope of one of `alternatives`; raises as
    `open_for_scope` does."""
    return await _noting_unreadable(
        res, connection_id, _open_for_scopes(res, connection_id, alternatives)
    )


async def _open_for_scopes(
    res: Resources, connection_id: uuid.UUID, alternatives: Sequence[frozenset[str]]
) -> OrgCredentials:
    async with res.autocommit() as session:
        connection = await conns.get_connection(session, connection_id)
    if connection.status != ConnectionStatus.ACTIVE or connection.refresh_token is None:
        raise NotDeliverable(
            f"the connection is {connection.status}; nothing was sent to Datadog",
            status=connection.status,
            status_reason=connection.status_reason,
        )
    require_scopes(connection, alternatives)
    return await _with_fresh_bearer(res, connection, res.sites.by_domain(connection.domain))


async def _with_fresh_bearer(res: Resources, connection: Connection, site: Site) -> OrgCredentials:
    expires = connection.access_token_expires_at
    bearer = _open(res.keyring, connection, "access_token")
    if bearer is None or expires is None or expires - utcnow() < EXPIRING:
        bearer = await _refreshed_bearer(res, connection.id, margin=EXPIRING)
    return _credentials(connection, site, bearer=bearer)


def _credentials(
    connection: Connection, site: Site, *, api_key: str | None = None, bearer: str | None = None
) -> OrgCredentials:
    return OrgCredentials(connection.id, site, frozenset(connection.scopes), api_key, bearer)


async def call_with_bearer(
    res: Resources, creds: OrgCredentials, call: Callable[[dict[str, str]], Awaitable[T]]
) -> T:
    """Make `call` with the token; on 401/403 refresh once and retry once.

    Raises `OperationRefused` when Datadog refuses again after a successful refresh (the
    connection's status is untouched), `GrantGone` when the refresh finds the grant gone,
    and `DatadogUnavailable` when Datadog cannot answer.
    """
    try:
        return await call(creds.headers(Credential.BEARER))
    except DatadogUnauthorized:
        pass
    bearer = await _refreshed_bearer(res, creds.connection_id, margin=timedelta(days=366))
    try:
        return await call(bearer_header(bearer))
    except DatadogUnauthorized as refusal:
        log.warning(
            "connection %s: Datadog refused a call after a refresh (%s): not permitted",
            creds.connection_id,
            refusal.status,
        )
        raise OperationRefused(refusal) from refusal


async def _refreshed_bearer(res: Resources, connection_id: uuid.UUID, *, margin: timedelta) -> str:
    outcome = await refresh(res, connection_id, margin=margin)
    if outcome.result is RefreshResult.DEFERRED:
        wait = None if outcome.retry_at is None else (outcome.retry_at - utcnow()).total_seconds()
        raise DatadogUnavailable(
            "the token could not be refreshed now; try again later",
            retry_after=None if wait is None else max(0.0, wait),
        )
    if outcome.bearer is None:
        raise GrantGone(f"connection {connection_id} has no usable grant")
    return outcome.bearer


async def judge_api_key_refusal(res: Resources, creds: OrgCredentials, exc: DatadogError) -> None:
    """A 403 on intake: `/api/v1/validate` decides. Raises `GrantGone` after marking the
    connection `key_invalid`, or `DatadogUnavailable` if the refusal is transient."""
    assert creds.api_key is not None
    valid = await res.datadog.validate_api_key(creds.site, api_key_header(creds.api_key))
    if valid:
        raise DatadogUnavailable(
            f"intake refused a valid key: {exc.description}", status=exc.status
        )
    async with res.sessionmaker() as session, session.begin():
        connection = await conns.lock(session, creds.connection_id)
        assert connection is not None, "connections are never deleted"
        conns.transition(
            session,
            connection,
            ConnectionStatus.KEY_INVALID,
            "Datadog refused the API key (403 on intake, confirmed by /api/v1/validate)",
        )
    log.warning("connection %s is key_invalid", creds.connection_id)
    raise GrantGone(f"connection {creds.connection_id} has an invalid API key")


async def key_validates(res: Resources, creds: OrgCredentials) -> bool:
    """Whether Datadog accepts the connection's API key (`DatadogError` if it cannot say)."""
    assert creds.api_key is not None
    return await res.datadog.validate_api_key(creds.site, api_key_header(creds.api_key))


async def stored_key_validates(res: Resources, connection: Connection, site: Site) -> bool:
    """Whether the connection holds an API key Datadog still accepts (kept when unsure)."""
    stored = _open(res.keyring, connection, "api_key")
    if stored is None:
        return False
    try:
        return await res.datadog.validate_api_key(site, api_key_header(stored))
    except DatadogError:
        return True


# Refreshing.


async def due_for_refresh(
    session: AsyncSession, margin: timedelta, *, limit_per_site: int
) -> list[tuple[uuid.UUID, int]]:
    """Connections whose token expires within `margin` and whose retry time has come, soonest
    first, at most `limit_per_site` per site: (id, place within its site)."""
    now = utcnow()
    place = (
        func.row_number()
        .over(partition_by=Connection.domain, order_by=Connection.access_token_expires_at)
        .label("place")
    )
    due = (
        select(Connection.id, place)
        .where(
            Connection.status.in_(REFRESHABLE),
            Connection.refresh_token.is_not(None),
            Connection.access_token_expires_at < now + margin,
            or_(Connection.refresh_retry_at.is_(None), Connection.refresh_retry_at <= now),
        )
        .subquery()
    )
    rows = await session.execute(select(due.c.id, due.c.place).where(due.c.place <= limit_per_site))
    return [(connection_id, int(position) - 1) for connection_id, position in rows.all()]


def retry_delay(delays: Sequence[float], failures: int) -> float:
    """Seconds before the next refresh attempt after `failures` failed ones, with jitter."""
    base = delays[min(failures, len(delays)) - 1]
    return base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)  # noqa: S311 (jitter)


async def refresh(
    res: Resources, connection_id: uuid.UUID, *, margin: timedelta, wait: bool = True
) -> RefreshOutcome:
    """Refresh the access token if it expires within `margin`, under the row lock.

    Never raises for Datadog's answers: a refused grant is `GONE` (and `reauth_required`), an
    outage or a refused client is `DEFERRED` until `retry_at` (stored on the connection).
    Until that time every refresh, whoever asks (a delivery, a read, a stray doorbell), answers
    `DEFERRED` again without calling Datadog: the schedule holds for all of them.
    Raises `SecretUnreadable` (shown on the connection) when the stored token does not open.
    When another process is refreshing the connection, or the site's token calls of this
    second are used up, it waits (`wait`) or answers `DEFERRED` until then.
    """
    return await _noting_unreadable(
        res, connection_id, _refresh(res, connection_id, margin=margin, wait=wait)
    )


@dataclass(frozen=True, slots=True)
class _Claim:
    """This process's right to call the token endpoint for one connection, until `until`."""

    connection_id: uuid.UUID
    site: Site
    refresh_token: str = field(repr=False)
    until: datetime


async def _refresh(
    res: Resources, connection_id: uuid.UUID, *, margin: timedelta, wait: bool
) -> RefreshOutcome:
    """Claim, call Datadog with no database connection held, then store.

    A connection claimed by another process (the API or any worker) is waited for, polling
    its row, until that claim ends: its answer is then ours (single flight). A claim lasts the
    Datadog timeout plus a margin, so a crashed claimer delays the next refresh by that much.
    """
    claim_length = timedelta(seconds=res.settings.datadog_timeout_seconds + 5)
    deadline = utcnow() + claim_length * 2
    while True:
        claimed = await _claim(res, connection_id, margin, claim_length)
        if not isinstance(claimed, datetime):
            break
        pause = (claimed - utcnow()).total_seconds()
        if pause <= SHORT_PAUSE_SECONDS:  # e.g. the end of a second closed to token calls
            await asyncio.sleep(max(pause, 0))
            continue
        if not wait or utcnow() > deadline:
            # A random point of the next open second: refused calls do not return at once.
            spread = timedelta(seconds=random.uniform(0, 1 - TOKEN_CALL_GUARD.total_seconds()))  # noqa: S311
            return RefreshOutcome(RefreshResult.DEFERRED, retry_at=claimed + spread)
        await asyncio.sleep(CLAIM_POLL_SECONDS)
    if isinstance(claimed, RefreshOutcome):
        return claimed
    try:
        client = res.clients.client_for(claimed.site.domain)
    except ClientsUnreadable as exc:
        return await _store(res, claimed, exc, None)
    try:
        grant = await res.datadog.refresh(claimed.site, client, claimed.refresh_token)
    except DatadogError as exc:
        return await _store(res, claimed, exc, client.client_id)
    return await _store(res, claimed, grant, client.client_id)


async def _claim(
    res: Resources, connection_id: uuid.UUID, margin: timedelta, length: timedelta
) -> RefreshOutcome | _Claim | datetime:
    """An outcome that needs no call, a claim to make the call, or when another process's
    claim (or the site's full second of token calls) ends.

    The common case, a due connection nobody is refreshing and a token call to spare, is one
    statement in autocommit (`_CLAIM`); whenever that takes nothing, the row lock decides and
    says why (`_claim_under_lock`).
    """
    now = utcnow()
    until = now + length
    async with res.autocommit() as session:
        row = (
            await session.execute(
                _CLAIM,
                {
                    "id": connection_id,
                    "now": now,
                    "fresh_until": now + margin,
                    "on_time": now + CLOCK_SKEW,
                    "until": until,
                    **_budget_parameters(res.settings.refresh_rate_per_site),
                },
            )
        ).one_or_none()
    if row is None:
        return await _claim_under_lock(res, connection_id, margin, length)
    refresh_token = _open_sealed(
        res.keyring, connection_id, row.domain, "refresh_token", row.sealed
    )
    assert refresh_token is not None
    return _Claim(connection_id, res.sites.by_domain(row.domain), refresh_token, until)


async def _claim_under_lock(
    res: Resources, connection_id: uuid.UUID, margin: timedelta, length: timedelta
) -> RefreshOutcome | _Claim | datetime:
    """`_claim`, deciding under the row lock, briefly."""
    async with res.sessionmaker() as session, session.begin():
        connection = await conns.lock(session, connection_id)
        answer = _answer_without_a_call(res, connection, margin)
        if answer is not None:
            return answer
        assert connection is not None
        refresh_token = _open(res.keyring, connection, "refresh_token")
        assert refresh_token is not None
        taken = await session.scalar(
            _TAKE_TOKEN_CALL,
            {"domain": connection.domain, **_budget_parameters(res.settings.refresh_rate_per_site)},
        )
        if taken is None:
            return utcnow().replace(microsecond=0) + timedelta(seconds=1)
        connection.refresh_claimed_until = utcnow() + length
        site = res.sites.by_domain(connection.domain)
        return _Claim(connection.id, site, refresh_token, connection.refresh_claimed_until)


def _answer_without_a_call(
    res: Resources, connection: Connection | None, margin: timedelta
) -> RefreshOutcome | datetime | None:
    """`GONE`, `FRESH`, `DEFERRED` until the stored retry time, or when another process's
    claim ends; None when the token endpoint must be called."""
    if (
        connection is None
        or connection.status not in REFRESHABLE
        or connection.refresh_token is None
    ):
        return RefreshOutcome(RefreshResult.GONE)
    now = utcnow()
    expires_at = connection.access_token_expires_at
    if expires_at is not None and expires_at - now > margin:
        bearer = _open(res.keyring, connection, "access_token")
        return RefreshOutcome(RefreshResult.FRESH, expires_at, bearer=bearer)
    retry_at = connection.refresh_retry_at
    if retry_at is not None and retry_at > now + CLOCK_SKEW:
        return RefreshOutcome(RefreshResult.DEFERRED, expires_at, retry_at)
    if connection.refresh_claimed_until is not None and connection.refresh_claimed_until > now:
        return connection.refresh_claimed_until
    return None


# The claim's SQL, built once from constants (no value is ever formatted into it).
_SECOND = "date_trunc('second', clock_timestamp())"
_TAKE_FROM_BUDGET = (
    "INSERT INTO token_call_budgets AS b (domain, second, used) {rows}"
    " ON CONFLICT (domain) DO UPDATE SET second = {second},"
    " used = CASE WHEN b.second = {second} THEN b.used + 1 ELSE 1 END"
    " WHERE clock_timestamp() - {second} < CAST(:open_part AS interval)"
    " AND (b.second < {second} OR b.used < CAST(:per_second AS integer))"
    " RETURNING b.domain"
)
"""Take one of a site's token calls of this second (a row back), or none if none is left.

Two things keep Datadog from seeing more than `per_second` in any second of arrival: the
second is the database clock's at the moment the row is updated (one clock for every
process, read after waiting for the row, so a late statement never turns the row back to an
older second), and the last `TOKEN_CALL_GUARD` of each second takes no call, so a call taken
late in a second still arrives within it. The row stays locked until the taking commits, so
every process counts against one row."""
_NEEDS_A_CALL = (
    "status IN ({statuses}) AND refresh_token IS NOT NULL"
    " AND (access_token_expires_at IS NULL"
    " OR access_token_expires_at <= CAST(:fresh_until AS timestamptz))"
    " AND (refresh_retry_at IS NULL OR refresh_retry_at <= CAST(:on_time AS timestamptz))"
    " AND (refresh_claimed_until IS NULL OR refresh_claimed_until <= CAST(:now AS timestamptz))"
).format(statuses=", ".join(f"'{status.value}'" for status in REFRESHABLE))
"""`_answer_without_a_call`'s None case, as SQL: the token endpoint must be called."""
_TAKE_TOKEN_CALL = text(
    _TAKE_FROM_BUDGET.format(
        rows=f"VALUES (CAST(:domain AS varchar), {_SECOND}, 1)",
        second=_SECOND,
    )
)
_CLAIM = text(
    (  # noqa: S608 (constants only)
        "WITH due AS (SELECT domain FROM connections WHERE id = CAST(:id AS uuid) AND {due}),"
        " taken AS ({take})"
        " UPDATE connections SET refresh_claimed_until = CAST(:until AS timestamptz),"
        " updated_at = CAST(:now AS timestamptz)"
        " WHERE id = CAST(:id AS uuid) AND EXISTS (SELECT FROM taken) AND {due}"
        " RETURNING domain, refresh_token AS sealed"
    ).format(
        due=_NEEDS_A_CALL,
        take=_TAKE_FROM_BUDGET.format(
            rows=f"SELECT domain, {_SECOND}, 1 FROM due",  # noqa: S608 (constants only)
            second=_SECOND,
        ),
    )
)
"""Claim a due connection nobody is refreshing, with one of its site's token calls of this
second. The UPDATE checks the row again once it holds its lock, so of two processes claiming
at once one wins; the other's token call goes unused (the cap is never exceeded, only
under-used) and it falls back to the row lock, which finds the winner's claim."""


def _budget_parameters(per_second: int) -> dict[str, object]:
    return {"per_second": per_second, "open_part": timedelta(seconds=1) - TOKEN_CALL_GUARD}


async def _store(
    res: Resources,
    claim: _Claim,
    answer: TokenGrant | DatadogError | ClientsUnreadable,
    client_id: str | None,
) -> RefreshOutcome:
    """Record Datadog's answer (to the call made with `client_id`), or why no call could be
    made, under the row lock and end the claim.

    A grant is stored even if the claim lapsed meanwhile: it is the newest one Datadog issued.
    """
    if isinstance(answer, TokenGrant):
        return await _store_grant(res, claim, answer)
    async with res.sessionmaker() as session, session.begin():
        connection = await conns.lock(session, claim.connection_id)
        if connection is None:
            return RefreshOutcome(RefreshResult.GONE)
        if connection.refresh_claimed_until == claim.until:
            connection.refresh_claimed_until = None
        delays = res.settings.refresh_retry_delays
        if isinstance(answer, ClientsUnreadable):
            _client_unusable(claim.site, answer)
            return _defer(connection, delays, "client_unreadable", answer.detail)
        if not isinstance(answer, DatadogRejected):
            return _defer(connection, delays, "unavailable", answer.description)
        if answer.error == "invalid_client" or answer.status == 401:
            assert client_id is not None
            await _client_refused(session, claim.site, client_id, answer)
            return _defer(connection, delays, "invalid_client", answer.description)
        return _grant_gone(session, connection, answer)


async def _store_grant(res: Resources, claim: _Claim, grant: TokenGrant) -> RefreshOutcome:
    """Store a refresh's grant and end the claim: one statement, in autocommit (the hot path
    of a fleet's refreshes)."""
    ours = Connection.refresh_claimed_until == claim.until
    statement = (
        update(Connection)
        .where(Connection.id == claim.connection_id)
        .values(
            **_grant_columns(res.keyring, claim.connection_id, grant),
            refresh_claimed_until=case((ours, None), else_=Connection.refresh_claimed_until),
        )
        .returning(Connection.access_token_expires_at)
    )
    async with res.autocommit() as session:
        expires_at = await session.scalar(statement)
    if expires_at is None:
        return RefreshOutcome(RefreshResult.GONE)
    TOKEN_REFRESHES.labels(result=RefreshResult.REFRESHED).inc()
    return RefreshOutcome(RefreshResult.REFRESHED, expires_at, bearer=grant.access_token)


def _client_unusable(site: Site, exc: ClientsUnreadable) -> None:
    """The client-secret file cannot be used: the operator's to fix; no connection is blamed
    and the refresh is retried on the schedule (reading the file again)."""
    CREDENTIAL_FAILURES.labels(kind="client_secret_unreadable", site=site.domain).inc()
    log.error("no OAuth client for %s: %s; no connection is blamed", site.domain, exc.detail)


async def _client_refused(
    session: AsyncSession, site: Site, client_id: str, exc: DatadogRejected
) -> None:
    """The partner's client credentials were refused: the operator's problem, not the org's.

    Each refusal counts in the metric and the log; the operator's webhook hears of it at most
    once per `CLIENT_REFUSAL_REPEAT` per site and client, however many connections are due.
    """
    CREDENTIAL_FAILURES.labels(kind="invalid_client", site=site.domain).inc()
    error = exc.error or str(exc.status)
    log.error(
        "Datadog refused the OAuth client %s on %s (%s): check the client secret "
        "(DDBRIDGE_CLIENT_SECRET or DDBRIDGE_CLIENTS); no connection is blamed",
        client_id,
        site.domain,
        error,
    )
    await webhooks.record_unless_recent(
        session,
        webhooks.EventType.CLIENT_CREDENTIALS_REFUSED,
        {"domain": site.domain, "client_id": client_id, "error": error, "detail": exc.description},
        same=("domain", "client_id"),
        within=CLIENT_REFUSAL_REPEAT,
    )


def _defer(
    connection: Connection, delays: Sequence[float], cause: str, description: str
) -> RefreshOutcome:
    connection.refresh_failures += 1
    retry_at = utcnow() + timedelta(seconds=retry_delay(delays, connection.refresh_failures))
    connection.refresh_retry_at = retry_at
    TOKEN_REFRESHES.labels(result=cause).inc()
    log.warning(
        "refresh of %s failed %d time(s) (%s: %s); next at %s",
        connection.id,
        connection.refresh_failures,
        cause,
        description,
        retry_at.isoformat(timespec="seconds"),
    )
    return RefreshOutcome(RefreshResult.DEFERRED, connection.access_token_expires_at, retry_at)


def _grant_gone(
    session: AsyncSession, connection: Connection, exc: DatadogRejected
) -> RefreshOutcome:
    conns.transition(
        session,
        connection,
        ConnectionStatus.REAUTH_REQUIRED,
        f"token refresh refused ({exc.error or exc.status}: {exc.description}); "
        "the org must re-authorize",
    )
    TOKEN_REFRESHES.labels(result=RefreshResult.GONE).inc()
    log.warning("connection %s needs re-authorization: %s", connection.id, exc.error)
    return RefreshOutcome(RefreshResult.GONE)


async def disconnect(res: Resources, connection_id: uuid.UUID) -> Connection:
    """Revoke the grant at Datadog, erase every secret, and mark the connection disconnected.

    If Datadog cannot be reached, nothing changes and `DatadogDown` is raised, so the grant
    is never left alive at Datadog while forgotten here.
    """
    async with res.sessionmaker() as session, session.begin():
        connection = await conns.lock(session, connection_id)
        if connection is None:
            return await conns.get_connection(session, connection_id)
        token = _open(res.keyring, connection, "refresh_token") or _open(
            res.keyring, connection, "access_token"
        )
        reason = "disconnected by the partner; grant revoked at Datadog"
        if token is not None:
            site = res.sites.by_domain(connection.domain)
            try:
                await res.datadog.revoke(site, res.clients.client_for(site.domain), token)
            except DatadogUnavailable as exc:
                raise DatadogDown(
                    f"could not revoke at Datadog ({exc.description}); nothing changed, try again"
                ) from exc
            except DatadogError as exc:
                reason = (
                    f"disconnected by the partner; Datadog refused the revoke: {exc.description}"
                )
        erase(connection)
        conns.transition(session, connection, ConnectionStatus.DISCONNECTED, reason)
        return connection
