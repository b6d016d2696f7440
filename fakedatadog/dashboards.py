"""Dashboards: seeded through the control plane, listed by `GET /api/v1/dashboard`."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from datadog_api_client.v1.model.dashboard_layout_type import DashboardLayoutType

from fakedatadog.errors import ControlError
from fakedatadog.state import EmulatorState

_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


def seed_dashboard(
    state: EmulatorState,
    *,
    dd_oid: str,
    title: str,
    layout_type: str,
    description: str | None,
    author_handle: str,
) -> dict[str, Any]:
    """Add a dashboard to org `dd_oid`, as ListDashboards will list it (a
    DashboardSummaryDefinition); 400 for an unknown org or a `layout_type` that is not one of
    the client's `DashboardLayoutType` values."""
    if dd_oid not in state.orgs:
        raise ControlError(400, f"unknown org {dd_oid}")
    if layout_type not in DashboardLayoutType.allowed_values:
        raise ControlError(400, f"unknown layout type {layout_type!r}")
    dashboard_id = "-".join("".join(secrets.choice(_ALPHABET) for _ in range(3)) for _ in range(3))
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    stamp = datetime.now(UTC).isoformat()
    dashboard = {
        "author_handle": author_handle,
        "created_at": stamp,
        "description": description,
        "id": dashboard_id,
        "is_read_only": False,
        "layout_type": layout_type,
        "modified_at": stamp,
        "title": title,
        "url": f"/dashboard/{dashboard_id}/{slug}",
    }
    state.dashboards.setdefault(dd_oid, []).append(dashboard)
    return dashboard


def list_dashboards(
    state: EmulatorState, dd_oid: str, query: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """ListDashboards' DashboardSummary: the org's dashboards, oldest first, from `start`,
    at most `count`. Seeded dashboards are neither shared nor deleted, so asking only for
    those (`filter[shared]` or `filter[deleted]` true) lists none."""
    if query.get("filter[shared]") or query.get("filter[deleted]"):
        return {"dashboards": []}
    dashboards = state.dashboards.get(dd_oid, [])
    start = query.get("start", 0)
    count = query.get("count", len(dashboards))
    return {"dashboards": dashboards[start : start + count]}
