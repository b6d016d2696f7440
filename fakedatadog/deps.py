"""Dependencies shared by every router serving a Datadog host, intake routers included.

Routes on a Datadog host are declared as `/{host}/...`; the gateway has already refused unknown
hosts, so these dependencies only check that the host is of the kind the route serves.

    LogsSite = Annotated[Site, Depends(site_of(HostKind.LOGS))]

    @router.post("/{host}/api/v2/logs")
    async def submit_logs(site: LogsSite, key: DdApiKey, state: Emulator) -> ...:
        org = key.org    # the org owning the API key (a Bearer route: token.grant.org)

    MonitorsRead = Annotated[AccessToken, scoped("monitors_read")]   # a Bearer route's scope

Annotations here are evaluated eagerly (no `from __future__ import annotations`): FastAPI must
resolve the dependency factories' closures, whose names exist only at definition time.
"""

from collections.abc import Callable
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Request

from fakedatadog.errors import ApiError
from fakedatadog.hosts import Host, HostKind, classify
from fakedatadog.sites import Site
from fakedatadog.state import AccessToken, ApiKey, EmulatorState


def get_state(request: Request) -> EmulatorState:
    """The app's one `EmulatorState` (set by `create_app`)."""
    return cast(EmulatorState, request.app.state.emulator)


Emulator = Annotated[EmulatorState, Depends(get_state)]


def host_of(kind: HostKind) -> Callable[[str, EmulatorState], Host]:
    """A dependency giving the `{host}` path segment classified, or 404 if not of `kind`."""

    def dependency(host: str, state: Emulator) -> Host:
        classified = classify(state, host)
        if classified.kind is not kind:
            raise ApiError(404, "Not Found")
        return classified

    return dependency


AppHost = Annotated[Host, Depends(host_of(HostKind.APP))]


def site_of(kind: HostKind) -> Callable[[Host], Site]:
    """A dependency giving the site of the `{host}` segment, or 404 if it is not of `kind`."""

    def dependency(host: Annotated[Host, Depends(host_of(kind))]) -> Site:
        assert host.site is not None, "every kind but UNKNOWN has a site"
        return host.site

    return dependency


api_site = site_of(HostKind.API)
ApiSite = Annotated[Site, Depends(api_site)]


def _request_site(state: EmulatorState, host: str) -> Site:
    site = classify(state, host).site
    assert site is not None, "the gateway only routes known hosts"
    return site


def bearer_token(
    host: str, state: Emulator, authorization: Annotated[str | None, Header()] = None
) -> AccessToken:
    """The usable access token in `Authorization: Bearer`, of an org on the host's site.

    No Bearer credential at all is 401 Unauthorized. A token that is invalid, expired or revoked
    (or of another site's org, which that site does not know) is 403 `{"errors": ["Forbidden"]}`,
    as Datadog's OAuth troubleshooting page documents.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "Unauthorized")
    found = state.active_access_token(token)
    if found is None or found.grant.org.site != _request_site(state, host):
        raise ApiError(403, "Forbidden")
    return found


BearerToken = Annotated[AccessToken, Depends(bearer_token)]


def scoped(name: str) -> Any:
    """A dependency giving the Bearer token if its grant has scope `name`; else 403 Forbidden
    (the answer Datadog gives a token without the operation's scope)."""

    def dependency(token: BearerToken) -> AccessToken:
        if name not in token.grant.scopes:
            raise ApiError(403, "Forbidden")
        return token

    return Depends(dependency)


def dd_api_key(
    host: str,
    state: Emulator,
    key: Annotated[str | None, Header(alias="DD-API-KEY")] = None,
) -> ApiKey:
    """The unrevoked API key in `DD-API-KEY`, of an org on the host's site; else 403 Forbidden."""
    found = state.active_api_key(key) if key else None
    if found is None or found.org.site != _request_site(state, host):
        raise ApiError(403, "Forbidden")
    return found


DdApiKey = Annotated[ApiKey, Depends(dd_api_key)]
