"""Configuration from the environment (prefix `DDBRIDGE_`), validated once at start-up.

Settings are read when a process starts (`Settings()` in the CLI, the FastAPI lifespan or the
arq start-up), never at import time. Comma-separated lists are plain strings in the
environment; secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from service.crypto import KeyRing


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


class DatabaseSettings(BaseSettings):
    """The part of the environment that migrations and read-only operator commands need."""

    model_config = SettingsConfigDict(env_prefix="DDBRIDGE_", extra="ignore")

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

    def keyring(self) -> KeyRing:
        return KeyRing(key.get_secret_value() for key in self.encryption_keys)


class Settings(KeyRingSettings):
    """Everything ddbridge reads from its environment."""

    mode: Literal["production", "dev"] = "production"
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

    @field_validator(
        "internal_tokens",
        "encryption_keys",
        "extra_sites",
        "return_to_origins",
        "refresh_retry_delays",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_commas(value)

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

    @property
    def callback_url(self) -> str:
        """The `redirect_uri` registered with Datadog."""
        return self.redirect_uri or f"{self.public_url}/oauth/callback"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def allowed_return_origins(self) -> frozenset[str]:
        return frozenset([_origin(self.public_url), *map(_origin, self.return_to_origins)])


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def origin_of(url: str) -> str | None:
    """The `scheme://host[:port]` of an absolute http(s) URL without credentials, else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return _origin(url)
