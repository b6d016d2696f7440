"""The token and revoke endpoints: code exchange, PKCE, refresh, rotation, revocation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.fakedatadog.helpers import Emu, Flow

EU = "datadoghq.eu"
INVALID_CODE = {"error": "invalid_grant", "error_description": "Invalid code or code verifier"}
BAD_CLIENT = {"error": "invalid_client", "error_description": "Client authentication failed"}
FORBIDDEN = {"errors": ["Forbidden"]}


async def _eu_flow(emu: Emu) -> tuple[Flow, str]:
    """A fresh flow on EU1 and a code for it."""
    org = await emu.org("Acme", EU)
    flow = emu.flow(await emu.client(EU))
    return flow, await emu.code("app.datadoghq.eu", flow, org["dd_oid"])


async def test_json_body_is_accepted(emu: Emu) -> None:
    flow, code = await _eu_flow(emu)
    body = {
        "grant_type": "authorization_code",
        "client_id": flow.client["client_id"],
        "client_secret": flow.client["client_secret"],
        "code": code,
        "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.verifier,
    }
    answer = await emu.http.post("/api.datadoghq.eu/oauth2/v1/token", json=body)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("verifier", ["x" * 43, "short", "é" * 43])
async def test_pkce_mismatch_burns_the_code(emu: Emu, verifier: str) -> None:
    flow, code = await _eu_flow(emu)

    wrong = await emu.exchange(EU, flow, code, code_verifier=verifier)
    assert (wrong.status_code, wrong.json()) == (400, INVALID_CODE)

    retried = await emu.exchange(EU, flow, code)
    assert (retried.status_code, retried.json()) == (400, INVALID_CODE)


async def test_code_replay_is_refused(emu: Emu) -> None:
    flow, code = await _eu_flow(emu)
    assert (await emu.exchange(EU, flow, code)).status_code == 200

    replay = await emu.exchange(EU, flow, code)
    assert (replay.status_code, replay.json()) == (400, INVALID_CODE)


async def test_expired_code_is_refused(emu: Emu) -> None:
    await emu.http.post("/_emulator/settings", json={"code_ttl_seconds": 0})
    flow, code = await _eu_flow(emu)

    expired = await emu.exchange(EU, flow, code)
    assert (expired.status_code, expired.json()) == (400, INVALID_CODE)


async def test_redirect_uri_must_match_authorize(emu: Emu) -> None:
    flow, code = await _eu_flow(emu)

    mismatch = await emu.exchange(EU, flow, code, redirect_uri="https://partner.example/other")

    assert mismatch.status_code == 400
    assert mismatch.json() == {
        "error": "invalid_request",
        "error_description": "Mismatching redirect URI",
    }


@pytest.mark.parametrize("missing", ["code", "redirect_uri", "code_verifier", "grant_type"])
async def test_missing_parameter_is_named(emu: Emu, missing: str) -> None:
    flow, code = await _eu_flow(emu)

    answer = await emu.exchange(EU, flow, code, **{missing: ""})

    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_request",
        "error_description": f"Missing {missing} parameter",
    }


async def test_unsupported_grant_type(emu: Emu) -> None:
    flow, code = await _eu_flow(emu)
    answer = await emu.exchange(EU, flow, code, grant_type="password")
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    "change",
    [{"client_secret": ""}, {"client_secret": "wrong"}, {"client_id": "someone-else"}],
)
async def test_bad_client_authentication_is_401(emu: Emu, change: dict[str, str]) -> None:
    flow, code = await _eu_flow(emu)

    answer = await emu.exchange(EU, flow, code, **change)
    assert (answer.status_code, answer.json()) == (401, BAD_CLIENT)
    # Client authentication fails before the code is looked at, so it survives.
    assert (await emu.exchange(EU, flow, code)).status_code == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "multipart/form-data; boundary=x"])
async def test_token_body_of_another_type_is_an_invalid_code(
    emu: Emu, content_type: str | None
) -> None:
    """Datadog reads the token request as a form (or JSON); any other body carries no code it
    can read, which it answers with "Invalid code or code verifier", not a client error."""
    flow, code = await _eu_flow(emu)
    form = {
        "grant_type": "authorization_code",
        "client_id": flow.client["client_id"],
        "client_secret": flow.client["client_secret"],
        "code": code,
        "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.verifier,
    }
    headers = {} if content_type is None else {"Content-Type": content_type}

    answer = await emu.http.post(
        f"/api.{EU}/oauth2/v1/token", content=urlencode(form), headers=headers
    )

    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "invalid_request", "error_description": "Invalid code or code verifier"},
    )


async def test_code_is_bound_to_its_site_and_client(emu: Emu) -> None:
    org = await emu.org("Acme", EU)
    flow = emu.flow(await emu.client(EU))
    # The same client_id imported on US1 has its own secret; another client exists on EU1.
    us1 = await emu.client("datadoghq.com", client_id=flow.client["client_id"])
    other = await emu.client(EU)

    code = await emu.code("app.datadoghq.eu", flow, org["dd_oid"])
    on_us1 = await emu.exchange("datadoghq.com", flow, code, client_secret=us1["client_secret"])
    assert (on_us1.status_code, on_us1.json()) == (400, INVALID_CODE)

    code = await emu.code("app.datadoghq.eu", flow, org["dd_oid"])
    by_other = await emu.exchange(
        EU, flow, code, client_id=other["client_id"], client_secret=other["client_secret"]
    )
    assert (by_other.status_code, by_other.json()) == (400, INVALID_CODE)


async def _connected(emu: Emu) -> tuple[dict[str, Any], dict[str, Any]]:
    org = await emu.org("Acme", EU)
    client = await emu.client(EU)
    return client, await emu.connect(org, client)


async def test_refresh_keeps_the_old_token_without_rotation(emu: Emu) -> None:
    client, tokens = await _connected(emu)

    first = await emu.refresh(EU, client, tokens["refresh_token"])
    assert first.status_code == 200
    refreshed = first.json()
    assert refreshed["scope"] == tokens["scope"]
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["refresh_token"] != tokens["refresh_token"]

    again = await emu.refresh(EU, client, tokens["refresh_token"])
    assert again.status_code == 200
    assert (await emu.refresh(EU, client, refreshed["refresh_token"])).status_code == 200


async def test_refresh_with_rotation_invalidates_the_old_token(emu: Emu) -> None:
    await emu.http.post("/_emulator/settings", json={"rotate_refresh_tokens": True})
    client, tokens = await _connected(emu)

    refreshed = (await emu.refresh(EU, client, tokens["refresh_token"])).json()
    stale = await emu.refresh(EU, client, tokens["refresh_token"])

    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    assert (await emu.refresh(EU, client, refreshed["refresh_token"])).status_code == 200


async def test_refresh_by_another_client_or_site_is_refused(emu: Emu) -> None:
    client, tokens = await _connected(emu)
    other = await emu.client(EU)
    us1 = await emu.client("datadoghq.com", client_id=client["client_id"])

    for domain, caller in ((EU, other), ("datadoghq.com", us1)):
        answer = await emu.refresh(domain, caller, tokens["refresh_token"])
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"
    assert (await emu.refresh(EU, client, "unknown")).json()["error"] == "invalid_grant"


async def _revoke(emu: Emu, client: dict[str, Any], token: str, secret: str | None = None) -> Any:
    body = {
        "client_id": client["client_id"],
        "client_secret": client["client_secret"] if secret is None else secret,
        "token": token,
    }
    return await emu.http.post("/api.datadoghq.eu/oauth2/v1/revoke", data=body)


async def test_revoking_a_refresh_token_ends_the_grant(emu: Emu) -> None:
    client, tokens = await _connected(emu)
    later = (await emu.refresh(EU, client, tokens["refresh_token"])).json()

    revoked = await _revoke(emu, client, tokens["refresh_token"])
    assert (revoked.status_code, revoked.json()) == (200, {})

    for refresh_token in (tokens["refresh_token"], later["refresh_token"]):
        assert (await emu.refresh(EU, client, refresh_token)).status_code == 400
    for access_token in (tokens["access_token"], later["access_token"]):
        revoked_token = await emu.create_api_key(EU, access_token)
        assert (revoked_token.status_code, revoked_token.json()) == (403, FORBIDDEN)


async def test_revoking_an_access_token_ends_only_that_token(emu: Emu) -> None:
    client, tokens = await _connected(emu)

    assert (await _revoke(emu, client, tokens["access_token"])).status_code == 200

    revoked_token = await emu.create_api_key(EU, tokens["access_token"])
    assert (revoked_token.status_code, revoked_token.json()) == (403, FORBIDDEN)
    refreshed = (await emu.refresh(EU, client, tokens["refresh_token"])).json()
    assert (await emu.create_api_key(EU, refreshed["access_token"])).status_code == 201


async def test_revoke_answers_unknown_tokens_and_checks_the_client(emu: Emu) -> None:
    client, tokens = await _connected(emu)

    unknown = await _revoke(emu, client, "never-issued")
    assert (unknown.status_code, unknown.json()) == (200, {})

    bad = await _revoke(emu, client, tokens["refresh_token"], secret="wrong")
    assert (bad.status_code, bad.json()) == (401, BAD_CLIENT)
    assert (await emu.refresh(EU, client, tokens["refresh_token"])).status_code == 200
