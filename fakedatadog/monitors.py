"""Monitors: seeded through the control plane, listed by `GET /api/v1/monitor`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from datadog_api_client.v1.model.monitor_type import MonitorType

from fakedatadog.errors import ControlError
from fakedatadog.state import EmulatorState, Monitor, Org

_DEFAULTS: dict[str, Any] = {
    "message": "",
    "tags": [],
    "options": {},
    "priority": None,
    "overall_state": "OK",
    "multi": False,
}


def seed_monitor(
    state: EmulatorState,
    *,
    dd_oid: str,
    name: str,
    monitor_type: str,
    query: str,
    extra: dict[str, Any],
) -> Monitor:
    """Add a monitor to org `dd_oid`; 400 for an unknown org or a `monitor_type` that is not one of
    the client's `MonitorType` values. `extra` fields (message, tags, options, ...) are kept
    as given and override the defaults in the listing."""
    org = state.orgs.get(dd_oid)
    if org is None:
        raise ControlError(400, f"unknown org {dd_oid}")
    if monitor_type not in MonitorType.allowed_values:
        raise ControlError(400, f"unknown monitor type {monitor_type!r}")
    monitor = Monitor(
        id=len(state.monitors) + 1,
        org=org,
        name=name,
        type=monitor_type,
        query=query,
        created=datetime.now(UTC),
        attributes=extra,
    )
    state.monitors.append(monitor)
    return monitor


def org_monitors(state: EmulatorState, org: Org) -> list[dict[str, Any]]:
    """The org's monitors in Datadog's v1 `Monitor` shape, oldest first."""
    return [monitor_json(m) for m in state.monitors if m.org == org]


def monitor_json(monitor: Monitor) -> dict[str, Any]:
    stamp = monitor.created.isoformat()
    return {
        **_DEFAULTS,
        "id": monitor.id,
        "name": monitor.name,
        "type": monitor.type,
        "query": monitor.query,
        "created": stamp,
        "modified": stamp,
        "overall_state_modified": stamp,
        **monitor.attributes,
    }
