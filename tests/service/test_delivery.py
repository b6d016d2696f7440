"""Every signal reaches the right org, host, credential and encoding, through the real worker."""

from __future__ import annotations

import pytest

from service.sites import KNOWN_SITES, Site
from tests.support import payloads
from tests.support.stack import Stack


@pytest.mark.parametrize("site", KNOWN_SITES, ids=lambda site: site.name)
async def test_metrics_and_logs_reach_the_org_on_every_site(
    stack: Stack, account_id: str, site: Site
) -> None:
    connection_id, dd_oid = await stack.connected(account_id, site.domain)

    metrics = await stack.send(connection_id, "metrics", payloads.metrics(series=3, points=2))
    logs = await stack.send(connection_id, "logs", payloads.logs(5))

    assert metrics.status_code == 202, metrics.text
    assert metrics.json()["accepted"] == 6
    assert logs.status_code == 202, logs.text
    series = await stack.wait_received(dd_oid, "metrics", 3)
    assert sum(len(s["item"]["points"]) for s in series) == 6
    assert len(await stack.wait_received(dd_oid, "logs", 5)) == 5
    [series_call] = await stack.datadog_requests(path="/api/v2/series")
    assert series_call["host"] == site.api_host
    assert series_call["headers"]["content-encoding"] == "zstd1"
    assert "dd-api-key" in series_call["headers"]
    [logs_call] = await stack.datadog_requests(path="/api/v2/logs")
    assert logs_call["host"] == site.logs_host
    assert logs_call["headers"]["content-encoding"] == "gzip"
