"""Intake routes on the api, logs, trace and OTLP hosts, plus the monitor listing.

Each route names its host kind (another kind is 404) and its credential: `DD-API-KEY` of an
org on the host's site (else 403 `{"errors": ["Forbidden"]}`), or a Bearer token (none: 401;
not accepted: 403) with the route's scope (else 403). The body rules live in
`fakedatadog.intake.signals`. On the logs intake host every error has the HTTPLogErrors shape;
on the OTLP hosts (`trace.agent.`, `otlp.`) answers and errors are OTLP/HTTP's, in the
request's encoding (`fakedatadog.intake.otlp_wire`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.routing import APIRoute

from fakedatadog.deps import DdApiKey, Emulator, api_site, get_state, scoped, site_of
from fakedatadog.errors import ApiError, LogsIntakeError
from fakedatadog.hosts import HostKind, classify
from fakedatadog.intake import otlp_wire
from fakedatadog.intake.answers import event_answer, incident_answer
from fakedatadog.intake.signals import Received, Submission, receive
from fakedatadog.intake.store import Signal
from fakedatadog.monitors import org_monitors
from fakedatadog.state import AccessToken, EmulatorState, Org

api_router = APIRouter(dependencies=[Depends(api_site)])


class _HostErrorRoute(APIRoute):
    """A route whose failures take the error shape of the host they are answered on."""

    def host_error(self, request: Request, exc: ApiError) -> Exception | None:
        """The error to answer instead of `exc` on this request's host; None keeps `exc`."""
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                instead = self.host_error(request, exc)
                if instead is None:
                    raise
                raise instead from exc

        return answer


class _LogsHostRoute(_HostErrorRoute):
    """On a logs intake host, failures are HTTPLogErrors (SubmitLog answers every error that
    way, not as `{"errors": [message]}`)."""

    def host_error(self, request: Request, exc: ApiError) -> Exception | None:
        host = classify(get_state(request), request.path_params["host"])
        if host.kind is HostKind.LOGS:
            return LogsIntakeError(exc.status, exc.message)
        return None


class _OtlpHostRoute(_HostErrorRoute):
    """On an OTLP host, failures are an OTLP/HTTP `google.rpc.Status` encoded as the request
    was (Datadog calls these endpoints OTLP, and OTLP/HTTP fixes the shape); on another host
    the route does not exist and answers that host's 404."""

    def host_error(self, request: Request, exc: ApiError) -> Exception | None:
        host = classify(get_state(request), request.path_params["host"])
        if host.kind not in (HostKind.TRACE, HostKind.OTLP):
            return None
        media_type = otlp_wire.media_type_of(request.headers.get("content-type"))
        return otlp_wire.OtlpError(exc.status, exc.message, media_type)


logs_router = APIRouter(route_class=_LogsHostRoute, dependencies=[Depends(site_of(HostKind.LOGS))])
trace_router = APIRouter(
    route_class=_OtlpHostRoute, dependencies=[Depends(site_of(HostKind.TRACE))]
)
otlp_router = APIRouter(route_class=_OtlpHostRoute, dependencies=[Depends(site_of(HostKind.OTLP))])


IncidentWrite = Annotated[AccessToken, scoped("incident_write")]
IncidentRead = Annotated[AccessToken, scoped("incident_read")]
MonitorsRead = Annotated[AccessToken, scoped("monitors_read")]


async def _receive(request: Request, state: EmulatorState, signal: Signal, org: Org) -> Received:
    headers = request.headers
    submission = Submission(
        host=request.path_params["host"],
        content_type=headers.get("content-type"),
        content_encoding=headers.get("content-encoding"),
        body=await request.body(),
    )
    return receive(state, signal, org, submission)


@api_router.post("/{host}/api/v2/series", status_code=202)
async def submit_series(request: Request, key: DdApiKey, state: Emulator) -> dict[str, Any]:
    await _receive(request, state, "metrics", key.org)
    return {"errors": []}


@logs_router.post("/{host}/api/v2/logs", status_code=202)
async def submit_logs(request: Request, key: DdApiKey, state: Emulator) -> dict[str, Any]:
    await _receive(request, state, "logs", key.org)
    return {}


@api_router.post("/{host}/api/v1/events", status_code=202)
async def post_event(request: Request, key: DdApiKey, state: Emulator) -> dict[str, Any]:
    now = time.time()
    received = await _receive(request, state, "events", key.org)
    answer = event_answer(received.document, state.intake.next_id(), now)
    if not state.settings.bench:
        state.events.setdefault(key.org.dd_oid, []).append(answer["event"])
    return answer


@api_router.post("/{host}/api/v1/check_run", status_code=202)
async def submit_service_checks(request: Request, key: DdApiKey, state: Emulator) -> dict[str, Any]:
    await _receive(request, state, "service_checks", key.org)
    return {"status": "ok"}


@api_router.post("/{host}/api/v2/incidents", status_code=201)
async def create_incident(
    request: Request, token: IncidentWrite, state: Emulator
) -> dict[str, Any]:
    now = time.time()
    org = token.grant.org
    received = await _receive(request, state, "incidents", org)
    public_id = state.intake.counter(org.dd_oid, "incidents").items
    answer = incident_answer(received.document, public_id, now)
    state.incidents.setdefault(org.dd_oid, []).append(answer["data"])
    return answer


@api_router.get("/{host}/api/v2/incidents")
async def list_incidents(
    token: IncidentRead,
    state: Emulator,
    page_size: Annotated[int, Query(alias="page[size]", ge=1, le=100)] = 10,
    page_offset: Annotated[int, Query(alias="page[offset]", ge=0)] = 0,
) -> dict[str, Any]:
    """ListIncidents: the org's incidents, newest first, one page."""
    incidents = list(reversed(state.incidents.get(token.grant.org.dd_oid, [])))
    page = incidents[page_offset : page_offset + page_size]
    return {
        "data": page,
        "meta": {
            "pagination": {
                "offset": page_offset,
                "size": len(page),
                "next_offset": page_offset + len(page),
            }
        },
    }


@trace_router.post("/{host}/v1/traces")
async def export_traces(request: Request, key: DdApiKey, state: Emulator) -> Response:
    """OTLP/HTTP ExportTraceServiceRequest (protobuf or JSON); 200 with an empty
    ExportTraceServiceResponse (every span was accepted, or the request was refused)."""
    return await _export(request, state, "traces", key.org, otlp_wire.TRACES, "rejected_spans")


@otlp_router.post("/{host}/v1/metrics")
async def export_metrics(request: Request, key: DdApiKey, state: Emulator) -> Response:
    """OTLP/HTTP ExportMetricsServiceRequest on `otlp.<domain>`; 200 with an
    ExportMetricsServiceResponse whose `partial_success` names metrics that are not delta."""
    return await _export(
        request, state, "otlp_metrics", key.org, otlp_wire.METRICS, "rejected_data_points"
    )


@otlp_router.post("/{host}/v1/logs")
async def export_logs(request: Request, key: DdApiKey, state: Emulator) -> Response:
    """OTLP/HTTP ExportLogsServiceRequest on `otlp.<domain>`; 200 with an empty
    ExportLogsServiceResponse."""
    return await _export(
        request, state, "otlp_logs", key.org, otlp_wire.LOGS, "rejected_log_records"
    )


async def _export(
    request: Request,
    state: EmulatorState,
    signal: Signal,
    org: Org,
    kind: otlp_wire.Kind,
    rejected_field: str,
) -> Response:
    received = await _receive(request, state, signal, org)
    media_type = otlp_wire.media_type_of(request.headers.get("content-type"))
    partial = (rejected_field, received.rejected, received.rejection) if received.rejected else None
    return otlp_wire.answer(kind, media_type, partial)


@api_router.get("/{host}/api/v1/monitor")
async def list_monitors(token: MonitorsRead, state: Emulator) -> list[dict[str, Any]]:
    """Every monitor of the token's org; query parameters (filters, paging) are ignored."""
    return org_monitors(state, token.grant.org)
