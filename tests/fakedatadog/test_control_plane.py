"""The control plane and the gateway: orgs, request log, faults, secrets, foreign hosts."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.fakedatadog.helpers import Emu


async def test_orgs_are_created_and_listed(emu: Emu) -> None:
    created = await emu.http.post(
        "/_emulator/orgs",
        json={"name": "Acme", "domain": "us3.datadoghq.com", "subdomain": "acme", "dd_oid": "o-1"},
    )
    assert created.status_code == 201
    assert created.json() == {
        "dd_oid": "o-1",
        "name": "Acme",
        "domain": "us3.datadoghq.com",
        "subdomain": "acme",
        "app_host": "acme.us3.datadoghq.com",
    }
    plain = await emu.org("Plain", "ddog-gov.com")
    assert plain["app_host"] == "app.ddog-gov.com"
    listed = (await emu.http.get("/_emulator/orgs")).json()["orgs"]
    assert [org["dd_oid"] for org in listed] == ["o-1", plain["dd_oid"]]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "X", "domain": "evil.example"}, 400),
        ({"name": "X", "domain": "datadoghq.com", "subdomain": "api"}, 400),
        ({"name": "X", "domain": "datadoghq.com", "subdomain": "us3"}, 400),
        ({"name": "X", "domain": "datadoghq.com", "subdomain": "Bad_Label"}, 400),
        ({"name": "X", "domain": "datadoghq.com", "subdomain": "taken"}, 409),
        ({"name": "X", "domain": "datadoghq.com", "dd_oid": "o-taken"}, 409),
        ({"name": "X", "domain": "datadoghq.com", "unknown": 1}, 422),
    ],
)
async def test_bad_orgs_are_refused(emu: Emu, body: dict[str, Any], status: int) -> None:
    await emu.http.post(
        "/_emulator/orgs",
        json={"name": "T", "domain": "datadoghq.com", "subdomain": "taken", "dd_oid": "o-taken"},
    )
    assert (await emu.http.post("/_emulator/orgs", json=body)).status_code == status


async def test_request_log_records_and_filters(emu: Emu) -> None:
    await emu.validate("datadoghq.eu", "k-1")
    await emu.http.post("/api.datadoghq.eu/oauth2/v1/token?x=1", content=b"\xffraw")
    await emu.http.get("/evil.example/steal", headers={"X-Probe": "a"})
    await emu.http.get("/_emulator/orgs")

    recorded = await emu.requests()
    assert [(r["method"], r["host"], r["path"], r["status"]) for r in recorded] == [
        ("GET", "api.datadoghq.eu", "/api/v1/validate", 403),
        ("POST", "api.datadoghq.eu", "/oauth2/v1/token", 400),
        ("GET", "evil.example", "/steal", 421),
    ]
    assert recorded[0]["headers"]["dd-api-key"] == "k-1"
    assert recorded[1]["query"] == "x=1"
    assert recorded[1]["body"] == "\ufffdraw"
    assert recorded[2]["headers"]["x-probe"] == "a"

    assert len(await emu.requests(host="api.datadoghq.eu")) == 2
    assert [r["path"] for r in await emu.requests(path="/steal")] == ["/steal"]
    assert await emu.requests(host="api.datadoghq.eu", path="/steal") == []

    assert (await emu.http.delete("/_emulator/requests")).status_code == 204
    assert await emu.requests() == []


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1", "api.datadoghq.com.evil.example"])
async def test_unknown_host_is_misdirected(emu: Emu, host: str) -> None:
    answer = await emu.http.post(f"/{host}/oauth2/v1/token", data={"client_secret": "s"})
    assert answer.status_code == 421
    assert "unknown host" in answer.json()["errors"][0]


async def test_custom_subdomain_api_host_fails_like_tls(emu: Emu) -> None:
    await emu.org("Acme", "datadoghq.com", "acme")
    for host in ("api.acme.datadoghq.com", "api.other.us5.datadoghq.com"):
        answer = await emu.http.post(f"/{host}/oauth2/v1/token")
        assert answer.status_code == 495
        assert answer.text == (
            "Hostname/IP does not match certificate's altnames: "
            f"Host: {host}. is not in the cert's altnames"
        )


async def test_wrong_kind_of_host_is_not_found(emu: Emu) -> None:
    assert (await emu.http.get("/app.datadoghq.eu/api/v1/validate")).status_code == 404
    assert (await emu.http.get("/api.datadoghq.eu/oauth2/v1/authorize")).status_code == 404
    logs = await emu.http.post("/api.datadoghq.eu/api/v2/logs")
    assert (logs.status_code, logs.json()) == (404, {"errors": ["Not Found"]})


async def test_fault_replaces_the_next_count_answers(emu: Emu) -> None:
    fault = {
        "host": "api.datadoghq.eu",
        "path": "/api/v1/validate",
        "count": 2,
        "status": 503,
        "headers": {"Retry-After": "7"},
        "body": {"errors": ["Service Unavailable"]},
    }
    assert (await emu.http.post("/_emulator/faults", json=fault)).status_code == 201

    other_path = await emu.http.get("/api.datadoghq.eu/api/v1/other")
    assert other_path.status_code == 404
    for _ in range(2):
        faulted = await emu.validate("datadoghq.eu", "k")
        assert faulted.status_code == 503
        assert faulted.headers["retry-after"] == "7"
        assert faulted.json() == {"errors": ["Service Unavailable"]}
    assert (await emu.validate("datadoghq.eu", "k")).status_code == 403
    statuses = [r["status"] for r in await emu.requests(path="/api/v1/validate")]
    assert statuses == [503, 503, 403]


async def test_fault_can_target_one_org(emu: Emu) -> None:
    domain = "datadoghq.eu"
    client = await emu.client(domain)
    tokens = {}
    for name in ("Hit", "Spared"):
        org = await emu.org(name, domain)
        tokens[name] = (org["dd_oid"], (await emu.connect(org, client))["access_token"])
    fault = {"dd_oid": tokens["Hit"][0], "status": 500}
    await emu.http.post("/_emulator/faults", json=fault)

    assert (await emu.create_api_key(domain, tokens["Spared"][1])).status_code == 201
    assert (await emu.create_api_key(domain, tokens["Hit"][1])).status_code == 500
    assert (await emu.create_api_key(domain, tokens["Hit"][1])).status_code == 201


async def test_fault_delay_without_status_then_real_answer(emu: Emu) -> None:
    fault = {"host": "api.datadoghq.eu", "delay_seconds": 0.2}
    await emu.http.post("/_emulator/faults", json=fault)

    started = time.monotonic()
    delayed = await emu.validate("datadoghq.eu", "k")

    assert time.monotonic() - started >= 0.2
    assert delayed.status_code == 403


async def test_faults_can_be_cleared(emu: Emu) -> None:
    await emu.http.post("/_emulator/faults", json={"status": 500, "count": 5})
    assert (await emu.http.delete("/_emulator/faults")).status_code == 204
    assert (await emu.validate("datadoghq.eu", "k")).status_code == 403


async def test_secrets_lists_every_credential_until_reset(emu: Emu) -> None:
    org = await emu.org("Acme", "ap2.datadoghq.com")
    configured = await emu.http.post(
        "/_emulator/clients",
        json={
            "client_id": "c-1",
            "client_secret": "configured-secret",
            "name": "App",
            "domain": "ap2.datadoghq.com",
            "redirect_uris": ["https://partner.example/cb"],
            "scopes": ["api_keys_write"],
            "published": True,
        },
    )
    client = await emu.client("ap2.datadoghq.com")
    flow = emu.flow(client)
    code = await emu.code(org["app_host"], flow, org["dd_oid"])
    tokens = (await emu.exchange("ap2.datadoghq.com", flow, code)).json()
    key = (await emu.create_api_key("ap2.datadoghq.com", tokens["access_token"])).json()

    secrets = set((await emu.http.get("/_emulator/secrets")).json()["secrets"])

    assert configured.json()["client_secret"] == "configured-secret"
    assert {
        "configured-secret",
        client["client_secret"],
        code,
        tokens["access_token"],
        tokens["refresh_token"],
        key["data"]["attributes"]["key"],
    } <= secrets

    await emu.http.post("/_emulator/reset")
    assert (await emu.http.get("/_emulator/secrets")).json() == {"secrets": []}


async def test_reset_forgets_state_and_switches(emu: Emu) -> None:
    await emu.org("Acme", "datadoghq.com")
    await emu.http.post("/_emulator/consent", json={"mode": "deny"})
    settings = await emu.http.post("/_emulator/settings", json={"rotate_refresh_tokens": True})
    assert settings.json() == {
        "code_ttl_seconds": 300,
        "access_token_ttl_seconds": 3600,
        "rotate_refresh_tokens": True,
        "bench": False,
    }
    await emu.validate("datadoghq.com", "k")

    assert (await emu.http.post("/_emulator/reset")).status_code == 204

    assert (await emu.http.get("/_emulator/orgs")).json() == {"orgs": []}
    assert await emu.requests() == []
    defaults = (await emu.http.post("/_emulator/settings", json={})).json()
    assert defaults["rotate_refresh_tokens"] is False
    org = await emu.org("Acme", "datadoghq.com")
    flow = emu.flow(await emu.client("datadoghq.com"))
    page = await emu.http.get(f"/{org['app_host']}/oauth2/v1/authorize", params=flow.params)
    assert page.status_code == 200


async def test_grants_are_minted_for_fleets_and_refresh_like_real_ones(emu: Emu) -> None:
    client = await emu.client("datadoghq.eu")
    before = time.time()

    minted = await emu.http.post(
        "/_emulator/grants",
        json={"client_id": client["client_id"], "domain": "datadoghq.eu", "count": 3},
    )
    elsewhere = await emu.http.post(
        "/_emulator/grants",
        json={"client_id": client["client_id"], "domain": "datadoghq.com", "count": 1},
    )

    assert minted.status_code == 201
    grants = minted.json()["grants"]
    assert len({grant["dd_oid"] for grant in grants}) == 3
    assert {grant["scope"] for grant in grants} == {" ".join(client["scopes"])}
    refreshed = await emu.refresh("datadoghq.eu", client, grants[0]["refresh_token"])
    assert refreshed.status_code == 200
    [call] = await emu.requests(path="/oauth2/v1/token")
    assert before <= call["at"] <= time.time()
    assert elsewhere.status_code == 400, "the client is registered on EU only"
