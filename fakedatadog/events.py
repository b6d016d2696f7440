"""Events as read back: the v1 events an org posted, listed by `GET /api/v1/events`."""

from __future__ import annotations

from typing import Any

from fakedatadog.state import EmulatorState

PAGE_SIZE = 1000
"""ListEvents: "This endpoint returns a maximum of 1000 most recent results" per page."""


def list_events(state: EmulatorState, dd_oid: str, query: dict[str, Any]) -> dict[str, Any]:
    """ListEvents' EventListResponse: the org's events with `date_happened` between `start`
    and `end` (inclusive), newest first, filtered by `priority`, `sources` (any of them, as
    `source_type_name`) and `tags` (all of them), one page of at most `PAGE_SIZE`."""
    sources = set(query["sources"].split(",")) if "sources" in query else None
    tags = set(query["tags"].split(",")) if "tags" in query else set()
    found = [
        event
        for event in reversed(state.events.get(dd_oid, []))
        if query["start"] <= event["date_happened"] <= query["end"]
        and query.get("priority", event["priority"]) == event["priority"]
        and (sources is None or event.get("source_type_name") in sources)
        and tags <= set(event.get("tags", []))
    ]
    page = query.get("page", 0)
    return {"events": found[page * PAGE_SIZE : (page + 1) * PAGE_SIZE], "status": "ok"}
