"""The emulator's in-memory world: orgs, OAuth clients, credentials, monitors, dashboards,
received telemetry, the request log and switches.

Concurrency: the server runs on one event loop and no method here awaits, so every operation
(a check followed by a change included) runs to completion before another request is served.
Anything that issues a secret goes through `EmulatorState.new_secret` or `remember_secret`, so
`secrets` lists every credential handed out since the last reset.
"""

from __future__ import annotations

import secrets as random
import time
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

from fakedatadog.intake.store import IntakeLog
from fakedatadog.sites import Site, SiteRegistry


@dataclass(frozen=True, slots=True)
class Org:
    """A Datadog organization; `dd_oid` is its UUID and natural key."""

    dd_oid: str
    name: str
    site: Site
    subdomain: str | None

    @property
    def app_host(self) -> str:
        """Where its users browse: `<subdomain>.<domain>` if it has one, else the site's."""
        if self.subdomain is None:
            return self.site.app_host
        return f"{self.subdomain}.{self.site.domain}"


@dataclass(frozen=True, slots=True)
class Client:
    """One registration of an OAuth client on one site; a client_id may exist on several."""

    client_id: str
    client_secret: str
    name: str
    site: Site
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    published: bool
    sandbox_org: str | None

    def admits(self, org: Org) -> bool:
        """Whether `org` may authorize it: anyone once published, else only the sandbox org."""
        return self.published or org.dd_oid == self.sandbox_org


@dataclass(slots=True)
class AuthCode:
    """A single-use authorization code, bound to everything the token call must repeat."""

    code: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    org: Org
    expires_at: float
    used: bool = False


@dataclass(slots=True)
class Grant:
    """What one code exchange created: the org's consent to one client, with fixed scopes.
    `user_id` names the (unmodelled) user who approved it, as an API key's `created_by`."""

    client_id: str
    org: Org
    scopes: tuple[str, ...]
    user_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    revoked: bool = False


@dataclass(slots=True)
class RefreshToken:
    token: str
    grant: Grant
    rotated: bool = False

    @property
    def active(self) -> bool:
        return not self.rotated and not self.grant.revoked


@dataclass(slots=True)
class AccessToken:
    token: str
    grant: Grant
    expires_at: float
    revoked: bool = False

    def active(self, now: float) -> bool:
        """Unexpired, and neither it nor its grant revoked."""
        return not self.revoked and not self.grant.revoked and now < self.expires_at


@dataclass(slots=True)
class ApiKey:
    """A marketplace API key; there is at most one unrevoked key per (org, client)."""

    key_id: str
    key: str
    org: Org
    client_id: str
    name: str
    created_at: datetime
    created_by: str
    revoked: bool = False


@dataclass(slots=True)
class RecordedRequest:
    """One request to a Datadog host; `status` is None until the answer starts."""

    method: str
    host: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    status: int | None = None
    at: float = field(default_factory=time.time)
    """When it arrived (Unix seconds): benchmarks measure Datadog-side rates with it."""


@dataclass(slots=True)
class InFlight:
    """Requests of one org to one path being answered now, and the most there ever were at
    once: a partition's single drainer sends one request at a time, so a peak above 1 means
    two senders drained the same (org, signal) together."""

    now: dict[tuple[str, str], int] = field(default_factory=dict)
    peak: dict[tuple[str, str], int] = field(default_factory=dict)

    def enter(self, key: tuple[str, str]) -> None:
        self.now[key] = self.now.get(key, 0) + 1
        self.peak[key] = max(self.peak.get(key, 0), self.now[key])

    def leave(self, key: tuple[str, str]) -> None:
        self.now[key] -= 1


@dataclass(slots=True)
class Fault:
    """Delays and optionally replaces the answer of the next `remaining` matching requests.

    With `reset`, the connection is broken after the delay instead of answering (see gateway).
    """

    host: str | None
    path: str | None
    dd_oid: str | None
    remaining: int
    status: int | None
    delay_seconds: float
    headers: dict[str, str]
    body: Any
    reset: bool = False


@dataclass(slots=True)
class Settings:
    """Switches changed through the control plane.

    `bench`: intake routes check host, credential, encoding and limits but skip model
    validation and store no items, only counters (and the request log keeps no bodies).
    """

    code_ttl_seconds: float = 300
    access_token_ttl_seconds: int = 3600
    rotate_refresh_tokens: bool = False
    bench: bool = False


@dataclass(frozen=True, slots=True)
class Monitor:
    """A monitor seeded through the control plane; `attributes` are the other fields given."""

    id: int
    org: Org
    name: str
    type: str
    query: str
    created: datetime
    attributes: dict[str, Any]


ConsentMode = Literal["page", "approve", "deny"]


@dataclass(slots=True)
class ConsentSwitch:
    """`page` shows the consent page; `approve`/`deny` answer GET authorize directly."""

    mode: ConsentMode = "page"
    dd_oid: str | None = None


@dataclass(slots=True)
class EmulatorState:
    """Everything the emulator knows. `registry` and `launch` (the settings the process started
    with) are configuration and survive `reset`."""

    registry: SiteRegistry
    launch: Settings = field(default_factory=Settings)
    orgs: dict[str, Org] = field(default_factory=dict)
    clients: dict[tuple[str, str], Client] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    monitors: list[Monitor] = field(default_factory=list)
    incidents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Created incidents per org, as CreateIncident answered them."""
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Posted v1 events per org, as CreateEvent answered them (none kept in bench mode)."""
    dashboards: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Seeded dashboards per org, as ListDashboards lists them."""
    intake: IntakeLog = field(default_factory=IntakeLog)
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: InFlight = field(default_factory=InFlight)
    faults: list[Fault] = field(default_factory=list)
    settings: Settings = field(init=False)
    consent: ConsentSwitch = field(default_factory=ConsentSwitch)
    secrets: dict[str, None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.settings = replace(self.launch)

    def reset(self) -> None:
        """Forget everything except configuration; settings return to the launch settings."""
        fresh = EmulatorState(self.registry, self.launch)
        for each in fields(self):
            setattr(self, each.name, getattr(fresh, each.name))

    def remember_secret(self, value: str) -> str:
        """Record a credential the emulator was configured with, and return it."""
        self.secrets[value] = None
        return value

    def new_secret(self, *, hex_chars: int | None = None) -> str:
        """A fresh random credential (URL-safe, or `hex_chars` lower-case hex), recorded."""
        value = random.token_hex(hex_chars // 2) if hex_chars else random.token_urlsafe(32)
        return self.remember_secret(value)

    def client(self, domain: str, client_id: str) -> Client | None:
        """The registration of `client_id` on the site named by `domain`, if any."""
        return self.clients.get((domain, client_id))

    def registrations(self, client_id: str) -> list[Client]:
        """Every site's registration of `client_id`, in registration order."""
        return [c for c in self.clients.values() if c.client_id == client_id]

    def active_access_token(self, token: str) -> AccessToken | None:
        """The access token if it is usable right now."""
        found = self.access_tokens.get(token)
        if found is None or not found.active(time.monotonic()):
            return None
        return found

    def active_api_key(self, key: str) -> ApiKey | None:
        """The API key if it exists and is not revoked."""
        found = self.api_keys.get(key)
        if found is None or found.revoked:
            return None
        return found
