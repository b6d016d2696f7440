"""Configuration from the environment (prefix `DDBRIDGE_`), validated once at start-up.

Settings are read when a process starts (`load` in the CLI, the FastAPI lifespan or the arq
start-up), never at import time. Comma-separated lists are plain strings in the
environment; secrets are `SecretStr` so they never print. A setting that is missing or
wrong is `SettingsInvalid`: one line per problem naming the variable and the fix, never a
value (pydantic's own error shows the input, which would print secrets).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

from service.crypto import KeyRing, KeyRingError
from service.sites import SiteRegistry

PREFIX = "DDBRIDGE_"


class ClientCredentials(BaseModel):
    """One OAuth client as registered with Datadog on a site."""

    client_id: str = Field(min_length=1)
    client_secret: SecretStr


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]

SECRETS_DIR_VARIABLE = "DDBRIDGE_SECRETS_DIR"
"""A directory of files named after variables (`DDBRIDGE_ENCRYPTION_KEYS`, ...), each holding
that variable's value: a Kubernetes Secret mounted as a volume. The environment wins."""


def configured(variable: str) -> bool:
    """Whether `variable` (a `DDBRIDGE_...` name) is set in the environment or the secrets dir."""
    if os.environ.get(variable):
        return True
    directory = os.environ.get(SECRETS_DIR_VARIABLE)
    if not directory:
        return False
    return (Path(directory) / variable).is_file()


def asyncpg_url(url: str) -> str:
    """`url` with the asyncpg driver ddbridge uses: a plain `postgresql://` (or `postgres://`)
    URL, as cloud consoles and libpq write them, gains `+asyncpg`; another driver or database
    is refused."""
    scheme, separator, rest = url.partition("://")
    if scheme == "postgresql+asyncpg":
        return url
    if separator and scheme in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    if separator and scheme.startswith("postgresql+"):
        raise ValueError(
            f"ddbridge talks to PostgreSQL through asyncpg, not {scheme.partition('+')[2]}: "
            "write postgresql+asyncpg://... (or postgresql://...)"
        )
    raise ValueError(
        "must be a PostgreSQL URL: postgresql+asyncpg://user:password@host:5432/database"
    )


class Environment(BaseSettings):
    """Settings read from `DDBRIDGE_*` variables, with rules across them (`problems`)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    def problems(self) -> list[str]:
        """What these settings refuse together, one line each, naming the variables."""
        return []


class DatabaseSettings(Environment):
    """The part of the environment that migrations and read-only operator commands need."""

    database_url: str

    @field_validator("database_url")
    @classmethod
    def _with_asyncpg(cls, value: str) -> str:
        return asyncpg_url(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment, then the files of `DDBRIDGE_SECRETS_DIR` (read at start-up)."""
        directory = os.environ.get(SECRETS_DIR_VARIABLE)
        if directory:
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=directory)
        return init_settings, env_settings, dotenv_settings, file_secret_settings


class KeyRingSettings(DatabaseSettings):
    """The database and the encryption keys: what re-sealing secrets needs."""

    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(min_length=1)

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _keys_comma_separated(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("encryption_keys")
    @classmethod
    def _keys_are_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        try:
            KeyRing(key.get_secret_value() for key in value)
        except KeyRingError as exc:  # its messages never carry a key
            raise ValueError(str(exc)) from None
        return value

    def keyring(self) -> KeyRing:
        return KeyRing(key.get_secret_value() for key in self.encryption_keys)


Mode = Literal["production", "dev"]

MIN_TOKEN_LENGTH = 32
"""Shortest internal token production mode accepts: 32 characters of `token_urlsafe` carry
192 bits; a short token is guessable by whoever can reach the internal API."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class RunMode(Environment):
    """Only `DDBRIDGE_MODE`: what the run commands read before anything else exists."""

    mode: Mode = "production"


class Settings(KeyRingSettings):
    """Everything ddbridge reads from its environment.

    Production mode (the default) refuses what only a trial may use: internal tokens shorter
    than `MIN_TOKEN_LENGTH`, and plain-`http://` Datadog URL templates except to a loopback
    host (a TLS-originating sidecar, or the emulator in tests), since every call carries a
    secret; and it needs `SIGNIN_URL`, where `/oauth/onboarding` hands each customer over.
    `dev` mode allows the first two and stands its demo sign-in in for the third.
    """

    mode: Mode = "production"
    redis_url: str
    public_url: str = "http://127.0.0.1:8000"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    clients: dict[str, ClientCredentials] = {}
    client_secret_file: Path | None = None
    """A file holding the default client's secret, re-read when it changes (rotation)."""
    clients_file: Path | None = None
    """A file holding `CLIENTS` as JSON, re-read when it changes (rotation)."""
    redirect_uri: str | None = None
    internal_tokens: Annotated[list[SecretStr], NoDecode] = Field(min_length=1)
    datadog_url_template: str = "https://{host}"
    datadog_browser_url_template: str | None = None
    """Where browsers reach a Datadog host, when not where the service does (containers);
    defaults to `datadog_url_template`."""
    extra_sites: CommaList = []
    signin_url: str | None = None
    """The partner's sign-in page `/oauth/onboarding` hands the browser to (required in
    production mode; `dev` mode has a demo page)."""
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    """Signs webhook notifications (required with `webhook_url`)."""
    return_to_origins: CommaList = []
    """Origins `return_to` may point at, besides `public_url`'s own."""
    flow_ttl_seconds: int = Field(default=600, gt=0)
    """How long an authorization link and its `state` stay usable."""
    refresh_margin_seconds: int = Field(default=600, ge=0)
    """Access tokens are refreshed this long before they expire."""
    refresh_rate_per_site: int = Field(default=20, ge=1)
    """Most token calls all processes together make per second to one Datadog site."""
    refresh_reconcile_seconds: int = Field(default=60, ge=1, le=60)
    """How often the worker looks in PostgreSQL for due refreshes and retries (covering lost
    Redis jobs) and purges expired rows: at every multiple of this many seconds past the
    minute, so it divides 60."""
    refresh_retry_delays: Annotated[list[Annotated[float, Field(gt=0)]], NoDecode] = Field(
        default=[5, 15, 60, 300, 900], min_length=1
    )
    """Seconds before the 1st, 2nd, ... retry of a refresh Datadog could not answer (then the
    last again), each with ±20% jitter; comma-separated."""
    datadog_timeout_seconds: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Largest send body the internal API reads; larger ones get 413."""
    max_json_body_bytes: int = Field(default=64 * 1024, gt=0)
    """Largest body of the other internal routes (authorizations, replay); larger get 413."""
    max_passthrough_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    """Largest body the Datadog pass-through forwards; larger ones get 413 unsent."""
    body_budget_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    """Bytes of internal API bodies one API process reads and handles at once (declared
    sizes, or the route's limit when not declared); the rest wait their turn. This, not the
    number of concurrent sends, bounds the memory sends take (see the README)."""
    body_wait_seconds: float = Field(default=30.0, gt=0)
    """How long a body waits for room in `body_budget_bytes` before 503 with Retry-After."""
    backlog_cap_items: int = Field(default=1_000_000, gt=0)
    """Items one connection may have waiting; past it, sends get 429 with Retry-After."""
    backlog_retry_after_seconds: int = Field(default=5, gt=0)
    linger_seconds: float = Field(default=0.05, ge=0)
    """How long a partition waits after its first new rows, so batches fill."""
    lease_seconds: float = Field(default=30.0, gt=0)
    """A worker's claim on a partition; a crashed worker's claim lapses after this."""
    drain_budget_seconds: float = Field(default=2.0, gt=0)
    """How long one job drains a partition before yielding to others (fairness)."""
    worker_metrics_port: int | None = None
    """Serve the worker's Prometheus metrics and `/healthz` on this port (the API serves its
    own)."""
    worker_metrics_host: str = "127.0.0.1"
    """The address the worker's port listens on (`0.0.0.0` in a container, for probes)."""
    shutdown_drain_seconds: float = Field(default=0.0, ge=0)
    """After SIGTERM, how long an API process keeps listening with readiness false and sends
    refused (503, Retry-After) before it stops (see `service.shutdown`)."""
    worker_shutdown_seconds: int = Field(default=20, ge=0)
    """After SIGTERM, how long a worker lets its running jobs finish before it cancels them
    (a cancelled drain hands its partition back at once)."""
    queue_name: str = Field(default="ddbridge", min_length=1)
    """The arq queue; deployments sharing one Redis database need different names."""
    api_docs: Literal["off", "internal", "public"] = "internal"
    """`/openapi.json` behind the internal token (`internal`), open with `/docs` (`public`),
    or not served at all (`off`)."""

    @field_validator(
        "internal_tokens",
        "extra_sites",
        "return_to_origins",
        "refresh_retry_delays",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("refresh_reconcile_seconds")
    @classmethod
    def _divides_the_minute(cls, value: int) -> int:
        if 60 % value:
            divisors = [n for n in range(1, 61) if 60 % n == 0]
            raise ValueError(f"must divide 60: one of {', '.join(map(str, divisors))}")
        return value

    @field_validator("extra_sites")
    @classmethod
    def _sites_are_hosts(cls, value: list[str]) -> list[str]:
        SiteRegistry(value)  # raises ValueError naming the domain that is not a host name
        return value

    @field_validator("signin_url")
    @classmethod
    def _signin_is_a_url(cls, value: str | None) -> str | None:
        if value is not None and origin_of(value) is None:
            raise ValueError("must be an absolute http(s) URL without credentials")
        return value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("datadog_url_template", "datadog_browser_url_template")
    @classmethod
    def _has_host(cls, value: str | None) -> str | None:
        if value is not None and "{host}" not in value:
            raise ValueError("must contain {host}")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _client_configured(self) -> Settings:
        has_secret = self.client_secret is not None or self.client_secret_file is not None
        if self.client_id is None and not self.clients and self.clients_file is None:
            raise ValueError("set DDBRIDGE_CLIENT_ID/DDBRIDGE_CLIENT_SECRET or DDBRIDGE_CLIENTS")
        if (self.client_id is None) == has_secret:
            raise ValueError("DDBRIDGE_CLIENT_ID and DDBRIDGE_CLIENT_SECRET (or _FILE) go together")
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("DDBRIDGE_WEBHOOK_URL needs DDBRIDGE_WEBHOOK_SECRET to sign with")
        return self

    def problems(self) -> list[str]:
        """What production mode refuses (see the class docstring), one line each."""
        if self.mode != "production":
            return []
        found = []
        if any(len(t.get_secret_value()) < MIN_TOKEN_LENGTH for t in self.internal_tokens):
            found.append(
                f"DDBRIDGE_INTERNAL_TOKENS: each token needs at least {MIN_TOKEN_LENGTH} "
                f"characters in production mode; {FIXES['internal_tokens']}"
            )
        for name in ("datadog_url_template", "datadog_browser_url_template"):
            template = getattr(self, name)
            if template is not None and not _encrypted_or_local(template):
                found.append(
                    f"{_variable(name)}: production mode reaches Datadog over https:// only "
                    "(plain http:// only to a loopback host); unset it for Datadog itself"
                )
        if self.signin_url is None:
            found.append(
                "DDBRIDGE_SIGNIN_URL is not set: production mode hands customers arriving from "
                "Datadog's tile (/oauth/onboarding) to the partner's sign-in page; set it to "
                "that page's URL, or DDBRIDGE_MODE=dev for the demo sign-in"
            )
        return found

    @property
    def callback_url(self) -> str:
        """The `redirect_uri` registered with Datadog."""
        return self.redirect_uri or f"{self.public_url}/oauth/callback"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def allowed_return_origins(self) -> frozenset[str]:
        return frozenset([_origin(self.public_url), *map(_origin, self.return_to_origins)])


def _encrypted_or_local(template: str) -> bool:
    parts = urlsplit(template.replace("{host}", "datadog-host"))
    return parts.scheme == "https" or (
        parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def origin_of(url: str) -> str | None:
    """The `scheme://host[:port]` of an absolute http(s) URL without credentials, else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return _origin(url)


# Refusing to start, clearly.

FIXES = {
    "database_url": "set a PostgreSQL URL, e.g. postgresql+asyncpg://USER:PASSWORD@HOST:5432/ddbridge",
    "redis_url": "set a Redis URL, e.g. redis://HOST:6379/0",
    "encryption_keys": "generate a key with `ddbridge keys generate` (comma-separate several "
    "when rotating: the first encrypts)",
    "internal_tokens": "set comma-separated bearer tokens, e.g. generated with "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
    "clients": 'set a JSON object {"<domain>": {"client_id": ..., "client_secret": ...}}',
}
"""What to do about a problem with a setting, beyond what its error says."""


class SettingsInvalid(Exception):
    """The environment cannot start ddbridge; `problems` holds one line per problem, each
    naming the `DDBRIDGE_...` variable and the fix, never a value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


S = TypeVar("S", bound=Environment)


def load(kind: type[S]) -> S:
    """Read `kind` of settings from the environment; raise `SettingsInvalid` (instead of
    pydantic's error, which would show every input) for any problem, its `problems` too."""
    try:
        settings = kind()
    except ValidationError as exc:
        problems = [_explain(error) for error in exc.errors(include_url=False, include_input=False)]
    except SourceError as exc:  # a value that is not JSON where JSON is expected
        field = re.search(r'field "(\w+)"', str(exc))
        name = field[1] if field else "?"
        problems = [f"{_variable(name)} is not valid JSON: {FIXES.get(name, 'fix its value')}"]
    else:
        problems = settings.problems()
        if not problems:
            return settings
    raise SettingsInvalid(problems)


def _variable(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


def _explain(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:  # a rule across settings: its message names the variables
        return message
    field, *inside = (str(part) for part in error["loc"])
    where = f" ({'/'.join(inside)})" if inside else ""
    fix = FIXES.get(field)
    if error["type"] == "missing":
        return f"{_variable(field)}{where} is not set" + (f": {fix}" if fix else "")
    return f"{_variable(field)}{where}: {message}" + (f"; {fix}" if fix and not inside else "")


def refuse_to_start(problem: SettingsInvalid) -> NoReturn:
    """Print one line per problem on stderr and end the process with status 2, now.

    For start-ups that cannot return an exit status themselves (uvicorn's lifespan, arq's
    `on_startup`), where an exception would be logged as a traceback; nothing is open yet.
    """
    print_problems(problem)
    os._exit(2)


def print_problems(problem: SettingsInvalid) -> None:
    """One line per problem on stderr."""
    for line in problem.problems:
        print(f"ddbridge: {line}", file=sys.stderr)
    sys.stderr.flush()
