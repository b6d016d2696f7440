"""The internal API's guard: token before body, limits on every body, idempotency keys per
signal and body, the backlog cap under concurrency, and the memory of bodies in flight."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
import pytest

from bench import memory
from harness.databases import asyncpg_dsn
from service.main import app
from tests.support import payloads
from tests.support.isolated_stack import IsolatedStack, isolated_stack
from tests.support.stack import Stack

MIB = 1024 * 1024
ANSWER_SECONDS = 10
MEMORY_BOUND_BYTES = 768 * MIB
"""The README's bound on the API's RSS with default settings, whatever is sent at once."""

INTERNAL_ROUTES = sorted(
    (method.upper(), path.replace("{connection_id}", str(uuid.uuid4())))
    for path, operations in app.openapi()["paths"].items()
    if path.startswith("/internal/")
    for method in operations
)
"""Every internal route the app declares, as (method, path)."""


class Answer:
    """A response read off a raw connection: status, headers (lower-case names), JSON body."""

    def __init__(self, head: bytes, body: bytes) -> None:
        status_line, *lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        self.json: Any = orjson.loads(body) if body else None


async def declare_only(
    api_url: str, method: str, path: str, declared: int, **headers: str
) -> Answer:
    """Send only the request head, declaring a body of `declared` bytes that never comes,
    and read the answer: a server that waits for the body never answers (TimeoutError)."""
    url = urlsplit(api_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n{head}\r\n".encode()
        )
        async with asyncio.timeout(ANSWER_SECONDS):
            response_head = await reader.readuntil(b"\r\n\r\n")
            answer = Answer(response_head, b"")
            length = int(answer.headers.get("content-length", "0"))
            return Answer(response_head, await reader.readexactly(length))
    finally:
        writer.close()


@pytest.fixture
async def isolated(
    service_urls: tuple[str, str], tmp_path: Path, log_dir: Path, request: pytest.FixtureRequest
) -> Callable[[dict[str, str]], Any]:
    """Start a stack of one's own with `settings` and no worker (nothing drains)."""

    def start(settings: dict[str, str]) -> Any:
        return isolated_stack(
            service_urls[0],
            tmp_path,
            log_dir / "guard" / request.node.name,
            settings=settings,
            workers=0,
        )

    return start


# Finding 2: the token before the body, a limit on every body.


@pytest.mark.parametrize(("method", "path"), INTERNAL_ROUTES)
async def test_no_token_is_401_before_a_byte_of_the_body_is_read(
    stack: Stack, method: str, path: str
) -> None:
    """256 MiB declared, nothing sent: only a server that never waits for the body answers.
    (The OTLP routes answer OTLP/HTTP's Status, with the same message and the code as reason.)"""
    assert len(INTERNAL_ROUTES) >= 13
    answer = await declare_only(stack.api_url, method, path, 256 * MIB)

    assert answer.status == 401
    detail = "a valid internal API bearer token is required"
    if "/otlp/" in path:
        assert (answer.json["message"], answer.json["details"][0]["reason"]) == (
            detail,
            "unauthorized",
        )
    else:
        assert answer.json == {"error": "unauthorized", "detail": detail}


SMALL_JSON_ROUTES = [
    "/internal/v1/authorizations",
    "/internal/v1/connections/{}/dead_letters/replay",
]


@pytest.mark.parametrize("path", SMALL_JSON_ROUTES)
async def test_small_json_body_declared_over_64_kib_is_413_unread(
    stack: Stack, account_id: str, path: str
) -> None:
    connection_id, _ = await stack.connected(account_id)

    answer = await declare_only(
        stack.api_url,
        "POST",
        path.format(connection_id),
        64 * 1024 + 1,
        Authorization=f"Bearer {stack.internal_token}",
    )

    assert answer.status == 413
    assert answer.json["error"] == "body_too_large"
    assert answer.json["limit"] == 64 * 1024


@pytest.mark.parametrize("path", SMALL_JSON_ROUTES)
async def test_small_json_body_streamed_over_64_kib_is_413(
    stack: Stack, account_id: str, path: str
) -> None:
    """Chunked, so no length is declared: the guard counts what it reads and stops."""
    connection_id, _ = await stack.connected(account_id)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"account_id": "' + b"a" * (200 * 1024) + b'"}'

    answer = await stack.api.post(
        path.format(connection_id), content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "body_too_large"


async def test_headers_over_64_kib_are_refused(stack: Stack) -> None:
    """Refused: a 400, or the connection closed while we still sent (never an answer)."""
    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        try:
            answer = await client.get("/healthz", headers={"X-Padding": "a" * (256 * 1024)})
            outcome = str(answer.status_code)
        except httpx.TransportError:
            outcome = "closed"
        fine = await client.get("/healthz", headers={"X-Padding": "a" * (32 * 1024)})

    assert outcome in {"400", "closed"}
    assert fine.status_code == 200


# Finding 4: idempotency keys per (connection, signal, key), bound to their body.


async def _outbox_items(stack: Stack, connection_id: str) -> int:
    return int(
        await stack_fetchval(
            stack,
            "SELECT coalesce(sum(item_count), 0) FROM outbox WHERE connection_id = $1::uuid",
            connection_id,
        )
    )


async def stack_fetchval(stack: Stack, query: str, *args: Any) -> Any:
    connection = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def test_one_key_on_two_signals_is_two_sends(stack: Stack, account_id: str) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    key = {"Idempotency-Key": "nightly-export-7"}

    metrics = await stack.send(connection_id, "metrics", payloads.metrics(series=1), **key)
    logs = await stack.send(connection_id, "logs", payloads.logs(4), **key)

    assert metrics.status_code == logs.status_code == 202, logs.text
    assert logs.json()["batch_id"] != metrics.json()["batch_id"]
    assert logs.json()["accepted"] == 4
    assert len(await stack.wait_received(dd_oid, "logs", 4)) == 4


async def test_key_reused_with_another_body_is_422_and_stores_nothing(
    stack: Stack, account_id: str
) -> None:
    connection_id, dd_oid = await stack.connected(account_id)
    key = {"Idempotency-Key": "order-77"}
    body = payloads.logs(3)

    first = await stack.send(connection_id, "logs", body, **key)
    other = await stack.send(connection_id, "logs", payloads.logs(2), **key)
    again = await stack.send(connection_id, "logs", body, **key)

    assert first.status_code == 202
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    assert "another logs body" in other.json()["detail"]
    assert again.status_code == 202
    assert again.json() == first.json()
    assert len(await stack.wait_received(dd_oid, "logs", 3)) == 3
    logs = await stack.wait_delivered(connection_id, "logs", 3)
    assert logs["delivered_items"] == 3
    assert await _outbox_items(stack, connection_id) == 0
    assert len(await stack.received(dd_oid, "logs")) == 3


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "over 255 characters"])
async def test_empty_or_over_long_key_is_422_naming_the_header(
    stack: Stack, account_id: str, key: str
) -> None:
    connection_id, _ = await stack.connected(account_id)

    answer = await stack.send(connection_id, "logs", payloads.logs(1), **{"Idempotency-Key": key})

    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["problems"]
    assert problem["pointer"] == "/header/Idempotency-Key"
    keys = await stack_fetchval(
        stack, "SELECT count(*) FROM idempotency_keys WHERE connection_id = $1::uuid", connection_id
    )
    assert keys == 0
    assert await _outbox_items(stack, connection_id) == 0


# Finding 6: the backlog cap under concurrency, and the memory of bodies in flight.


async def test_concurrent_sends_never_exceed_the_backlog_cap(
    isolated: Callable[[dict[str, str]], Any],
) -> None:
    """Cap 1,000 items, nothing drains: of 50 sends of 100 items at once, exactly 10 fit."""
    iso: IsolatedStack
    async with isolated({"DDBRIDGE_BACKLOG_CAP_ITEMS": "1000"}) as iso:
        connection_id, _ = await iso.stack.connected("acct-cap")

        answers = await asyncio.gather(
            *[iso.stack.send(connection_id, "logs", payloads.logs(100)) for _ in range(50)]
        )

        [row] = await iso.fetch("SELECT coalesce(sum(item_count), 0) AS items FROM outbox")
    assert Counter(a.status_code for a in answers) == {202: 10, 429: 40}
    assert row["items"] == 1000


async def test_bodies_wait_for_the_budget_then_get_503(
    isolated: Callable[[dict[str, str]], Any],
) -> None:
    """A body that holds the whole budget (declared, never sent) makes the next one wait
    `BODY_WAIT_SECONDS`, then answer 503 with Retry-After, having read nothing."""
    settings = {"DDBRIDGE_BODY_BUDGET_BYTES": str(MIB), "DDBRIDGE_BODY_WAIT_SECONDS": "0.5"}
    iso: IsolatedStack
    async with isolated(settings) as iso:
        stack = iso.stack
        connection_id, _ = await stack.connected("acct-budget")
        url = urlsplit(stack.api_url)
        _, holder = await asyncio.open_connection(url.hostname, url.port)
        try:
            holder.write(
                f"POST /internal/v1/connections/{connection_id}/logs HTTP/1.1\r\n"
                f"Host: {url.netloc}\r\nAuthorization: Bearer {stack.internal_token}\r\n"
                f"Content-Length: {MIB}\r\n\r\n".encode()
            )
            await holder.drain()
            answer = await _first_busy(stack, connection_id)
        finally:
            holder.close()
        after = await stack.send(connection_id, "logs", payloads.logs(1))

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"] == "busy"
    assert after.status_code == 202


async def _first_busy(stack: Stack, connection_id: str) -> httpx.Response:
    """Send until one waits behind the holder (the holder's head may arrive after ours)."""
    async with asyncio.timeout(ANSWER_SECONDS):
        while True:
            answer = await stack.send(connection_id, "logs", payloads.logs(1))
            if answer.status_code != 202:
                return answer


async def test_api_memory_stays_under_the_documented_bound(
    isolated: Callable[[dict[str, str]], Any], record_property: Callable[[str, Any], None]
) -> None:
    """A stranger's 256 MiB body, then 20 sends of 16 MiB of the smallest log items at once
    (the most memory per body byte), with default settings but a backlog cap that lets every
    send in: see `bench/memory.py`."""
    iso: IsolatedStack
    async with isolated({"DDBRIDGE_BACKLOG_CAP_ITEMS": "100000000"}) as iso:
        connection_id, _ = await iso.stack.connected("acct-memory")
        figures = await memory.measure(
            iso.stack.api_url, iso.stack.internal_token, connection_id, iso.api.pid, 1
        )
    report = "\n".join(figures.lines())
    print(report)
    record_property("memory", report)

    assert figures.stranger_status == 401, report
    assert figures.stranger_peak - figures.baseline < 16 * MIB, report
    assert figures.sends_peak < MEMORY_BOUND_BYTES, report
    assert set(figures.send_statuses) <= {202, 503}, report
    assert figures.send_statuses[202] >= 1, report
