"""The internal API's guard, shapes and errors."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.stack import Stack


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Token abc"],
)
async def test_every_internal_route_needs_a_valid_token(
    stack: Stack, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as anonymous:
        answers = [
            await anonymous.post("/internal/v1/authorizations", json={"account_id": "a"}),
            await anonymous.get("/internal/v1/connections"),
            await anonymous.get(f"/internal/v1/connections/{uuid.uuid4()}"),
            await anonymous.delete(f"/internal/v1/connections/{uuid.uuid4()}"),
        ]

    assert [a.status_code for a in answers] == [401] * 4
    assert answers[0].json() == {
        "error": "unauthorized",
        "detail": "a valid internal API bearer token is required",
    }


async def test_any_configured_token_is_accepted(stack: Stack) -> None:
    """The stack configures two tokens (rotation); the fixture client uses the second."""
    assert (
        await stack.api.get("/internal/v1/connections", params={"account_id": "x"})
    ).json() == []


async def test_unknown_connection_is_404(stack: Stack) -> None:
    missing = uuid.uuid4()
    answer = await stack.api.get(f"/internal/v1/connections/{missing}")

    assert answer.status_code == 404
    assert answer.json() == {"error": "not_found", "detail": f"no connection with id {missing}"}


async def test_invalid_authorization_body_lists_every_problem(stack: Stack) -> None:
    answer = await stack.api.post(
        "/internal/v1/authorizations", json={"account_id": "", "site": 7, "colour": "red"}
    )

    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "invalid_body"
    assert {p["pointer"] for p in body["problems"]} == {"/account_id", "/site", "/colour"}


async def test_malformed_json_is_422(stack: Stack) -> None:
    answer = await stack.api.post(
        "/internal/v1/authorizations",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_body"


async def test_authorization_link_shape(stack: Stack, account_id: str) -> None:
    answer = await stack.authorization(account_id, site="https://app.datadoghq.eu")

    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"authorize_url", "expires_at"}
    assert body["authorize_url"].startswith(f"{stack.api_url}/oauth/start/")


async def test_connection_view_never_carries_a_secret(stack: Stack, account_id: str) -> None:
    org = await stack.create_org("us5.datadoghq.com")
    await stack.connect(account_id, org, domain="us5.datadoghq.com")
    [listed] = await stack.connections(account_id)
    one = (await stack.api.get(f"/internal/v1/connections/{listed['id']}")).json()

    expected = {
        "id",
        "account_id",
        "dd_org_id",
        "dd_org_name",
        "domain",
        "status",
        "status_reason",
        "scopes",
        "access_token_expires_at",
        "has_api_key",
        "created_at",
        "updated_at",
        "history",
        "delivery",
    }
    assert set(listed) == expected
    assert listed["history"] is None, "the list leaves history to the single view"
    assert set(one) == expected
    assert [t["to_status"] for t in one["history"]] == ["pending", "active"]
