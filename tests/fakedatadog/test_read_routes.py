"""The emulator's OAuth read routes (GetIncident, ListDashboards, ListEvents v1) as the official
client calls them: answers the client's response models read, the scope each operation's
definition names, query parameters checked as the client declares them, and the request log
naming the org a request acted for."""

# The official client's API classes and models have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import time
from typing import Any

import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v1.api.dashboards_api import DashboardsApi
from datadog_api_client.v1.api.events_api import EventsApi
from datadog_api_client.v2.api.incidents_api import IncidentsApi

from tests.fakedatadog.helpers import Emu, Tenant
from tests.fakedatadog.test_conformance import call, event_request, incident_request

DOMAIN = "ap1.datadoghq.com"
READ_SCOPES = [
    "api_keys_write",
    "incident_write",
    "incident_read",
    "dashboards_read",
    "events_read",
]


@pytest.fixture
async def reader(emu: Emu) -> Tenant:
    return await emu.tenant(DOMAIN, name="Readers", scopes=READ_SCOPES)


def _with_incidents(operation: Any) -> Any:
    """`operation(api)` with the client's unstable incident operations switched on."""

    def run(client: Any) -> Any:
        for name in ("create_incident", "get_incident"):
            client.configuration.unstable_operations[name] = True
        with pytest.warns(UserWarning, match="unstable operation"):
            return operation(IncidentsApi(client))

    return run


async def _refused(emulator_url: str, operation: Any, token: str) -> ApiException:
    with pytest.raises(ApiException) as refused:
        await call(emulator_url, f"api.{DOMAIN}", operation, access_token=token)
    return refused.value


async def test_client_creates_then_gets_an_incident(
    emulator_url: str, emu: Emu, reader: Tenant
) -> None:
    created = await call(
        emulator_url,
        f"api.{DOMAIN}",
        _with_incidents(lambda api: api.create_incident(body=incident_request())),
        access_token=reader.access_token,
    )

    got = await call(
        emulator_url,
        f"api.{DOMAIN}",
        _with_incidents(lambda api: api.get_incident(created.data.id)),
        access_token=reader.access_token,
    )

    assert got.data.id == created.data.id
    assert (got.data.attributes.title, got.data.attributes.public_id) == ("Checkout is down", 1)
    other = await emu.tenant(DOMAIN, name="Others", scopes=READ_SCOPES)
    missing = await _refused(
        emulator_url,
        _with_incidents(lambda api: api.get_incident(created.data.id)),
        other.access_token,
    )
    assert (missing.status, missing.body) == (404, {"errors": ["Not Found"]})


async def test_getting_an_incident_needs_incident_read(emulator_url: str, emu: Emu) -> None:
    writer = await emu.tenant(DOMAIN, scopes=["api_keys_write", "incident_write"])

    refused = await _refused(
        emulator_url, _with_incidents(lambda api: api.get_incident("x")), writer.access_token
    )

    assert (refused.status, refused.body) == (403, {"errors": ["Forbidden"]})


async def test_client_lists_seeded_dashboards_a_page_at_a_time(
    emulator_url: str, emu: Emu, reader: Tenant
) -> None:
    for title in ("Checkout", "Payments", "Search"):
        seeded = await emu.http.post(
            "/_emulator/dashboards", json={"dd_oid": reader.dd_oid, "title": title}
        )
        assert seeded.status_code == 201, seeded.text

    everything = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: DashboardsApi(c).list_dashboards(),
        access_token=reader.access_token,
    )
    page = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: DashboardsApi(c).list_dashboards(start=1, count=1),
        access_token=reader.access_token,
    )

    assert [d.title for d in everything.dashboards] == ["Checkout", "Payments", "Search"]
    assert [d.title for d in page.dashboards] == ["Payments"]
    assert str(everything.dashboards[0].layout_type) == "ordered"
    assert everything.dashboards[0].url.endswith("/checkout")


async def test_dashboards_check_scope_and_query(emulator_url: str, emu: Emu) -> None:
    no_dashboards = await emu.tenant(DOMAIN, scopes=["api_keys_write", "events_read"])
    reader = await emu.tenant(DOMAIN, scopes=READ_SCOPES)
    headers = {"Authorization": f"Bearer {reader.access_token}"}

    refused = await _refused(
        emulator_url, lambda c: DashboardsApi(c).list_dashboards(), no_dashboards.access_token
    )
    not_a_count = await emu.http.get(
        f"/api.{DOMAIN}/api/v1/dashboard", params={"count": "ten"}, headers=headers
    )
    not_a_bool = await emu.http.get(
        f"/api.{DOMAIN}/api/v1/dashboard", params={"filter[shared]": "yes"}, headers=headers
    )
    bad_layout = await emu.http.post(
        "/_emulator/dashboards",
        json={"dd_oid": reader.dd_oid, "title": "T", "layout_type": "grid"},
    )

    assert (refused.status, refused.body) == (403, {"errors": ["Forbidden"]})
    assert (not_a_count.status_code, not_a_count.json()) == (
        400,
        {"errors": ["count: expected a 64-bit integer, got 'ten'"]},
    )
    assert not_a_bool.status_code == 400
    assert not_a_bool.json()["errors"][0].startswith("filter[shared]:")
    assert bad_layout.status_code == 400


async def test_client_lists_the_events_an_org_posted_within_the_window(
    emulator_url: str, emu: Emu, reader: Tenant
) -> None:
    posted = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: EventsApi(c).create_event(body=event_request()),
        api_key=reader.api_key,
    )
    now = int(time.time())

    listed = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: EventsApi(c).list_events(start=now - 3600, end=now + 60),
        access_token=reader.access_token,
    )
    before = await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: EventsApi(c).list_events(start=now - 7200, end=now - 3600),
        access_token=reader.access_token,
    )

    assert [(e.id, e.title) for e in listed.events] == [(posted.event.id, "Deploy finished")]
    assert listed.status == "ok"
    assert before.events == []


async def test_events_check_scope_and_query(emulator_url: str, emu: Emu, reader: Tenant) -> None:
    no_events = await emu.tenant(DOMAIN, scopes=["api_keys_write", "dashboards_read"])
    headers = {"Authorization": f"Bearer {reader.access_token}"}

    refused = await _refused(
        emulator_url, lambda c: EventsApi(c).list_events(start=0, end=1), no_events.access_token
    )
    no_end = await emu.http.get(
        f"/api.{DOMAIN}/api/v1/events", params={"start": "0"}, headers=headers
    )
    bad_priority = await emu.http.get(
        f"/api.{DOMAIN}/api/v1/events",
        params={"start": "0", "end": "1", "priority": "urgent"},
        headers=headers,
    )
    past_page = await emu.http.get(
        f"/api.{DOMAIN}/api/v1/events",
        params={"start": "0", "end": "1", "page": str(2**31)},
        headers=headers,
    )

    assert (refused.status, refused.body) == (403, {"errors": ["Forbidden"]})
    assert (no_end.status_code, no_end.json()) == (
        400,
        {"errors": ["end: required query parameter is missing"]},
    )
    assert bad_priority.status_code == 400
    assert "'urgent' is not one of" in bad_priority.json()["errors"][0]
    assert past_page.status_code == 400


async def test_the_request_log_names_the_org_a_token_acts_for(
    emulator_url: str, emu: Emu, reader: Tenant
) -> None:
    await call(
        emulator_url,
        f"api.{DOMAIN}",
        lambda c: DashboardsApi(c).list_dashboards(),
        access_token=reader.access_token,
    )

    [listed] = await emu.requests(path="/api/v1/dashboard")

    assert (listed["host"], listed["dd_oid"], listed["status"]) == (
        f"api.{DOMAIN}",
        reader.dd_oid,
        200,
    )
