"""The API's memory under a stranger's huge body and a burst of the largest sends.

Two loads against a real API process, its resident memory sampled throughout:

1. a 256 MiB body without a token, streamed until the API answers (it must answer 401
   without reading the body, so its memory hardly moves);
2. 20 sends of logs at once, each just under the 16 MiB body limit, with the token.

`python -m bench.memory` starts a stack of its own and prints the figures;
`tests/service/test_guard.py` runs `measure` and asserts the documented bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import orjson

from bench.oauth import clients, connect_org, register_client
from bench.procs import rss_bytes
from bench.report import Printer
from bench.runner import run_on_stack
from bench.stack import Stack

MIB = 1024 * 1024
STRANGER_BODY_BYTES = 256 * MIB
SENDS = 20
SEND_BODY_BYTES = 16 * MIB - 1024
SAMPLE_SECONDS = 0.01
MESSAGE_BYTES = (2000, 1)
"""Typical log items, then the smallest: the worst case for memory per body byte."""


@dataclass
class Figures:
    """What `measure` saw: RSS in bytes, and how the API answered."""

    message_bytes: int
    items_per_send: int
    baseline: int
    stranger_status: int
    stranger_bytes_sent: int
    stranger_peak: int
    sends_peak: int
    sends_seconds: float
    send_statuses: Counter[int] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        return [
            f"API RSS at rest: {self.baseline / MIB:.0f} MiB",
            f"256 MiB body without a token: {self.stranger_status} after "
            f"{self.stranger_bytes_sent / MIB:.1f} MiB sent; peak RSS "
            f"{self.stranger_peak / MIB:.0f} MiB (+{(self.stranger_peak - self.baseline) / MIB:.0f})",
            f"{SENDS} concurrent {SEND_BODY_BYTES / MIB:.1f} MiB logs sends "
            f"({self.items_per_send:,} items of {self.message_bytes} B messages each): answers "
            f"{dict(sorted(self.send_statuses.items()))} in {self.sends_seconds:.1f} s; peak RSS "
            f"{self.sends_peak / MIB:.0f} MiB (+{(self.sends_peak - self.baseline) / MIB:.0f})",
        ]


class Sampler:
    """The highest RSS of a process seen since the last `reset`, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0

    def reset(self) -> int:
        self.peak = rss_bytes(self.pid)
        return self.peak

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            await asyncio.sleep(SAMPLE_SECONDS)


@asynccontextmanager
async def sampling(pid: int) -> AsyncIterator[Sampler]:
    sampler = Sampler(pid)
    sampler.reset()
    task = asyncio.create_task(sampler.run())
    try:
        yield sampler
    finally:
        task.cancel()


def logs_body(size: int, message_bytes: int) -> bytes:
    """A logs send of just under `size` bytes: as many items with a message of
    `message_bytes` as fit (the smaller the items, the more memory parsing them takes)."""
    item = {"message": "x" * message_bytes, "ddsource": "bench", "service": "memory"}
    one = len(orjson.dumps(item)) + 1
    return orjson.dumps([item] * ((size - 2) // one))


async def stranger(api_url: str, path: str, declared: int) -> tuple[int, int]:
    """POST `declared` bytes without a token, streaming until the API answers; (status, bytes
    sent before the answer). Raises `TimeoutError` if no answer comes within 60 s."""
    url = urlsplit(api_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    sent = 0

    async def stream() -> None:
        nonlocal sent
        chunk = b"x" * (256 * 1024)
        while sent < declared:
            writer.write(chunk[: declared - sent])
            await writer.drain()
            sent += min(len(chunk), declared - sent)

    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n".encode()
    )
    streaming = asyncio.create_task(stream())
    try:
        status_line = await asyncio.wait_for(reader.readline(), 60)
        return int(status_line.split()[1]), sent
    finally:
        streaming.cancel()
        writer.close()


async def measure(
    api_url: str, token: str, connection_id: str, api_pid: int, message_bytes: int
) -> Figures:
    """Run both loads against the API at `api_url` (process `api_pid`), the sends' log items
    carrying messages of `message_bytes`, and return the figures."""
    async with sampling(api_pid) as sampler:
        baseline = sampler.reset()
        status, sent = await stranger(api_url, "/internal/v1/authorizations", STRANGER_BODY_BYTES)
        stranger_peak = sampler.peak

        body = logs_body(SEND_BODY_BYTES, message_bytes)
        sampler.reset()
        started = time.monotonic()
        async with httpx.AsyncClient(
            base_url=api_url,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=120,
        ) as api:
            answers = await asyncio.gather(
                *[
                    api.post(f"/internal/v1/connections/{connection_id}/logs", content=body)
                    for _ in range(SENDS)
                ]
            )
        return Figures(
            message_bytes=message_bytes,
            items_per_send=len(orjson.loads(body)),
            baseline=baseline,
            stranger_status=status,
            stranger_bytes_sent=sent,
            stranger_peak=stranger_peak,
            sends_peak=sampler.peak,
            sends_seconds=time.monotonic() - started,
            send_statuses=Counter(answer.status_code for answer in answers),
        )


async def bench(stack: Stack, out: Printer) -> None:
    assert stack.api is not None
    async with clients(stack) as (emu, api):
        await register_client(emu, stack, ["datadoghq.com"])
        connected = await connect_org(api, emu, "bench-memory", "datadoghq.com")
    for message_bytes in MESSAGE_BYTES:
        figures = await measure(
            stack.api_url,
            stack.internal_token,
            connected.connection_id,
            stack.api.pid,
            message_bytes,
        )
        for line in figures.lines():
            out(line)


def main() -> None:
    out = Printer()
    run_on_stack("ddbridge-bench-memory-", lambda stack: bench(stack, out), out)


if __name__ == "__main__":
    main()
