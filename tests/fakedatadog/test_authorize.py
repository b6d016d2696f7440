"""The authorize step: consent page, redirects back, error pages, sandbox and region picker."""

from __future__ import annotations

import pytest

from service.sites import KNOWN_SITES
from tests.fakedatadog.helpers import EXTRA_DOMAIN, REDIRECT_URI, SCOPES, Emu, query_of


@pytest.mark.parametrize(
    ("domain", "subdomain"),
    [(site.domain, None) for site in KNOWN_SITES]
    + [("datadoghq.com", "acme"), ("us5.datadoghq.com", "acme"), (EXTRA_DOMAIN, None)],
)
async def test_full_flow_on_every_site(emu: Emu, domain: str, subdomain: str | None) -> None:
    org = await emu.org("Org & Co", domain, subdomain)
    client = await emu.client(domain)
    flow = emu.flow(client)

    page = await emu.http.get(f"/{org['app_host']}/oauth2/v1/authorize", params=flow.params)
    assert page.status_code == 200
    assert f'<option value="{org["dd_oid"]}">' in page.text

    approved = await emu.decide(org["app_host"], flow, org["dd_oid"])
    assert approved.headers["location"].startswith(REDIRECT_URI + "&code=")
    back = query_of(approved)
    assert back == {
        "tenant": "7",
        "code": back["code"],
        "state": flow.state,
        "domain": domain,
        "site": org["app_host"],
        "client_id": client["client_id"],
        "dd_oid": org["dd_oid"],
        "dd_org_name": "Org & Co",
    }

    tokens = (await emu.exchange(domain, flow, back["code"])).json()
    assert tokens == {
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": " ".join(SCOPES),
    }
    assert len({tokens["access_token"], tokens["refresh_token"], back["code"]}) == 3
    assert (await emu.create_api_key(domain, tokens["access_token"])).status_code == 201


async def test_consent_page_shows_client_scopes_orgs_and_escapes(emu: Emu) -> None:
    first = await emu.org("First <b>", "us3.datadoghq.com")
    second = await emu.org("Second", "us3.datadoghq.com")
    await emu.org("Elsewhere", "datadoghq.eu")
    flow = emu.flow(await emu.client("us3.datadoghq.com"))

    page = await emu.http.get(
        "/us3.datadoghq.com/oauth2/v1/authorize", params={**flow.params, "scope": "ignored"}
    )

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Partner &lt;App&gt;" in page.text
    assert "<App>" not in page.text
    assert "First &lt;b&gt;" in page.text
    assert all(f"<li>{scope}</li>" in page.text for scope in SCOPES)
    assert "ignored" not in page.text
    assert page.text.count("<option ") == 2
    assert first["dd_oid"] in page.text
    assert second["dd_oid"] in page.text
    assert 'action="/us3.datadoghq.com/oauth2/v1/authorize"' in page.text
    assert '<button type="submit" name="decision" value="approve">' in page.text
    assert '<button type="submit" name="decision" value="deny">' in page.text
    for name, value in flow.params.items():
        assert f'<input type="hidden" name="{name}" value="{value}">' in page.text

    chosen = query_of(await emu.decide("us3.datadoghq.com", flow, second["dd_oid"]))
    assert chosen["dd_oid"] == second["dd_oid"]


async def test_deny_redirects_access_denied(emu: Emu) -> None:
    org = await emu.org("Acme", "datadoghq.eu")
    flow = emu.flow(await emu.client("datadoghq.eu"))

    denied = query_of(await emu.decide("app.datadoghq.eu", flow, org["dd_oid"], "deny"))

    assert denied == {
        "tenant": "7",
        "error": "access_denied",
        "error_description": "The user denied access",
        "state": flow.state,
    }


async def test_consent_switch_answers_without_the_page(emu: Emu) -> None:
    org = await emu.org("Acme", "ap1.datadoghq.com")
    other = await emu.org("Other", "ap1.datadoghq.com")
    flow = emu.flow(await emu.client("ap1.datadoghq.com"))
    url = "/ap1.datadoghq.com/oauth2/v1/authorize"

    await emu.http.post("/_emulator/consent", json={"mode": "approve", "dd_oid": other["dd_oid"]})
    approved = query_of(await emu.http.get(url, params=flow.params))
    assert approved["dd_oid"] == other["dd_oid"]
    assert (await emu.exchange("ap1.datadoghq.com", flow, approved["code"])).status_code == 200

    await emu.http.post("/_emulator/consent", json={"mode": "approve"})
    assert query_of(await emu.http.get(url, params=flow.params))["dd_oid"] == org["dd_oid"]

    await emu.http.post("/_emulator/consent", json={"mode": "deny"})
    assert query_of(await emu.http.get(url, params=flow.params))["error"] == "access_denied"

    await emu.http.post("/_emulator/consent", json={"mode": "page"})
    assert (await emu.http.get(url, params=flow.params)).status_code == 200


async def test_region_picker_on_us1_app_host(emu: Emu) -> None:
    eu_org = await emu.org("Euro", "datadoghq.eu")
    us_org = await emu.org("Yankee", "datadoghq.com")
    client = await emu.client("datadoghq.eu")
    flow = emu.flow(client)

    page = await emu.http.get("/app.datadoghq.com/oauth2/v1/authorize", params=flow.params)
    assert page.status_code == 200
    assert eu_org["dd_oid"] in page.text
    assert us_org["dd_oid"] in page.text

    back = query_of(await emu.decide("app.datadoghq.com", flow, eu_org["dd_oid"]))
    assert (back["domain"], back["site"]) == ("datadoghq.eu", "app.datadoghq.com")
    assert (await emu.exchange("datadoghq.eu", flow, back["code"])).status_code == 200

    # The client has no US1 registration, so a US1 org cannot approve it.
    refused = await emu.decide("app.datadoghq.com", flow, us_org["dd_oid"])
    assert refused.status_code == 400
    assert "invalid_request - Invalid client_id parameter value" in refused.text


async def test_unknown_client_shows_error_page(emu: Emu) -> None:
    await emu.org("Acme", "us5.datadoghq.com")
    eu_client = await emu.client("datadoghq.eu")
    flow = emu.flow(eu_client)

    for params in ({**flow.params, "client_id": "no-such-client"}, flow.params):
        page = await emu.http.get("/us5.datadoghq.com/oauth2/v1/authorize", params=params)
        assert page.status_code == 400
        assert "location" not in page.headers
        assert "invalid_request - Invalid client_id parameter value" in page.text


async def test_mismatching_redirect_uri_shows_error_page(emu: Emu) -> None:
    org = await emu.org("Acme", "datadoghq.eu")
    flow = emu.flow(await emu.client("datadoghq.eu"))
    flow.redirect_uri = "https://attacker.example/cb"

    page = await emu.http.get("/app.datadoghq.eu/oauth2/v1/authorize", params=flow.params)
    posted = await emu.decide("app.datadoghq.eu", flow, org["dd_oid"])

    for answer in (page, posted):
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert "invalid_request - Mismatching redirect URI" in answer.text


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"response_type": None}, "Missing response_type parameter"),
        ({"response_type": "token"}, "Invalid response_type parameter value"),
        ({"code_challenge": None}, "Missing code_challenge parameter"),
        ({"code_challenge_method": None}, "S256 is required"),
        ({"code_challenge_method": "plain"}, "S256 is required"),
    ],
)
async def test_bad_parameters_redirect_invalid_request(
    emu: Emu, change: dict[str, str | None], description: str
) -> None:
    await emu.org("Acme", "datadoghq.eu")
    flow = emu.flow(await emu.client("datadoghq.eu"))
    params = {k: v for k, v in {**flow.params, **change}.items() if v is not None}

    answer = query_of(await emu.http.get("/app.datadoghq.eu/oauth2/v1/authorize", params=params))

    assert answer["error"] == "invalid_request"
    assert description in answer["error_description"]
    assert answer["state"] == flow.state
    assert "code" not in answer


async def test_unpublished_client_admits_only_its_sandbox_org(emu: Emu) -> None:
    sandbox = await emu.org("Sandbox", "datadoghq.com")
    customer = await emu.org("Customer", "datadoghq.com")
    client = await emu.client("datadoghq.com", published=False, sandbox_org=sandbox["dd_oid"])
    flow = emu.flow(client)

    refused = query_of(await emu.decide("app.datadoghq.com", flow, customer["dd_oid"]))
    assert refused == {
        "tenant": "7",
        "error": "invalid_request",
        "error_description": "Invalid client_id parameter value",
        "state": flow.state,
    }
    assert "code" in query_of(await emu.decide("app.datadoghq.com", flow, sandbox["dd_oid"]))


async def test_unknown_subdomain_and_foreign_org_are_refused(emu: Emu) -> None:
    acme = await emu.org("Acme", "datadoghq.com", "acme")
    other = await emu.org("Other", "datadoghq.com")
    flow = emu.flow(await emu.client("datadoghq.com"))

    unregistered = await emu.http.get("/nobody.datadoghq.com/oauth2/v1/authorize")
    assert unregistered.status_code == 421

    page = await emu.http.get("/acme.datadoghq.com/oauth2/v1/authorize", params=flow.params)
    assert acme["dd_oid"] in page.text
    assert other["dd_oid"] not in page.text
    forged = await emu.decide("acme.datadoghq.com", flow, other["dd_oid"])
    assert forged.status_code == 400
    assert "Invalid dd_oid parameter value" in forged.text
