"""Fuzzing, bounded: schemathesis over the internal API's own OpenAPI description (send bodies
included), and hypothesis over the onboarding inputs a stranger controls (site, domain,
return_to, the callback's query). Against the running stack: no answer is a 500, no response
breaks the description (status, content type, schema), the API and worker log no traceback,
and every request that reached 'Datadog' went to a Datadog host.

The budget is fixed (`EXAMPLES` per operation and mode, derandomized: the same examples each
run), so the whole file takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import string
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from service.sites import KNOWN_SITES
from tests.support.stack import PARTNER_SIGNIN_URL, Stack, query_of

EXAMPLES = 12
"""Examples per operation and generation mode (positive, negative)."""
ONBOARDING_EXAMPLES = 60
CALLBACK_EXAMPLES = 30

BUDGET = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
DATADOG_HOSTS = frozenset(
    host for site in KNOWN_SITES for host in (site.api_host, site.logs_host, site.trace_host)
)


MAX_ITEMS = 3
MAX_PROPERTIES = 8


def _bounded(description: dict[str, Any]) -> dict[str, Any]:
    """The description with its request bodies' arrays and open objects kept small
    (`MAX_ITEMS`, `MAX_PROPERTIES`): a generation budget, so that OTLP bodies take a
    second, not half a minute. Responses are validated against the description as served."""

    def bound(node: Any) -> Any:
        if isinstance(node, list):
            return [bound(item) for item in node]
        if not isinstance(node, dict):
            return node
        bounded = {key: bound(value) for key, value in node.items()}
        if bounded.get("type") == "array":
            bounded.setdefault("maxItems", MAX_ITEMS)
        if bounded.get("type") == "object":
            bounded.setdefault("maxProperties", MAX_PROPERTIES)
        return bounded

    for operations in description["paths"].values():
        for operation in operations.values():
            if "requestBody" in operation:
                operation["requestBody"] = bound(operation["requestBody"])
    return description


def _fuzz_internal_api(stack: Stack, connection_id: str) -> int:
    """Every operation of the description, positive and negative examples; half of those
    naming a connection name a real one. Returns how many requests were made."""
    auth = {"Authorization": f"Bearer {stack.internal_token}"}
    description = httpx.get(f"{stack.api_url}/openapi.json", headers=auth, timeout=30)
    description.raise_for_status()
    schema = schemathesis.openapi.from_dict(_bounded(description.json()))
    calls = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the description does not load: {result}"
        operation = result.ok()
        takes_input = any(
            len(part)
            for part in (
                operation.path_parameters,
                operation.query,
                operation.headers,
                operation.body,
            )
        )
        modes = [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if takes_input else [])]
        for mode in modes:

            @BUDGET
            @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
            def call(case: Any, real: bool) -> None:
                nonlocal calls
                # Disconnecting the real connection would turn the rest into 409s.
                if (
                    real
                    and case.method != "DELETE"
                    and "connection_id" in (case.path_parameters or {})
                ):
                    case.path_parameters["connection_id"] = connection_id
                response = case.call(base_url=stack.api_url, headers=auth, timeout=30)
                calls += 1
                case.validate_response(response, checks=CHECKS)

            call()
    return calls


# Onboarding: what a stranger's link or browser can put in front of ddbridge.

SITE_NAMES = [site.app_host for site in KNOWN_SITES] + [site.domain for site in KNOWN_SITES]
TRICKS = [
    "",
    "https://",
    "http://",
    "https://[",
    "]",
    "@evil.example",
    ":443",
    "/",
    ".",
    "\x00",
    "%00",
    "evil.example.",
    "acme.",
    "API.",
    "https://user@",
    "?x=1",
    "#",
    "\\",
]
forged_sites = st.one_of(
    st.builds(
        lambda head, name, tail: head + name + tail,
        st.sampled_from(TRICKS),
        st.sampled_from(SITE_NAMES),
        st.sampled_from(TRICKS),
    ),
    st.text(max_size=40),
    st.text(alphabet=string.ascii_lowercase + ".-[]:/@", max_size=40),
)
return_tos = st.one_of(
    st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(
            [
                "https://partner.example",
                "https://partner.example.evil.example",
                "https://partner.example@evil.example",
                "//evil.example",
                "javascript:alert(1)//",
                "https://[partner.example]",
                "http://partner.example",
                "https://evil.example",
            ]
        ),
        st.sampled_from(["", "/", "/back?x=1", "\x00", "/%2e%2e/", ":99999", "#frag"]),
    ),
    st.text(max_size=40),
)
texts = st.one_of(st.none(), st.text(max_size=80), st.text(min_size=190, max_size=300))
org_ids = st.one_of(
    st.none(), st.uuids().map(str), st.text(alphabet=string.hexdigits + "-", max_size=70)
)


def _query(values: dict[str, str | None]) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


def _fuzz_onboarding(stack: Stack) -> int:
    """The onboarding page and the authorization API with forged sites, domains and
    return_to values. Returns how many requests were made."""
    auth = {"Authorization": f"Bearer {stack.internal_token}"}
    calls = 0
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:

        @settings(BUDGET, max_examples=ONBOARDING_EXAMPLES)
        @given(site=st.none() | forged_sites, domain=st.none() | forged_sites)
        def onboarding(site: str | None, domain: str | None) -> None:
            nonlocal calls
            page = http.get("/oauth/onboarding", params=_query({"site": site, "domain": domain}))
            calls += 1
            # A Datadog site goes on to the partner's sign-in, anything else is refused.
            assert page.status_code in (303, 400), (site, domain, page.status_code)
            if page.status_code == 303:
                assert page.headers["location"].startswith(f"{PARTNER_SIGNIN_URL}?")

        @settings(BUDGET, max_examples=ONBOARDING_EXAMPLES)
        @given(
            site=st.none() | forged_sites,
            domain=st.none() | forged_sites,
            return_to=st.none() | return_tos,
            account_id=st.text(min_size=1, max_size=210),
        )
        def authorization(
            site: str | None, domain: str | None, return_to: str | None, account_id: str
        ) -> None:
            nonlocal calls
            body = {"account_id": account_id, "site": site, "domain": domain}
            answer = http.post(
                "/internal/v1/authorizations",
                json={**_query(body), **({"return_to": return_to} if return_to else {})},
                headers=auth,
            )
            calls += 1
            assert answer.status_code in (201, 422), (body, return_to, answer.text)
            if answer.status_code == 201:
                assert answer.json()["authorize_url"].startswith(f"{stack.api_url}/oauth/start/")

        onboarding()
        authorization()
    return calls


def _fuzz_callback(stack: Stack, account_id: str) -> int:
    """Callbacks for real, confirmed flows (a valid `state` and browser) with every other
    parameter generated. Returns how many requests were made."""
    auth = {"Authorization": f"Bearer {stack.internal_token}"}
    calls = 0

    @settings(BUDGET, max_examples=CALLBACK_EXAMPLES)
    @given(
        params=st.fixed_dictionaries(
            {
                "code": texts,
                "domain": st.one_of(st.none(), st.sampled_from(SITE_NAMES), forged_sites),
                "site": st.none() | forged_sites,
                "dd_oid": org_ids,
                "dd_org_name": texts,
                "error": st.one_of(st.none(), st.sampled_from(["access_denied", "x"]), texts),
                "error_description": texts,
            }
        ),
        ticket=st.text(max_size=60),
    )
    def callback(params: dict[str, str | None], ticket: str) -> None:
        nonlocal calls
        with httpx.Client(base_url=stack.api_url, timeout=30) as browser:
            stranger = browser.get(f"/oauth/start/{quote(ticket, safe='')}")
            created = browser.post(
                "/internal/v1/authorizations",
                json={"account_id": account_id, "domain": "datadoghq.com"},
                headers=auth,
            )
            start = created.json()["authorize_url"]
            browser.get(start)
            authorize = browser.post(start).headers["location"]
            page = browser.get(
                "/oauth/callback", params=_query({**params, "state": query_of(authorize)["state"]})
            )
            calls += 5
        assert stranger.status_code in (404, 410), (ticket, stranger.status_code)
        assert page.status_code < 500, (params, page.status_code, page.text)

    callback()
    return calls


async def test_fuzzing_finds_no_500_no_traceback_and_no_foreign_host(
    stack: Stack, account_id: str
) -> None:
    connection_id, _ = await stack.connected(account_id)
    # From here on, only ddbridge's own calls reach 'Datadog' (no browser goes there).
    (await stack.emu.delete("/_emulator/requests")).raise_for_status()

    with stack.no_new_traceback():
        started = time.monotonic()
        api_calls = await asyncio.to_thread(_fuzz_internal_api, stack, connection_id)
        api_done = time.monotonic()
        onboarding_calls = await asyncio.to_thread(_fuzz_onboarding, stack)
        onboarding_done = time.monotonic()
        callback_calls = await asyncio.to_thread(_fuzz_callback, stack, account_id + "-cb")
        callback_done = time.monotonic()

    await _drained(stack, connection_id)  # nothing of this test reaches 'Datadog' later
    print(
        f"fuzzed: {api_calls} internal API requests in {api_done - started:.1f} s, "
        f"{onboarding_calls} onboarding in {onboarding_done - api_done:.1f} s, "
        f"{callback_calls} callback-flow in {callback_done - onboarding_done:.1f} s"
    )
    reached = await stack.datadog_requests()
    assert reached, "some requests reached Datadog (token exchanges, verify, sends)"
    assert {request["host"] for request in reached} <= DATADOG_HOSTS
    assert not [r for r in reached if r["status"] in (421, 495)], "a misdirected request"


async def _drained(stack: Stack, connection_id: str, deadline_seconds: float = 60) -> None:
    """Poll until the connection has nothing waiting (delivered, dropped or dead)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        view = (await stack.api.get(f"/internal/v1/connections/{connection_id}")).json()
        if all(partition["pending_items"] == 0 for partition in view["delivery"]):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the fuzzed connection still has items waiting: {view['delivery']}")


@pytest.mark.parametrize("status", ["401", "404", "409", "413", "422", "429", "503"])
async def test_the_description_declares_each_error_with_its_body(stack: Stack, status: str) -> None:
    described = (await stack.api.get("/openapi.json")).json()
    sends = described["paths"]["/internal/v1/connections/{connection_id}/logs"]["post"]

    answer = sends["responses"][status]

    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    error = described["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["error", "detail"]
    assert described["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert sends["security"] == [{"HTTPBearer": []}]
    assert (
        "message"
        in sends["requestBody"]["content"]["application/json"]["schema"]["items"]["properties"]
    )
