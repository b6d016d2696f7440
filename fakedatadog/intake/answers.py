"""The success bodies of the intake endpoints that echo what they created."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

_EVENT_FIELDS = ("title", "text", "host", "device_name", "source_type_name", "tags")


def event_answer(document: dict[str, Any], event_id: int, now: float) -> dict[str, Any]:
    """CreateEvent's 202 body (EventCreateResponse): `{"status": "ok", "event": Event}`, with
    Datadog's defaults for what the request left out (alert_type info, priority normal,
    date_happened now)."""
    event = {name: document[name] for name in _EVENT_FIELDS if name in document}
    event.update(
        id=event_id,
        id_str=str(event_id),
        alert_type=document.get("alert_type") or "info",
        priority=document.get("priority") or "normal",
        date_happened=document.get("date_happened", int(now)),
        url=f"/event/event?id={event_id}",
    )
    return {"status": "ok", "event": event}


def incident_answer(document: dict[str, Any], public_id: int, now: float) -> dict[str, Any]:
    """CreateIncident's 201 body (IncidentResponse, JSON:API): a new UUID, the org's next
    `public_id`, state active, and the attributes sent."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat()
    sent = document["data"]
    attributes = {
        **sent["attributes"],
        "public_id": public_id,
        "state": "active",
        "severity": "UNKNOWN",
        "created": stamp,
        "modified": stamp,
    }
    return {
        "data": {
            "type": "incidents",
            "id": str(uuid.uuid4()),
            "attributes": attributes,
            "relationships": sent.get("relationships", {}),
        }
    }
