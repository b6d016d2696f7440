"""The partner's OAuth clients, re-read from their mounted secret files when those change.

Datadog keeps one client secret active at a time and deletes the old one the moment it is
rotated, so a running ddbridge must not need a restart: with `DDBRIDGE_CLIENT_SECRET_FILE` or
`DDBRIDGE_CLIENTS_FILE` (a mounted Kubernetes secret), the next token call after the file
changes uses the new secret. A file is read again only when its size or modification time
changed, so a token call costs one `stat`. A file that cannot be read or parsed (a rotation
caught half-written, a typo) raises `ClientsUnreadable`, naming the file and the problem and
never its content; the next call reads it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr, TypeAdapter, ValidationError

from service.errors import ServiceError
from service.settings import ClientCredentials, Settings

_CLIENTS = TypeAdapter(dict[str, ClientCredentials])


class ClientsUnreadable(ServiceError):
    """The mounted client-secret file cannot be read or parsed: the operator's to fix."""

    status_code = 503
    code = "client_secret_unreadable"


@dataclass(frozen=True, slots=True)
class _Read:
    stamp: tuple[int, int]
    text: str


class _WatchedFile:
    """A file's text, read again when its size or modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._read: _Read | None = None

    def text(self) -> str:
        status = self.path.stat()
        stamp = (status.st_mtime_ns, status.st_size)
        if self._read is None or self._read.stamp != stamp:
            self._read = _Read(stamp, self.path.read_text())
        return self._read.text


class ClientBook:
    """Which OAuth client to use on a site: the `CLIENTS` entry (or file), else the default."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._secret_file = _watched(settings.client_secret_file)
        self._clients_file = _watched(settings.clients_file)

    def client_for(self, domain: str) -> ClientCredentials:
        """The client for `domain`; raises `ClientsUnreadable` if its file is unusable."""
        clients = self._settings.clients
        if self._clients_file is not None:
            clients = _parse_clients(self._clients_file)
        client = clients.get(domain)
        if client is not None:
            return client
        assert self._settings.client_id is not None, "checked by Settings"
        secret = self._settings.client_secret
        if self._secret_file is not None:
            secret = SecretStr(_read(self._secret_file).strip())
            if not secret.get_secret_value():
                raise ClientsUnreadable(
                    f"DDBRIDGE_CLIENT_SECRET_FILE {self._secret_file.path} is empty"
                )
        assert secret is not None, "checked by Settings"
        return ClientCredentials(client_id=self._settings.client_id, client_secret=secret)


def _read(watched: _WatchedFile) -> str:
    try:
        return watched.text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ClientsUnreadable(f"cannot read {watched.path}: {reason}") from None


def _parse_clients(watched: _WatchedFile) -> dict[str, ClientCredentials]:
    """`DDBRIDGE_CLIENTS_FILE` as `{domain: {client_id, client_secret}}`; errors name the
    place and the reason, never a value (it may be a secret)."""
    where = f"DDBRIDGE_CLIENTS_FILE {watched.path}"
    try:
        document = json.loads(_read(watched))
    except json.JSONDecodeError as exc:
        raise ClientsUnreadable(
            f"{where} is not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
        ) from None
    try:
        return _CLIENTS.validate_python(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or '(top level)'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ClientsUnreadable(f"{where} does not hold clients per site: {problems}") from None


def _watched(path: Path | None) -> _WatchedFile | None:
    return None if path is None else _WatchedFile(path)
