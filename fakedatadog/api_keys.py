"""API keys: the marketplace key an OAuth client creates for its org, and control-plane revoke."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fakedatadog.errors import ApiError
from fakedatadog.state import AccessToken, ApiKey, EmulatorState

MARKETPLACE_KEY_NAME = "OAuth Client API Key"
_SCOPE = "api_keys_write"


def create_marketplace_key(state: EmulatorState, token: AccessToken) -> ApiKey:
    """Create the one API key of (the token's org, its client).

    403 without scope `api_keys_write`; 409 while an unrevoked key of that pair exists (once
    the customer revokes it, reconnecting creates a new one).
    """
    grant = token.grant
    if _SCOPE not in grant.scopes:
        raise ApiError(403, "Forbidden")
    if any(
        k.org == grant.org and k.client_id == grant.client_id and not k.revoked
        for k in state.api_keys.values()
    ):
        raise ApiError(409, "An API key with this name already exists")
    key = ApiKey(
        key_id=str(uuid.uuid4()),
        key=state.new_secret(hex_chars=32),
        org=grant.org,
        client_id=grant.client_id,
        name=MARKETPLACE_KEY_NAME,
        created_at=datetime.now(UTC),
    )
    state.api_keys[key.key] = key
    return key


def revoke_org_keys(state: EmulatorState, dd_oid: str) -> int:
    """Revoke every API key of org `dd_oid`, as its admin would; returns how many were live."""
    live = [k for k in state.api_keys.values() if k.org.dd_oid == dd_oid and not k.revoked]
    for key in live:
        key.revoked = True
    return len(live)
