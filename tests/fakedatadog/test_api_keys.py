"""The marketplace API key endpoint and key validation."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from datadog_api_client.v2.model.api_key_response import APIKeyResponse

from tests.fakedatadog.helpers import Emu
from tests.fakedatadog.official import parse

DOMAIN = "us5.datadoghq.com"
UNAUTHORIZED = {"errors": ["Unauthorized"]}
FORBIDDEN = {"errors": ["Forbidden"]}


async def _connected(emu: Emu, scopes: list[str] | None = None) -> tuple[dict[str, Any], str]:
    org = await emu.org("Acme", DOMAIN)
    tokens = await emu.connect(org, await emu.client(DOMAIN, scopes=scopes))
    return org, tokens["access_token"]


async def test_key_is_created_once(emu: Emu) -> None:
    _, access_token = await _connected(emu)

    created = await emu.create_api_key(DOMAIN, access_token)

    assert created.status_code == 201
    data = created.json()["data"]
    attributes = data["attributes"]
    assert data["type"] == "api_keys"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", data["id"])
    assert re.fullmatch(r"[0-9a-f]{32}", attributes["key"])
    assert attributes["last4"] == attributes["key"][-4:]
    assert attributes["name"] == "OAuth Client API Key"
    assert datetime.fromisoformat(attributes["created_at"]).tzinfo is not None
    assert attributes["modified_at"] == attributes["created_at"]
    assert attributes["date_last_used"] is None
    assert isinstance(attributes["category"], str)
    assert attributes["remote_config_read_enabled"] is False
    created_by = data["relationships"]["created_by"]["data"]
    assert created_by["type"] == "users"
    assert data["relationships"]["modified_by"] == {"data": created_by}
    # The official client reads it as an APIKeyResponse with nothing left unparsed.
    parsed = parse(created.json(), APIKeyResponse)
    assert parsed.data.attributes.last4 == attributes["key"][-4:]
    assert parsed.data.relationships.created_by.data.id == created_by["id"]

    again = await emu.create_api_key(DOMAIN, access_token)
    assert again.status_code == 409
    assert again.json() == {"errors": ["An API key with this name already exists"]}


async def test_validate_accepts_only_live_keys_of_the_site(emu: Emu) -> None:
    org, access_token = await _connected(emu)
    key = (await emu.create_api_key(DOMAIN, access_token)).json()["data"]["attributes"]["key"]

    valid = await emu.validate(DOMAIN, key)
    assert (valid.status_code, valid.json()) == (200, {"valid": True})
    for domain, candidate in ((DOMAIN, None), (DOMAIN, "0" * 32), ("datadoghq.com", key)):
        refused = await emu.validate(domain, candidate)
        assert (refused.status_code, refused.json()) == (403, FORBIDDEN)

    revoked = await emu.http.post("/_emulator/api_keys/revoke", json={"dd_oid": org["dd_oid"]})
    assert revoked.json() == {"revoked": 1}
    after = await emu.validate(DOMAIN, key)
    assert (after.status_code, after.json()) == (403, FORBIDDEN)

    # Once the customer revoked the key, reconnecting may create a new one.
    assert (await emu.create_api_key(DOMAIN, access_token)).status_code == 201


async def test_key_creation_needs_a_live_token_of_the_site(emu: Emu) -> None:
    """No Bearer credential is 401; a token the site does not accept is 403 Forbidden (Datadog's
    OAuth troubleshooting: an invalid, expired or revoked token answers 403 "Forbidden")."""
    _, access_token = await _connected(emu)
    url = f"/api.{DOMAIN}/api/v2/api_keys/marketplace"

    for headers in ({}, {"Authorization": access_token}, {"Authorization": "Bearer"}):
        answer = await emu.http.post(url, headers=headers)
        assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)

    invalid = await emu.http.post(url, headers={"Authorization": "Bearer nope"})
    assert (invalid.status_code, invalid.json()) == (403, FORBIDDEN)
    other_site = await emu.create_api_key("datadoghq.com", access_token)
    assert (other_site.status_code, other_site.json()) == (403, FORBIDDEN)


async def test_expired_token_is_forbidden(emu: Emu) -> None:
    await emu.http.post("/_emulator/settings", json={"access_token_ttl_seconds": 0})
    _, access_token = await _connected(emu)

    answer = await emu.create_api_key(DOMAIN, access_token)

    assert (answer.status_code, answer.json()) == (403, FORBIDDEN)


async def test_token_without_api_keys_write_is_forbidden(emu: Emu) -> None:
    _, access_token = await _connected(emu, scopes=["monitors_read"])

    answer = await emu.create_api_key(DOMAIN, access_token)

    assert (answer.status_code, answer.json()) == (403, FORBIDDEN)
