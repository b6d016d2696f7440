"""The partner's OAuth clients, re-read from their mounted secret files when those change.

Datadog keeps one client secret active at a time and deletes the old one the moment it is
rotated, so a running ddbridge must not need a restart: with `DDBRIDGE_CLIENT_SECRET_FILE` or
`DDBRIDGE_CLIENTS_FILE` (a mounted Kubernetes secret), the next token call after the file
changes uses the new secret. A file is read again only when its size or modification time
changed, so a token call costs one `stat`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr, TypeAdapter

from service.settings import ClientCredentials, Settings

_CLIENTS = TypeAdapter(dict[str, ClientCredentials])


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
        clients = self._settings.clients
        if self._clients_file is not None:
            clients = _CLIENTS.validate_python(json.loads(self._clients_file.text()))
        client = clients.get(domain)
        if client is not None:
            return client
        assert self._settings.client_id is not None, "checked by Settings"
        secret = self._settings.client_secret
        if self._secret_file is not None:
            secret = SecretStr(self._secret_file.text().strip())
        assert secret is not None, "checked by Settings"
        return ClientCredentials(client_id=self._settings.client_id, client_secret=secret)


def _watched(path: Path | None) -> _WatchedFile | None:
    return None if path is None else _WatchedFile(path)
