"""Read routes on `api.<domain>` for OAuth tokens: one incident, dashboards, v1 events.

Each takes a Bearer token with the operation's scope, as Datadog's definitions list it
(none: 401; not accepted or without the scope: 403), and checks its query parameters against
the official client's declaration of the operation (`fakedatadog.query`).
"""

from __future__ import annotations

from typing import Annotated, Any

from datadog_api_client.v1.api.dashboards_api import DashboardsApi
from datadog_api_client.v1.api.events_api import EventsApi
from datadog_api_client.v2.api.incidents_api import IncidentsApi
from fastapi import APIRouter, Depends, Request

from fakedatadog.dashboards import list_dashboards
from fakedatadog.deps import Emulator, api_site, scoped
from fakedatadog.errors import ApiError
from fakedatadog.events import list_events
from fakedatadog.query import checked_query
from fakedatadog.state import AccessToken

router = APIRouter(dependencies=[Depends(api_site)])

IncidentRead = Annotated[AccessToken, scoped("incident_read")]
DashboardsRead = Annotated[AccessToken, scoped("dashboards_read")]
EventsRead = Annotated[AccessToken, scoped("events_read")]


@router.get("/{host}/api/v2/incidents/{incident_id}")
async def get_incident(
    incident_id: str, request: Request, token: IncidentRead, state: Emulator
) -> dict[str, Any]:
    """GetIncident: the org's incident with this UUID as CreateIncident answered it; 404 for
    another org's or an unknown one."""
    checked_query(request.query_params, IncidentsApi, "get_incident")
    for incident in state.incidents.get(token.grant.org.dd_oid, []):
        if incident["id"] == incident_id:
            return {"data": incident}
    raise ApiError(404, "Not Found")


@router.get("/{host}/api/v1/dashboard")
async def get_dashboards(
    request: Request, token: DashboardsRead, state: Emulator
) -> dict[str, list[dict[str, Any]]]:
    """ListDashboards: the org's dashboards as DashboardSummary."""
    query = checked_query(request.query_params, DashboardsApi, "list_dashboards")
    return list_dashboards(state, token.grant.org.dd_oid, query)


@router.get("/{host}/api/v1/events")
async def get_events(request: Request, token: EventsRead, state: Emulator) -> dict[str, Any]:
    """ListEvents (v1): the org's events between `start` and `end` as EventListResponse."""
    query = checked_query(request.query_params, EventsApi, "list_events")
    return list_events(state, token.grant.org.dd_oid, query)
