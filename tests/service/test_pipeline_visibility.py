"""What operators see: expired data dropped on purpose and recorded, and Prometheus figures."""

from __future__ import annotations

import time

import httpx

from tests.support import payloads
from tests.support.stack import Stack


async def test_data_past_its_window_is_dropped_counted_and_recorded(
    stack: Stack, account_id: str
) -> None:
    """A check accepted 596 s old passes its 10-minute window while Datadog is down."""
    connection_id, dd_oid = await stack.connected(account_id)
    await stack.emu.post(
        "/_emulator/faults",
        json={"dd_oid": dd_oid, "path": "/api/v1/check_run", "status": 503, "count": 3},
    )
    checks = payloads.service_checks(1)
    checks[0]["timestamp"] = int(time.time()) - 596

    assert (await stack.send(connection_id, "service_checks", checks)).status_code == 202

    [letter] = await stack.wait_dead_letters(connection_id, 1)
    assert (letter["kind"], letter["item_count"]) == ("expired", 1)
    assert "600-second intake window" in letter["reason"]
    assert await stack.received(dd_oid, "service_checks") == []
    view = (await stack.api.get(f"/internal/v1/connections/{connection_id}")).json()
    [checks_view] = [p for p in view["delivery"] if p["signal"] == "service_checks"]
    assert (checks_view["dropped_items"], checks_view["pending_items"]) == (1, 0)
    assert checks_view["retried_requests"] >= 1, "it was retried until its window closed"


async def test_prometheus_figures_for_the_pipeline(stack: Stack, account_id: str) -> None:
    connection_id, dd_oid = await stack.connected(account_id, "ap2.datadoghq.com")
    await stack.send(connection_id, "logs", payloads.logs(7))
    await stack.wait_received(dd_oid, "logs", 7)

    api = (await stack.api.get("/metrics")).text
    async with httpx.AsyncClient() as http:
        worker = (await http.get(stack.worker_metrics_url)).text

    labels = 'signal="logs",site="ap2.datadoghq.com"'
    assert f"ddbridge_accepted_items_total{{{labels}}}" in api
    assert f"ddbridge_delivered_items_total{{{labels}}}" in worker
    assert f"ddbridge_accept_to_deliver_seconds_count{{{labels}}}" in worker
    assert dd_oid not in api + worker, "never labelled by org"
    assert connection_id not in api + worker
