"""Faults on intake routes (statuses, rate limits, resets, per org), intake counts and bench mode."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fakedatadog.app import create_app
from tests.fakedatadog import intake_payloads as p
from tests.fakedatadog.helpers import Emu, Tenant

DOMAIN = "uk1.datadoghq.com"


@pytest.fixture
async def tenant(emu: Emu) -> Tenant:
    return await emu.tenant(DOMAIN)


async def test_rate_limit_fault_sends_datadogs_headers(emu: Emu, tenant: Tenant) -> None:
    headers = {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Period": "60",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "17",
        "X-RateLimit-Name": "post_events",
    }
    fault = {
        "host": f"api.{DOMAIN}",
        "path": "/api/v1/events",
        "status": 429,
        "headers": headers,
        "body": {"errors": ["Too many requests"]},
    }
    assert (await emu.http.post("/_emulator/faults", json=fault)).status_code == 201

    limited = await p.submit(emu, tenant, "events", p.event())
    passed = await p.submit(emu, tenant, "events", p.event())

    assert (limited.status_code, limited.json()) == (429, {"errors": ["Too many requests"]})
    assert {name: limited.headers[name] for name in headers} == headers
    assert passed.status_code == 202
    assert (await emu.counts())[tenant.dd_oid]["events"]["requests"] == 1


async def test_status_faults_count_down_per_org(emu: Emu, tenant: Tenant) -> None:
    spared = await emu.tenant(DOMAIN, name="Spared")
    fault = {"dd_oid": tenant.dd_oid, "status": 503, "count": 2}
    await emu.http.post("/_emulator/faults", json=fault)

    statuses = [
        (await p.submit(emu, spared, "logs", p.logs())).status_code,
        (await p.submit(emu, tenant, "logs", p.logs())).status_code,
        (await p.submit(emu, tenant, "traces", p.traces())).status_code,
        (await p.submit(emu, tenant, "logs", p.logs())).status_code,
    ]

    assert statuses == [202, 503, 503, 202]
    recorded = [r["status"] for r in await emu.requests(host=f"http-intake.logs.{DOMAIN}")]
    assert recorded == [202, 503, 202]


async def test_reset_fault_breaks_the_connection(emu: Emu, tenant: Tenant) -> None:
    fault = {"path": "/api/v2/series", "reset": True}
    await emu.http.post("/_emulator/faults", json=fault)

    with pytest.raises(httpx.RemoteProtocolError, match="peer closed connection"):
        await p.submit(emu, tenant, "metrics", p.series())
    after = await p.submit(emu, tenant, "metrics", p.series())

    assert after.status_code == 202
    assert [r["status"] for r in await emu.requests(path="/api/v2/series")] == [None, 202]
    assert (await emu.counts())[tenant.dd_oid]["metrics"]["requests"] == 1


async def test_intake_counts_per_org_and_signal(emu: Emu, tenant: Tenant) -> None:
    other = await emu.tenant("datadoghq.com", name="Other")
    await p.submit(emu, tenant, "metrics", p.series(5))
    await p.submit(emu, tenant, "metrics", p.series(2), encoding="zstd1")
    await p.submit(emu, tenant, "logs", p.logs(7))
    await p.submit(emu, other, "traces", p.traces([p.span(i) for i in range(3)]))
    await p.submit(emu, other, "service_checks", p.service_checks(2))
    await p.submit(emu, other, "incidents", p.incident())
    await p.submit(emu, other, "events", p.event())

    assert await emu.counts() == {
        tenant.dd_oid: {
            "metrics": {"requests": 2, "items": 7, "dropped": 0},
            "logs": {"requests": 1, "items": 7, "dropped": 0},
        },
        other.dd_oid: {
            "traces": {"requests": 1, "items": 3, "dropped": 0},
            "service_checks": {"requests": 1, "items": 2, "dropped": 0},
            "incidents": {"requests": 1, "items": 1, "dropped": 0},
            "events": {"requests": 1, "items": 1, "dropped": 0},
        },
    }
    assert await emu.intake(other.dd_oid, "metrics") == {"items": [], "requests": 0}
    assert (
        await emu.http.get("/_emulator/intake", params={"dd_oid": "x", "signal": "x"})
    ).status_code == 422
    await emu.http.post("/_emulator/reset")
    assert await emu.counts() == {}


async def test_bench_mode_counts_without_validating_or_storing(emu: Emu, tenant: Tenant) -> None:
    settings = await emu.http.post("/_emulator/settings", json={"bench": True})
    assert settings.json()["bench"] is True
    invalid_but_counted = {"series": [{"metric": "m", "type": 9, "points": [{}, {}, {}]}]}

    answers = [
        await p.submit(emu, tenant, "metrics", invalid_but_counted, encoding="deflate"),
        await p.submit(emu, tenant, "logs", [{"no": "message"}] * 4, encoding="gzip"),
        await p.submit(emu, tenant, "traces", p.traces([p.span(0, traceId="bad")])),
        await p.submit(emu, tenant, "events", {"title": 1}),
    ]
    refused = [
        await p.submit(emu, tenant, "metrics", p.series(), headers={"DD-API-KEY": "nope"}),
        await p.submit(emu, tenant, "metrics", raw=b"junk", headers={"Content-Encoding": "gzip"}),
        await p.submit(emu, tenant, "logs", p.logs(1001)),
        await p.submit(emu, tenant, "metrics", {"series": 1}),
    ]

    assert [a.status_code for a in answers] == [202, 202, 200, 202]
    assert [a.status_code for a in refused] == [403, 400, 413, 400]
    counts = (await emu.counts())[tenant.dd_oid]
    assert {signal: c["items"] for signal, c in counts.items()} == {
        "metrics": 3,
        "logs": 4,
        "traces": 1,
        "events": 1,
    }
    assert await emu.intake(tenant.dd_oid, "metrics") == {"items": [], "requests": 1}
    assert {r["body"] for r in await emu.requests(path="/api/v2/series")} == {""}

    await emu.http.post("/_emulator/reset")
    assert (await emu.http.post("/_emulator/settings", json={})).json()["bench"] is False


async def test_bench_flag_survives_reset() -> None:
    """`python -m fakedatadog --bench` builds the app with `bench=True`; reset keeps it."""
    transport = httpx.ASGITransport(app=create_app(bench=True))
    async with httpx.AsyncClient(transport=transport, base_url="http://emu") as http:
        await http.post("/_emulator/settings", json={"bench": False})
        await http.post("/_emulator/reset")
        assert (await http.post("/_emulator/settings", json={})).json()["bench"] is True


async def test_concurrency_peaks_per_org_and_path(emu: Emu, tenant: Tenant) -> None:
    """One sender at a time peaks at 1; two of one org's requests held at once peak at 2; a
    request for another org, or to another path, is counted apart."""
    other = await emu.tenant(DOMAIN, name="Other")
    for _ in range(3):
        assert (await p.submit(emu, tenant, "logs", p.logs())).status_code == 202
    await emu.http.post(
        "/_emulator/faults",
        json={"dd_oid": tenant.dd_oid, "path": "/api/v2/series", "count": 2, "delay_seconds": 0.5},
    )
    held = [p.submit(emu, tenant, "metrics", p.series()) for _ in range(2)]
    answers = await asyncio.gather(*held, p.submit(emu, other, "metrics", p.series()))
    assert [answer.status_code for answer in answers] == [202, 202, 202]

    response = await emu.http.get("/_emulator/intake/concurrency")
    assert response.status_code == 200
    peaks = response.json()["peaks"]
    assert peaks[tenant.dd_oid]["/api/v2/logs"] == 1
    assert peaks[tenant.dd_oid]["/api/v2/series"] == 2
    assert peaks[other.dd_oid]["/api/v2/series"] == 1
    await emu.http.post("/_emulator/reset")
    assert (await emu.http.get("/_emulator/intake/concurrency")).json() == {"peaks": {}}
