"""The key ring: sealing, opening under rotation, and refusing what does not belong."""

from __future__ import annotations

import pytest

from service.crypto import KeyRing, KeyRingError, generate_key


def test_sealed_values_open_only_in_their_context() -> None:
    ring = KeyRing([generate_key()])
    sealed = ring.seal("refresh-token-value", context="connection:1:refresh_token")

    assert b"refresh-token-value" not in sealed
    assert ring.open(sealed, context="connection:1:refresh_token") == "refresh-token-value"
    with pytest.raises(KeyRingError, match="does not open"):
        ring.open(sealed, context="connection:2:refresh_token")


def test_rotation_first_key_seals_all_keys_open() -> None:
    old, new = generate_key(), generate_key()
    sealed_old = KeyRing([old]).seal("s", context="c")
    rotated = KeyRing([new, old])

    assert rotated.open(sealed_old, context="c") == "s"
    assert not rotated.is_current(sealed_old)
    assert rotated.is_current(rotated.seal("s", context="c"))
    with pytest.raises(KeyRingError, match="no key with id"):
        KeyRing([new]).open(sealed_old, context="c")


@pytest.mark.parametrize("key", ["", "not base64!", "c2hvcnQ="])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(KeyRingError):
        KeyRing([key])


def test_each_seal_uses_a_fresh_nonce() -> None:
    ring = KeyRing([generate_key()])
    assert ring.seal("same", context="c") != ring.seal("same", context="c")
