"""Intake size and count limits at their boundaries, encodings and media types."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import zstandard

from tests.fakedatadog import intake_payloads as p
from tests.fakedatadog.helpers import Emu, Tenant

DOMAIN = "us3.datadoghq.com"
FIXED = p.now()


def _members(raw: bytes) -> bytes:
    """`raw` as two gzip members."""
    half = len(raw) // 2
    return gzip.compress(raw[:half]) + gzip.compress(raw[half:])


def _frames(raw: bytes) -> bytes:
    """`raw` as three zstd frames, the first without a content size (as a streaming writer)."""
    third = len(raw) // 3
    streamed = zstandard.ZstdCompressor().compressobj()
    first = streamed.compress(raw[:third]) + streamed.flush()
    rest = [
        zstandard.ZstdCompressor().compress(part)
        for part in (raw[third : 2 * third], raw[2 * third :])
    ]
    return first + b"".join(rest)


@pytest.fixture
async def tenant(emu: Emu) -> Tenant:
    return await emu.tenant(DOMAIN)


def series_of_size(size: int) -> bytes:
    """A one-point series whose compact JSON is exactly `size` bytes (padded in a tag)."""
    bare = len(p.dumps(p.series(1, at=FIXED, tag="")))
    raw = p.dumps(p.series(1, at=FIXED, tag="a" * (size - bare)))
    assert len(raw) == size
    return raw


def logs_of_size(size: int, entries: int = 10) -> bytes:
    """`entries` logs (each well under 1 MB) whose JSON array is exactly `size` bytes."""
    bare = len(p.dumps([{"message": ""}] * entries))
    pad, extra = divmod(size - bare, entries)
    raw = p.dumps([{"message": "a" * (pad + (i < extra))} for i in range(entries)])
    assert len(raw) == size
    return raw


def traces_of_size(size: int) -> bytes:
    bare = len(p.dumps(p.traces([p.span(0, name="")])))
    raw = p.dumps(p.traces([p.span(0, name="a" * (size - bare))]))
    assert len(raw) == size
    return raw


def too_large(what: str, limit: int) -> dict[str, Any]:
    return {"errors": [f"Payload too large: {what} is over the limit of {limit} bytes"]}


async def test_series_wire_limit(emu: Emu, tenant: Tenant) -> None:
    at_limit = await p.submit(emu, tenant, "metrics", raw=series_of_size(512_000))
    over = await p.submit(emu, tenant, "metrics", raw=series_of_size(512_001))

    assert at_limit.status_code == 202
    assert (over.status_code, over.json()) == (
        413,
        too_large("the request body (512001 bytes)", 512_000),
    )
    assert (await emu.intake(tenant.dd_oid, "metrics"))["requests"] == 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd1"])
async def test_series_decompressed_limit(emu: Emu, tenant: Tenant, encoding: str) -> None:
    under = await p.submit(emu, tenant, "metrics", raw=series_of_size(5_242_879), encoding=encoding)
    at_five_mib = await p.submit(
        emu, tenant, "metrics", raw=series_of_size(5_242_880), encoding=encoding
    )

    assert under.status_code == 202, under.text
    assert at_five_mib.status_code == 413
    assert at_five_mib.json() == too_large(
        "the decompressed body (5242880 bytes or more)", 5_242_879
    )


async def test_logs_entry_limit(emu: Emu, tenant: Tenant) -> None:
    at_limit = await p.submit(emu, tenant, "logs", p.logs(1000))
    over = await p.submit(emu, tenant, "logs", p.logs(1001))

    assert at_limit.status_code == 202
    assert (over.status_code, over.json()) == (
        413,
        p.refusal("logs", 413, "Payload too large: 1001 log entries, the limit is 1000"),
    )
    assert (await emu.counts())[tenant.dd_oid]["logs"] == {
        "requests": 1,
        "items": 1000,
        "dropped": 0,
    }


@pytest.mark.parametrize("encoding", [None, "gzip"])
async def test_logs_size_limit(emu: Emu, tenant: Tenant, encoding: str | None) -> None:
    at_limit = await p.submit(emu, tenant, "logs", raw=logs_of_size(5_000_000), encoding=encoding)
    over = await p.submit(emu, tenant, "logs", raw=logs_of_size(5_000_001), encoding=encoding)

    assert at_limit.status_code == 202
    assert over.status_code == 413
    assert p.message(over).endswith("is over the limit of 5000000 bytes")


async def test_a_log_over_one_megabyte_is_truncated_not_refused(emu: Emu, tenant: Tenant) -> None:
    exact = "a" * 1_000_000
    answer = await p.submit(
        emu, tenant, "logs", [{"message": exact}, {"message": "é" * 500_001, "k": 1}]
    )

    assert answer.status_code == 202
    first, second = (i["item"] for i in (await emu.intake(tenant.dd_oid, "logs"))["items"])
    assert first == {"message": exact}
    assert second == {"message": "é" * 500_000, "k": 1, "truncated": True}


async def test_traces_size_limit(emu: Emu, tenant: Tenant) -> None:
    at_limit = await p.submit(emu, tenant, "traces", raw=traces_of_size(3_200_000))
    over = await p.submit(emu, tenant, "traces", raw=traces_of_size(3_200_001))
    over_unzipped = await p.submit(
        emu, tenant, "traces", raw=traces_of_size(3_200_001), encoding="gzip"
    )

    assert at_limit.status_code == 200
    assert (over.status_code, p.message(over)) == (
        413,
        too_large("the request body (3200001 bytes)", 3_200_000)["errors"][0],
    )
    assert over_unzipped.status_code == 413


@pytest.mark.parametrize(
    ("signal", "encoding"),
    [
        ("metrics", "br"),
        ("metrics", "zstd"),
        ("metrics", "gzip, deflate"),
        ("logs", "zstd1"),
        ("events", "gzip"),
        ("service_checks", "zstd1"),
        ("service_checks", "br"),
        ("incidents", "gzip"),
        ("traces", "deflate"),
    ],
)
async def test_unsupported_encodings(emu: Emu, tenant: Tenant, signal: str, encoding: str) -> None:
    answer = await p.submit(
        emu, tenant, signal, raw=gzip.compress(b"{}"), headers={"Content-Encoding": encoding}
    )

    assert answer.status_code == 415
    assert p.message(answer).startswith(f"Unsupported Content-Encoding {encoding!r}")


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(p.dumps(p.series()))[:-8]),
        ("gzip", gzip.compress(p.dumps(p.series())) + b"junk"),
        ("deflate", zlib.compress(p.dumps(p.series()))[2:]),
        ("deflate", b""),
        ("zstd1", zstandard.ZstdCompressor().compress(p.dumps(p.series()))[:-4]),
        ("zstd1", b"\x00\x01\x02\x03"),
        ("zstd1", _frames(p.dumps(p.series()))[:-3]),
        ("zstd1", _frames(p.dumps(p.series())) + b"junk"),
    ],
)
async def test_corrupt_streams_are_bad_requests(
    emu: Emu, tenant: Tenant, encoding: str, body: bytes
) -> None:
    answer = await p.submit(
        emu, tenant, "metrics", raw=body, headers={"Content-Encoding": encoding}
    )

    assert (answer.status_code, answer.json()) == (
        400,
        {"errors": [f"Malformed payload: the body is not a complete {encoding} stream"]},
    )


@pytest.mark.parametrize(
    ("encoding", "split"),
    [("gzip", _members), ("zstd1", _frames)],
    ids=["gzip members", "zstd frames"],
)
async def test_bodies_of_several_members_or_frames_are_whole(
    emu: Emu, tenant: Tenant, encoding: str, split: Callable[[bytes], bytes]
) -> None:
    """RFC 1952 lets a gzip file hold several members, and a zstd stream holds several frames
    (RFC 8878): the body is their concatenation."""
    answer = await p.submit(
        emu,
        tenant,
        "metrics",
        raw=split(p.dumps(p.series(3))),
        headers={"Content-Encoding": encoding},
    )

    assert answer.status_code == 202, answer.text
    [stored] = (await emu.intake(tenant.dd_oid, "metrics"))["items"]
    assert len(stored["item"]["points"]) == 3


@pytest.mark.parametrize("encoding", ["deflate", "gzip", "zstd"])
async def test_check_runs_arrive_compressed_as_the_agent_sends_them(
    emu: Emu, tenant: Tenant, encoding: str
) -> None:
    """The Agent compresses `/api/v1/check_run` like its metrics: zlib (`deflate`), gzip, or
    zstd under the header value `zstd` (datadog-agent `pkg/util/compression`)."""
    raw = p.dumps(p.service_checks(3))
    compressors: dict[str, Callable[[bytes], bytes]] = {
        "deflate": zlib.compress,
        "gzip": gzip.compress,
        "zstd": zstandard.ZstdCompressor().compress,
    }
    body = compressors[encoding](raw)

    answer = await p.submit(
        emu, tenant, "service_checks", raw=body, headers={"Content-Encoding": encoding}
    )

    assert (answer.status_code, answer.json()) == (202, {"status": "ok"})
    assert len((await emu.intake(tenant.dd_oid, "service_checks"))["items"]) == 3


async def test_encoding_names_are_case_insensitive(emu: Emu, tenant: Tenant) -> None:
    answer = await p.submit(
        emu,
        tenant,
        "metrics",
        raw=gzip.compress(p.dumps(p.series())),
        headers={"Content-Encoding": "GZIP"},
    )
    assert answer.status_code == 202


@pytest.mark.parametrize("signal", ["metrics", "logs", "events", "service_checks", "traces"])
async def test_malformed_json_is_a_bad_request(emu: Emu, tenant: Tenant, signal: str) -> None:
    answer = await p.submit(emu, tenant, signal, raw=b'{"series": [')

    assert answer.status_code == 400
    assert p.message(answer).startswith("Malformed payload: invalid JSON: ")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_json_routes_need_a_json_content_type(
    emu: Emu, tenant: Tenant, content_type: str | None
) -> None:
    headers = {"DD-API-KEY": tenant.api_key}
    if content_type is not None:
        headers["Content-Type"] = content_type
    answer = await emu.http.post(
        p.url("metrics", DOMAIN), content=p.dumps(p.series()), headers=headers
    )

    assert answer.status_code == 415
    assert "application/json" in answer.json()["errors"][0]


async def test_charset_parameter_is_fine(emu: Emu, tenant: Tenant) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    answer = await p.submit(emu, tenant, "logs", p.logs(), headers=headers)
    assert answer.status_code == 202
