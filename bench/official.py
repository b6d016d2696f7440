"""The official `datadog-api-client` as a partner without ddbridge uses it.

`python -m bench.official '<json config>'` prints a JSON result. Config keys: `emulator_url`,
`api_key`, `signal` (metrics or logs), `items` (per call), `duration`, `threads`.

Each thread has its own `ApiClient` and calls `MetricsApi.submit_metrics` or
`LogsApi.submit_log` once per request, with the client's defaults (no compression, no
retries), to the US1 hosts behind the emulator. The models are built once, up front: that is
the cheapest way to use the client, so its CPU figure is a floor for a real partner (who
builds models per request).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import orjson
import psutil
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.metrics_api import MetricsApi
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.http_log_item import HTTPLogItem
from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
from datadog_api_client.v2.model.metric_payload import MetricPayload
from datadog_api_client.v2.model.metric_point import MetricPoint
from datadog_api_client.v2.model.metric_resource import MetricResource
from datadog_api_client.v2.model.metric_series import MetricSeries

from bench import payloads

# The client's classes, typed as Any: the package's `__init__`s carry no annotations.
_Configuration: Any = Configuration
_MetricsApi: Any = MetricsApi
_LogsApi: Any = LogsApi
_HTTPLog: Any = HTTPLog
_MetricIntakeType: Any = MetricIntakeType

API_HOST = "api.datadoghq.com"
LOGS_HOST = "http-intake.logs.datadoghq.com"


def metric_payload(items: int) -> Any:
    """The benchmark's series payload as the client's models."""
    series = [
        MetricSeries(
            metric=s["metric"],
            type=_MetricIntakeType(s["type"]),
            points=[MetricPoint(timestamp=p["timestamp"], value=p["value"]) for p in s["points"]],
            tags=s["tags"],
            resources=[MetricResource(type=r["type"], name=r["name"]) for r in s["resources"]],
        )
        for s in payloads.metrics_document(items)["series"]
    ]
    return MetricPayload(series=series)


def http_log(items: int) -> Any:
    """The benchmark's log lines as the client's models."""
    return _HTTPLog([HTTPLogItem(**line) for line in payloads.logs_document(items)])


def configuration(emulator_url: str, host: str, api_key: str) -> Any:
    """A configuration that sends to `host` behind the emulator's `{host}` layout."""
    config = _Configuration(host=f"{emulator_url}/{host}")
    config.api_key["apiKeyAuth"] = api_key
    return config


class Caller(threading.Thread):
    """One partner thread: calls the API back to back until the deadline."""

    def __init__(self, config: dict[str, Any], body: Any, deadline: float) -> None:
        super().__init__(daemon=True)
        self.config = config
        self.body = body
        self.deadline = deadline
        self.items = 0
        self.failures = 0

    def run(self) -> None:
        signal = self.config["signal"]
        host = API_HOST if signal == "metrics" else LOGS_HOST
        setup = configuration(self.config["emulator_url"], host, self.config["api_key"])
        with ApiClient(setup) as client:
            api = _MetricsApi(client) if signal == "metrics" else _LogsApi(client)
            call = api.submit_metrics if signal == "metrics" else api.submit_log
            per_call = int(self.config["items"])
            while time.time() < self.deadline:
                try:
                    call(body=self.body)
                    self.items += per_call
                except Exception:  # any failure is counted, the run goes on
                    self.failures += 1


def run(config: dict[str, Any]) -> dict[str, Any]:
    """Run the callers for `duration` seconds; items sent, time and CPU of this process."""
    items = int(config["items"])
    body = metric_payload(items) if config["signal"] == "metrics" else http_log(items)
    me = psutil.Process()
    before = me.cpu_times()
    started = time.time()
    deadline = started + float(config["duration"])
    callers = [Caller(config, body, deadline) for _ in range(config["threads"])]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    after = me.cpu_times()
    return {
        "items": sum(c.items for c in callers),
        "failures": sum(c.failures for c in callers),
        "elapsed": time.time() - started,
        "cpu": (after.user + after.system) - (before.user + before.system),
    }


def main() -> None:
    sys.stdout.buffer.write(orjson.dumps(run(orjson.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
