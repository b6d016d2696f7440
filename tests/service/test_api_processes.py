"""`ddbridge api --workers 2`: two processes behind one port, `/metrics` counts them as one,
and SIGTERM drains them all."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from harness import processes
from tests.support import payloads
from tests.support.stack import Stack

ACCEPTED = "ddbridge_accepted_items"
ITEMS_PER_SEND = 3
SENDS_PER_ROUND = 16


def accepted_per_process(metrics_dir: Path) -> dict[int, float]:
    """Logs items each API process counted, read from its own file in the multiprocess dir."""
    counted: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        counted[pid] = sum(
            sample.value
            for metric in MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
            if metric.name == ACCEPTED
            for sample in metric.samples
            if sample.labels.get("signal") == "logs" and sample.name.endswith("_total")
        )
    return counted


def accepted_in(exposition: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == ACCEPTED
        for sample in family.samples
        if sample.labels.get("signal") == "logs" and sample.name.endswith("_total")
    )


async def test_two_processes_share_one_port_and_their_metrics(
    stack: Stack, account_id: str, tmp_path: Path, log_dir: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    stale = metrics_dir / "counter_1.db"
    stale.write_bytes(b"a previous run's file")
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **stack.environment(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "DDBRIDGE_SHUTDOWN_DRAIN_SECONDS": "2",
    }
    api = processes.start(
        f"api-workers-{port}",
        ["service", "api", "--workers", "2", "--port", str(port)],
        env,
        log_dir,
    )
    try:
        await asyncio.to_thread(processes.wait_until_answers, api, f"{url}/readyz")
        assert not stale.exists(), "the multiprocess dir is emptied at start"
        connection_id, _ = await stack.connected(account_id)
        headers = {"Authorization": f"Bearer {stack.internal_token}"}
        # A new TCP connection per send, so the kernel hands sends to both processes.
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        sent = 0
        async with httpx.AsyncClient(
            base_url=url, headers=headers, limits=no_keepalive, timeout=30
        ) as http:
            deadline = time.monotonic() + 60
            while len([n for n in accepted_per_process(metrics_dir).values() if n]) < 2:
                assert time.monotonic() < deadline, "every send went to one process"
                answers = await asyncio.gather(
                    *(
                        http.post(
                            f"/internal/v1/connections/{connection_id}/logs",
                            json=payloads.logs(ITEMS_PER_SEND),
                        )
                        for _ in range(SENDS_PER_ROUND)
                    )
                )
                assert {answer.status_code for answer in answers} == {202}
                sent += SENDS_PER_ROUND * ITEMS_PER_SEND

            per_process = accepted_per_process(metrics_dir)
            assert sum(per_process.values()) == sent
            # Whichever process answers the scrape, it reports every process's count.
            for _ in range(6):
                scrape = await http.get("/metrics")
                assert scrape.status_code == 200
                assert accepted_in(scrape.text) == sent
                assert "ddbridge_backlog_items" in scrape.text

            # SIGTERM to the parent (what Kubernetes signals): every process drains.
            api.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            draining = 0
            while draining < 4:  # several answers in a row, whichever process gives them
                assert time.monotonic() < deadline, "readiness stayed true after SIGTERM"
                ready = await http.get("/readyz")
                draining = draining + 1 if ready.status_code == 503 else 0
            assert ready.json()["status"] == "draining"
            refused = await http.post(
                f"/internal/v1/connections/{connection_id}/logs", json=payloads.logs(1)
            )
            assert refused.status_code == 503
            assert refused.json()["error"] == "shutting_down"
        assert await asyncio.to_thread(api.process.wait, 30) == 0, api.output_tail()
    finally:
        api.stop()
