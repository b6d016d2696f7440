"""The Datadog pass-through through the real API, worker and emulator: the official
`datadog-api-client`, unchanged, uses ddbridge as its host for any OAuth operation the org
granted, on every site with that org's token; what the grant lacks or the definitions do not
offer with OAuth is refused before any request; Datadog's answers (rate limits included) come
back as they are; a 401 is refreshed once and retried; a refusal never takes a connection down."""

# The official client's API classes and models have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v1.api.dashboards_api import DashboardsApi
from datadog_api_client.v1.api.events_api import EventsApi
from datadog_api_client.v1.api.monitors_api import MonitorsApi
from datadog_api_client.v2.api.incidents_api import IncidentsApi

from tests.fakedatadog.official import api_client
from tests.fakedatadog.test_conformance import incident_request
from tests.service.test_guard import declare_only
from tests.support import payloads
from tests.support.stack import CLIENT_SCOPES, Stack

READ_SCOPES = [*CLIENT_SCOPES, "dashboards_read", "events_read"]
SITES = ("datadoghq.eu", "ap1.datadoghq.com", "us5.datadoghq.com")
MIB = 1024 * 1024


def _datadog(stack: Stack, connection_id: str) -> str:
    return f"{stack.api_url}/internal/v1/connections/{connection_id}/datadog"


async def _client_call(stack: Stack, connection_id: str, operation: Callable[[Any], Any]) -> Any:
    """`operation(api_client)` with the official client, its host ddbridge's pass-through and
    its `access_token` the internal token; the client is synchronous, so in a thread."""

    def run() -> Any:
        with api_client(_datadog(stack, connection_id), access_token=stack.internal_token) as c:
            for unstable in ("create_incident", "get_incident"):
                c.configuration.unstable_operations[unstable] = True
            return operation(c)

    return await asyncio.to_thread(run)


def _incidents(operation: str, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """`IncidentsApi(client).<operation>(...)`, an unstable operation the client warns about."""

    def run(client: Any) -> Any:
        with pytest.warns(UserWarning, match="unstable operation"):
            return getattr(IncidentsApi(client), operation)(*args, **kwargs)

    return run


async def _refused(stack: Stack, connection_id: str, operation: Callable[[Any], Any]) -> Any:
    with pytest.raises(ApiException) as refused:
        await _client_call(stack, connection_id, operation)
    return refused.value


async def _status(stack: Stack, connection_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"/internal/v1/connections/{connection_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def _seed(stack: Stack, kind: str, **body: str) -> None:
    (await stack.emu.post(f"/_emulator/{kind}", json=body)).raise_for_status()


async def _fault(stack: Stack, **fault: Any) -> None:
    (await stack.emu.post("/_emulator/faults", json=fault)).raise_for_status()


def _bearer(request: dict[str, Any]) -> str:
    authorization: str = request["headers"].get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer", request["headers"]
    return token


async def test_official_client_reads_and_writes_on_three_sites_with_each_orgs_token(
    stack: Stack, account_id: str
) -> None:
    await stack.register_client(scopes=READ_SCOPES)
    orgs = {}
    for number, domain in enumerate(SITES):
        connection_id, dd_oid = await stack.connected(f"{account_id}-{number}", domain)
        await _seed(
            stack,
            "monitors",
            dd_oid=dd_oid,
            name=f"Latency {domain}",
            type="metric alert",
            query="q",
        )
        await _seed(stack, "dashboards", dd_oid=dd_oid, title=f"Board {domain}")
        orgs[domain] = (connection_id, dd_oid)

    for domain, (connection_id, _) in orgs.items():
        monitors = await _client_call(
            stack, connection_id, lambda c: MonitorsApi(c).list_monitors()
        )
        created = await _client_call(
            stack,
            connection_id,
            _incidents("create_incident", body=incident_request()),
        )
        incident_id = created.data.id
        got = await _client_call(stack, connection_id, _incidents("get_incident", incident_id))
        dashboards = await _client_call(
            stack, connection_id, lambda c: DashboardsApi(c).list_dashboards()
        )

        assert [m.name for m in monitors] == [f"Latency {domain}"]
        assert (got.data.id, got.data.attributes.title) == (incident_id, "Checkout is down")
        assert [d.title for d in dashboards.dashboards] == [f"Board {domain}"]

    api_paths = ("/api/v1/monitor", "/api/v2/incidents", "/api/v1/dashboard")
    calls = [
        r
        for r in await stack.datadog_requests()
        if r["path"].startswith(api_paths) and r["host"].startswith("api.")
    ]
    assert len(calls) == 4 * len(SITES)
    tokens = set()
    for domain, (_, dd_oid) in orgs.items():
        mine = [r for r in calls if r["dd_oid"] == dd_oid]
        assert {r["host"] for r in mine} == {f"api.{domain}"}
        assert [(r["method"], r["path"].rsplit("/", 1)[0], r["status"]) for r in mine] == [
            ("GET", "/api/v1", 200),
            ("POST", "/api/v2", 201),
            ("GET", "/api/v2/incidents", 200),
            ("GET", "/api/v1", 200),
        ]
        tokens |= {_bearer(r) for r in mine}
    assert len(tokens) == len(SITES), "one token per org, each its own"
    assert stack.internal_token not in tokens
    assert all(stack.internal_token not in str(r["headers"]) for r in calls)


async def test_a_scope_the_grant_lacks_is_403_missing_scope_and_nothing_is_sent(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)  # CLIENT_SCOPES: no dashboards_read

    refused = await _refused(stack, connection_id, lambda c: DashboardsApi(c).list_dashboards())

    assert refused.status == 403
    assert refused.body["error"] == "missing_scope"
    assert refused.body["scope"] == "dashboards_read"
    assert "dashboards_read" in refused.body["detail"]
    assert await stack.datadog_requests(path="/api/v1/dashboard") == []
    current = await _status(stack, connection_id)
    assert current["status"] == "active"
    assert [t["to_status"] for t in current["history"]] == ["pending", "active"]


async def test_a_429_comes_back_with_datadogs_rate_limit_headers(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id, "datadoghq.eu")
    limits = {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Period": "60",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "17",
        "X-RateLimit-Name": "monitor_list",
    }
    await _fault(
        stack,
        host="api.datadoghq.eu",
        path="/api/v1/monitor",
        status=429,
        headers=limits,
        body={"errors": ["Rate limit exceeded"]},
    )

    limited = await _refused(stack, connection_id, lambda c: MonitorsApi(c).list_monitors())
    after = await _client_call(stack, connection_id, lambda c: MonitorsApi(c).list_monitors())

    assert (limited.status, limited.body) == (429, {"errors": ["Rate limit exceeded"]})
    returned = {name.lower(): value for name, value in limited.headers.items()}
    assert {name.lower(): value for name, value in limits.items()}.items() <= returned.items()
    assert after == []
    assert [r["status"] for r in await stack.datadog_requests(path="/api/v1/monitor")] == [
        429,
        200,
    ]
    assert (await _status(stack, connection_id))["status"] == "active"


async def test_a_401_is_refreshed_once_and_retried_with_the_new_token(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    await _seed(stack, "monitors", dd_oid=dd_oid, name="Errors", type="query alert", query="q")
    await _fault(stack, path="/api/v1/monitor", status=401, body={"errors": ["Unauthorized"]})

    monitors = await _client_call(stack, connection_id, lambda c: MonitorsApi(c).list_monitors())

    assert [m.name for m in monitors] == ["Errors"]
    refused, retried = await stack.datadog_requests(path="/api/v1/monitor")
    assert (refused["status"], retried["status"]) == (401, 200)
    assert _bearer(refused) != _bearer(retried)
    assert retried["dd_oid"] == dd_oid
    refreshes = [
        r
        for r in await stack.datadog_requests(path="/oauth2/v1/token")
        if "grant_type=refresh_token" in r["body"]
    ]
    assert [r["status"] for r in refreshes] == [200]
    assert refused["at"] <= refreshes[0]["at"] <= retried["at"]
    assert (await _status(stack, connection_id))["status"] == "active"


async def test_a_403_after_a_refresh_comes_back_as_datadogs_and_changes_nothing(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)
    await _fault(stack, path="/api/v1/monitor", status=403, count=2, body={"errors": ["Forbidden"]})

    refused = await _refused(stack, connection_id, lambda c: MonitorsApi(c).list_monitors())
    again = await _client_call(stack, connection_id, lambda c: MonitorsApi(c).list_monitors())

    assert (refused.status, refused.body) == (403, {"errors": ["Forbidden"]})
    assert again == []
    current = await _status(stack, connection_id)
    assert current["status"] == "active"
    assert [t["to_status"] for t in current["history"]] == ["pending", "active"]
    sent = payloads.metrics()
    assert (await stack.send(connection_id, "metrics", sent)).status_code == 202


async def test_what_the_definitions_do_not_offer_with_oauth_is_refused_unsent(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)
    base = f"/internal/v1/connections/{connection_id}/datadog"
    before = len(await stack.datadog_requests())

    unknown = await stack.api.get(f"{base}/api/v1/no_such_thing")
    wrong_method = await stack.api.delete(f"{base}/api/v1/monitor")
    climbing = await stack.api.get(f"{base}/api/v2/incidents/%2E%2e")
    api_key_only = await stack.api.post(f"{base}/api/v1/events", json={"title": "t", "text": "x"})
    elsewhere = await stack.api.post(f"{base}/api/v2/on-call/pages", json={})
    too_large = await declare_only(
        stack.api_url,
        "POST",
        f"{base}/api/v2/incidents",
        5 * MIB + 1,
        Authorization=f"Bearer {stack.internal_token}",
    )
    no_token = await declare_only(stack.api_url, "GET", f"{base}/api/v1/monitor", 0)

    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_operation")
    assert unknown.json()["path"] == "/api/v1/no_such_thing"
    assert "/api/v1/no_such_thing" in unknown.json()["detail"]
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (404, "unknown_operation")
    assert "it has GET, POST" in wrong_method.json()["detail"]
    assert (climbing.status_code, climbing.json()["error"]) == (404, "unknown_operation")
    assert (api_key_only.status_code, api_key_only.json()["error"]) == (
        403,
        "operation_not_oauth",
    )
    assert api_key_only.json()["operation"] == "v1.CreateEvent"
    assert "does not accept OAuth tokens" in api_key_only.json()["detail"]
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (403, "operation_not_forwarded")
    assert (too_large.status, too_large.json["error"]) == (413, "body_too_large")
    assert too_large.json["limit"] == 5 * MIB
    assert no_token.status == 401
    assert len(await stack.datadog_requests()) == before


async def test_query_body_and_content_type_go_as_sent_and_no_caller_credential_does(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id, "uk1.datadoghq.com")
    base = f"/internal/v1/connections/{connection_id}/datadog"
    body = (
        b'{"data": {"type": "incidents",'
        b' "attributes": {"title": "Disk full", "customer_impacted": false}}}'
    )
    partner_credentials = {
        "DD-API-KEY": "partner-api-key",
        "DD-APPLICATION-KEY": "partner-app-key",
        "Cookie": "session=partner",
    }

    listed = await stack.api.get(
        f"{base}/api/v1/monitor?name=a%2Fb&page_size=2&tags=env:prod", headers=partner_credentials
    )
    created = await stack.api.post(
        f"{base}/api/v2/incidents",
        content=body,
        headers={**partner_credentials, "Content-Type": "application/json"},
    )

    assert listed.status_code == 200, listed.text
    assert listed.headers["content-type"] == "application/json"
    assert created.status_code == 201, created.text
    assert created.json()["data"]["attributes"]["title"] == "Disk full"
    [list_call] = await stack.datadog_requests(path="/api/v1/monitor")
    [create_call] = await stack.datadog_requests(path="/api/v2/incidents")
    assert list_call["query"] == "name=a%2Fb&page_size=2&tags=env:prod"
    assert create_call["body"] == body.decode()
    assert create_call["headers"]["content-type"] == "application/json"
    for call in (list_call, create_call):
        assert (call["host"], call["dd_oid"]) == ("api.uk1.datadoghq.com", dd_oid)
        assert not {"dd-api-key", "dd-application-key", "cookie"} & set(call["headers"])
        assert _bearer(call) != stack.internal_token


async def test_each_call_and_each_monitors_read_leaves_an_audit_line_and_a_count(
    stack: Stack, account_id: str
) -> None:
    await stack.register_client(scopes=READ_SCOPES)
    connection_id, _ = await stack.connected(account_id)
    now = int(time.time())

    events = await _client_call(
        stack, connection_id, lambda c: EventsApi(c).list_events(start=now - 60, end=now)
    )
    await stack.api.get(f"/internal/v1/connections/{connection_id}/datadog/api/v1/nope")
    monitors = await stack.api.get(f"/internal/v1/connections/{connection_id}/monitors")

    assert events.events == []
    assert (monitors.status_code, monitors.json()) == (200, [])
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{stack.api_url}/metrics")).text
    assert re.search(
        r'ddbridge_passthrough_calls_total\{operation="v1.ListEvents",status="200"\} [1-9]', metrics
    )
    assert re.search(
        r'ddbridge_passthrough_calls_total\{operation="unknown",status="404"\} [1-9]', metrics
    )
    api_log = next(child for child in stack.children if child.name == "api")
    lines = [
        line for line in api_log.output().splitlines() if f"connection={connection_id}" in line
    ]
    assert re.search(r"operation=v1\.ListEvents status=200 duration_ms=[0-9.]+$", lines[0])
    assert re.search(r"operation=unknown status=404 duration_ms=[0-9.]+$", lines[1])
    assert re.search(r"operation=v1\.ListMonitors status=200 duration_ms=[0-9.]+$", lines[2])
    assert all("/api/v1" not in line for line in lines), "no path in the audit line"


async def test_an_operation_taking_one_of_several_scopes_names_them_all(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)

    refused = await stack.api.post(
        f"/internal/v1/connections/{connection_id}/datadog/api/v1/dashboard/public",
        json={"dashboard_id": "abc-def-ghi", "dashboard_type": "custom_timeboard"},
    )

    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "missing_scope"
    assert refused.json()["any_of"] == [
        ["dashboards_public_share"],
        ["dashboards_embed_share"],
        ["dashboards_invite_share"],
    ]
    assert await stack.datadog_requests(path="/api/v1/dashboard/public") == []


async def test_a_disconnected_connection_is_409_and_nothing_is_sent(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)
    assert (await stack.api.delete(f"/internal/v1/connections/{connection_id}")).status_code == 200

    refused = await stack.api.get(
        f"/internal/v1/connections/{connection_id}/datadog/api/v1/monitor"
    )

    assert refused.status_code == 409, refused.text
    assert (refused.json()["error"], refused.json()["status"]) == (
        "connection_not_deliverable",
        "disconnected",
    )
    assert await stack.datadog_requests(path="/api/v1/monitor") == []
