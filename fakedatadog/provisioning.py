"""Create orgs and OAuth client registrations, as Datadog's sign-up and developer platform do."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from fakedatadog.errors import ControlError
from fakedatadog.sites import Site, UnknownSiteError
from fakedatadog.state import Client, EmulatorState, Grant, Org
from fakedatadog.tokens import issue


def create_org(
    state: EmulatorState, *, name: str, domain: str, subdomain: str | None, dd_oid: str | None
) -> Org:
    """Register an org on the site `domain`, optionally with a custom subdomain app host.

    400 for an unknown domain or a subdomain that is not a free customer label there;
    409 for a dd_oid or subdomain already taken.
    """
    site = _site(state, domain)
    org = Org(dd_oid=dd_oid or str(uuid.uuid4()), name=name, site=site, subdomain=subdomain)
    if org.dd_oid in state.orgs:
        raise ControlError(409, f"org {org.dd_oid} already exists")
    if subdomain is not None:
        if state.registry.customer_subdomain(org.app_host) != site:
            raise ControlError(400, f"{org.app_host} is not a free customer subdomain host")
        if any(other.app_host == org.app_host for other in state.orgs.values()):
            raise ControlError(409, f"subdomain host {org.app_host} is already taken")
    state.orgs[org.dd_oid] = org
    return org


def mint_grants(
    state: EmulatorState, client_id: str, domain: str, count: int
) -> list[dict[str, Any]]:
    """`count` new orgs on `domain`, each with a grant to the client and fresh tokens.

    400 when the client is not registered on that site.
    """
    client = state.client(_site(state, domain).domain, client_id)
    if client is None:
        raise ControlError(400, f"client {client_id} is not registered on {domain}")
    minted = []
    for number in range(count):
        org = create_org(
            state, name=f"Fleet org {number}", domain=domain, subdomain=None, dd_oid=None
        )
        tokens = issue(state, Grant(client_id=client_id, org=org, scopes=client.scopes))
        minted.append({"dd_oid": org.dd_oid, **tokens})
    return minted


def register_client(
    state: EmulatorState,
    *,
    client_id: str | None,
    client_secret: str | None,
    name: str,
    domain: str,
    redirect_uris: Sequence[str],
    scopes: Sequence[str],
    published: bool,
    sandbox_org: str | None,
) -> Client:
    """Register (or re-register) a client on the site `domain`; random credentials if absent.

    Re-registering a client_id on the same site replaces it, as rotating a secret does: the
    old secret stops working at once and existing grants stay valid. 400 for an unknown domain.
    """
    site = _site(state, domain)
    client = Client(
        client_id=client_id or str(uuid.uuid4()),
        client_secret=state.remember_secret(client_secret or state.new_secret()),
        name=name,
        site=site,
        redirect_uris=tuple(redirect_uris),
        scopes=tuple(scopes),
        published=published,
        sandbox_org=sandbox_org,
    )
    state.clients[(site.domain, client.client_id)] = client
    return client


DEMO_SCOPES = (
    "api_keys_write",
    "monitors_read",
    "incident_read",
    "incident_write",
    "metrics_read",
    "events_read",
)


def seed_demo(state: EmulatorState, client_id: str, client_secret: str, redirect_uri: str) -> None:
    """A demo: one org per site, a custom-subdomain org (`acme.datadoghq.com`), and a
    published client with `DEMO_SCOPES` registered on every site."""
    for site in state.registry.sites:
        create_org(
            state, name=f"Demo org {site.name}", domain=site.domain, subdomain=None, dd_oid=None
        )
        register_client(
            state,
            client_id=client_id,
            client_secret=client_secret,
            name="ddbridge demo",
            domain=site.domain,
            redirect_uris=[redirect_uri],
            scopes=DEMO_SCOPES,
            published=True,
            sandbox_org=None,
        )
    create_org(
        state, name="Acme (custom subdomain)", domain="datadoghq.com", subdomain="acme", dd_oid=None
    )


def _site(state: EmulatorState, domain: str) -> Site:
    try:
        return state.registry.by_domain(domain)
    except UnknownSiteError as exc:
        raise ControlError(400, str(exc)) from exc
