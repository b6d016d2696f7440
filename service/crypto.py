"""Secrets at rest: AES-256-GCM under a key ring, each ciphertext naming the key that sealed it.

Layout of a sealed value: `b"\\x01" | key id (8 bytes) | nonce (12 bytes) | ciphertext+tag`.
The key id is the first 8 bytes of SHA-256 over the key, so ids need no configuration. Every
value is sealed with associated data naming what it is (e.g. `connection:<id>:refresh_token`),
so a ciphertext copied into another row or column does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_KEY_ID_BYTES = 8
_NONCE_BYTES = 12


class KeyRingError(ValueError):
    """A key that is malformed, or a ciphertext no key in the ring opens."""


def generate_key() -> str:
    """A fresh key in the form `DDBRIDGE_ENCRYPTION_KEYS` takes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:_KEY_ID_BYTES]


class KeyRing:
    """The first key seals; every key opens. Rotate by putting a new key first."""

    def __init__(self, encoded_keys: Iterable[str]) -> None:
        keys = [_decode_key(encoded) for encoded in encoded_keys]
        if not keys:
            raise KeyRingError("at least one encryption key is required")
        self._primary_id = key_id(keys[0])
        self._ciphers = {key_id(key): AESGCM(key) for key in keys}

    def seal(self, plaintext: str, *, context: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        cipher = self._ciphers[self._primary_id]
        body = cipher.encrypt(nonce, plaintext.encode(), context.encode())
        return _VERSION + self._primary_id + nonce + body

    def open(self, sealed: bytes, *, context: str) -> str:
        if sealed[:1] != _VERSION:
            raise KeyRingError("unknown ciphertext version")
        kid = sealed[1 : 1 + _KEY_ID_BYTES]
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise KeyRingError(f"no key with id {kid.hex()} in the ring")
        nonce_at = 1 + _KEY_ID_BYTES
        nonce = sealed[nonce_at : nonce_at + _NONCE_BYTES]
        try:
            return cipher.decrypt(
                nonce, sealed[nonce_at + _NONCE_BYTES :], context.encode()
            ).decode()
        except InvalidTag as exc:
            raise KeyRingError("ciphertext does not open (wrong key or context)") from exc

    def is_current(self, sealed: bytes) -> bool:
        """Whether `sealed` is already under the primary key (rotation skips it)."""
        return sealed_by(sealed) == self._primary_id.hex()

    def key_ids(self) -> list[str]:
        """The ring's key ids (hex), the sealing key first."""
        return [self._primary_id.hex(), *(k.hex() for k in self._ciphers if k != self._primary_id)]


def sealed_by(sealed: bytes) -> str:
    """The id (hex) of the key a sealed value names."""
    return sealed[1 : 1 + _KEY_ID_BYTES].hex()


def _decode_key(encoded: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
    except (binascii.Error, ValueError) as exc:
        raise KeyRingError("an encryption key is not URL-safe base64") from exc
    if len(key) != 32:
        raise KeyRingError(f"an encryption key must be 32 bytes, got {len(key)}")
    return key


def digest(value: str) -> bytes:
    """SHA-256 of a high-entropy token (ticket, state, browser id): stored instead of it."""
    return hashlib.sha256(value.encode()).digest()
