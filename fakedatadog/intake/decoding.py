"""Turn a request body into JSON: `Content-Encoding` decompression under a size cap, then parsing.

Every failure is an `ApiError` with Datadog's status: 415 for an encoding the endpoint does not
take, 413 past a size limit, 400 for a corrupt stream or malformed JSON. Decompression never
produces more than the limit plus one byte, so a compression bomb costs nothing.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Collection
from typing import Any

import orjson
import zstandard

from fakedatadog.errors import ApiError

IDENTITY = "identity"
GZIP = "gzip"
DEFLATE = "deflate"
ZSTD = "zstd1"
AGENT_ZSTD = "zstd"
"""The Datadog Agent's name for zstd (`pkg/util/compression`); the API definitions say zstd1."""

_ZLIB_WBITS = {GZIP: 16 + zlib.MAX_WBITS, DEFLATE: zlib.MAX_WBITS}


def encoding_of(header: str | None) -> str:
    """The request's content coding, lower-cased; `identity` when the header is absent or empty."""
    value = (header or "").strip().lower()
    return value or IDENTITY


def too_large(what: str, limit: int) -> ApiError:
    """The 413 every limit answers with."""
    return ApiError(413, f"Payload too large: {what} is over the limit of {limit} bytes")


def decode(body: bytes, encoding: str, *, accepted: Collection[str], max_size: int | None) -> bytes:
    """`body` decompressed as `encoding` says, at most `max_size` bytes once decompressed
    (None: no limit, for endpoints that take no compression).

    `accepted` lists the codings the endpoint takes besides `identity`.
    """
    if encoding != IDENTITY and encoding not in accepted:
        allowed = ", ".join(sorted({IDENTITY, *accepted}))
        raise ApiError(415, f"Unsupported Content-Encoding {encoding!r}: use one of {allowed}")
    if encoding == IDENTITY:
        decoded = body
    else:
        assert max_size is not None, "an endpoint taking compression caps the decompressed size"
        if encoding in (ZSTD, AGENT_ZSTD):
            decoded = _unzstd(body, encoding, max_size)
        else:
            decoded = _unzlib(body, _ZLIB_WBITS[encoding], encoding, max_size)
    if max_size is not None and len(decoded) > max_size:
        raise too_large(f"the decompressed body ({len(decoded)} bytes or more)", max_size)
    return decoded


def parse_json(raw: bytes) -> Any:
    """The JSON document in `raw` (UTF-8); 400 with orjson's reason and position otherwise."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Malformed payload: invalid JSON: {exc}") from exc


def _corrupt(encoding: str) -> ApiError:
    return ApiError(400, f"Malformed payload: the body is not a complete {encoding} stream")


def _unzlib(body: bytes, wbits: int, encoding: str, max_size: int) -> bytes:
    """Inflate one or more concatenated members (gzip allows several), refusing trailing junk."""
    out = bytearray()
    rest = body
    while True:
        stream = zlib.decompressobj(wbits)
        try:
            out += stream.decompress(rest, max_size + 1 - len(out))
        except zlib.error as exc:
            raise _corrupt(encoding) from exc
        if len(out) > max_size:
            return bytes(out)
        if not stream.eof:
            raise _corrupt(encoding)
        rest = stream.unused_data
        if not rest:
            return bytes(out)


def _unzstd(body: bytes, encoding: str, max_size: int) -> bytes:
    """Decompress every frame, reading at most `max_size + 1` bytes; a cut-off frame (the
    last one included), or trailing bytes that are not a frame, is corrupt."""
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True)
    try:
        out = reader.read(max_size + 1)
    except zstandard.ZstdError as exc:
        raise _corrupt(encoding) from exc
    if len(out) > max_size:
        return out
    # The whole body decompresses to at most `max_size` bytes, so checking it frame by frame
    # without an output bound is safe.
    rest = body
    while rest:
        frame = zstandard.ZstdDecompressor().decompressobj()
        try:
            frame.decompress(rest)
        except zstandard.ZstdError as exc:
            raise _corrupt(encoding) from exc
        if not frame.eof:
            raise _corrupt(encoding)
        rest = frame.unused_data
    return out
