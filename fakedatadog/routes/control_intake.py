"""Control plane for the intake side: received telemetry, counters, seeded monitors and
dashboards."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from fakedatadog.dashboards import seed_dashboard
from fakedatadog.deps import Emulator
from fakedatadog.intake.store import Signal
from fakedatadog.monitors import monitor_json, seed_monitor

router = APIRouter(prefix="/_emulator")


class MonitorIn(BaseModel):
    """`dd_oid`, `name`, `type`, `query` required; any other field is kept on the monitor."""

    model_config = ConfigDict(extra="allow")

    dd_oid: str
    name: str
    type: str
    query: str


class DashboardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dd_oid: str
    title: str
    layout_type: str = "ordered"
    description: str | None = None
    author_handle: str = "owner@example.com"


@router.get("/intake")
async def intake_items(state: Emulator, dd_oid: str, signal: Signal) -> Response:
    """`{"items": [...], "requests": n}`: the org's stored items of `signal` in arrival order,
    each `{"received_at", "host", "encoding", "raw_size", "item"}` (`raw_size` is the whole
    request's size on the wire), and its accepted requests. Bench mode stores no items."""
    body = {
        "items": state.intake.items.get((dd_oid, signal), []),
        "requests": state.intake.counter(dd_oid, signal).requests,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/intake/counts")
async def intake_counts(state: Emulator) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """`{"counts": {dd_oid: {signal: {"requests", "items", "dropped"}}}}` for every org and
    signal that had an accepted request; `items` are points, log lines, spans, events, checks
    or incidents."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for (dd_oid, signal), counter in state.intake.counters.items():
        counts.setdefault(dd_oid, {})[signal] = {
            "requests": counter.requests,
            "items": counter.items,
            "dropped": counter.dropped,
        }
    return {"counts": counts}


@router.get("/intake/concurrency")
async def intake_concurrency(state: Emulator) -> dict[str, dict[str, dict[str, int]]]:
    """`{"peaks": {dd_oid: {path: n}}}`: the most requests of one org to one path that were
    in flight at once since reset (a request is in flight from arrival until its answer is
    complete). One drainer per partition shows as 1."""
    peaks: dict[str, dict[str, int]] = {}
    for (dd_oid, path), peak in state.in_flight.peak.items():
        peaks.setdefault(dd_oid, {})[path] = peak
    return {"peaks": peaks}


@router.post("/monitors", status_code=201)
async def add_monitor(body: MonitorIn, state: Emulator) -> dict[str, Any]:
    """Seed a monitor; answers it as `GET /api/v1/monitor` will list it."""
    monitor = seed_monitor(
        state,
        dd_oid=body.dd_oid,
        name=body.name,
        monitor_type=body.type,
        query=body.query,
        extra=body.model_extra or {},
    )
    return monitor_json(monitor)


@router.post("/dashboards", status_code=201)
async def add_dashboard(body: DashboardIn, state: Emulator) -> dict[str, Any]:
    """Seed a dashboard; answers it as `GET /api/v1/dashboard` will list it."""
    return seed_dashboard(state, **body.model_dump())
