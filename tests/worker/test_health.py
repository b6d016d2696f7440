"""The worker's HTTP port: `/healthz` says whether its event loop turns; metrics elsewhere."""

from __future__ import annotations

import time

import httpx

from harness.processes import free_port
from tests.support.stack import Stack
from worker.health import STALE_SECONDS, HealthPort, Heartbeat


async def test_a_running_worker_answers_its_health_check(stack: Stack) -> None:
    health_url = stack.worker_metrics_url.removesuffix("/metrics") + "/healthz"
    async with httpx.AsyncClient() as http:
        response = await http.get(health_url)
        metrics = await http.get(stack.worker_metrics_url)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["loop_seconds_since_beat"] < STALE_SECONDS
    assert "ddbridge_delivered_items" in metrics.text


def test_a_stalled_loop_answers_503() -> None:
    """The port's thread answers even while the loop does not turn, and says so."""
    heartbeat = Heartbeat(last=time.monotonic() - STALE_SECONDS - 1)
    port = free_port()
    server = HealthPort("127.0.0.1", port, heartbeat)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert response.status_code == 503
        assert response.json()["status"] == "stalled"
        heartbeat.last = time.monotonic()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        server.close()
