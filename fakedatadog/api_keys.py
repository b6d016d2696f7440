"""API keys: the marketplace key an OAuth client creates for its org, and control-plane revoke."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

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
        created_by=grant.user_id,
    )
    state.api_keys[key.key] = key
    return key


def api_key_answer(key: ApiKey) -> dict[str, Any]:
    """The key as an APIKeyResponse (JSON:API `FullAPIKey`): every attribute the definition
    lists, and `created_by` / `modified_by` relationships to the user who approved the grant.
    The key was never used or edited, so `date_last_used` is null and `modified_at` its
    creation time; `category` and `remote_config_read_enabled` are guesses (see the README)."""
    stamp = key.created_at.isoformat()
    user = {"data": {"type": "users", "id": key.created_by}}
    return {
        "data": {
            "type": "api_keys",
            "id": key.key_id,
            "attributes": {
                "category": "default",
                "created_at": stamp,
                "date_last_used": None,
                "key": key.key,
                "last4": key.key[-4:],
                "modified_at": stamp,
                "name": key.name,
                "remote_config_read_enabled": False,
            },
            "relationships": {"created_by": user, "modified_by": user},
        }
    }


def revoke_org_keys(state: EmulatorState, dd_oid: str) -> int:
    """Revoke every API key of org `dd_oid`, as its admin would; returns how many were live."""
    live = [k for k in state.api_keys.values() if k.org.dd_oid == dd_oid and not k.revoked]
    for key in live:
        key.revoked = True
    return len(live)
