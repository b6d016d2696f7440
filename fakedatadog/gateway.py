"""The gateway in front of every Datadog host: record, refuse foreign hosts, inject faults.

For each request outside the control plane, in this order:
1. record it in the request log (its status is filled in when the answer starts; in bench mode
   the body is not kept), and, when its credential names an org, count it in flight for
   (org, path) until its answer is complete;
2. answer 421 for a host that is not Datadog's, and 495 for one whose TLS check would fail
   (plain HTTP has no handshake to fail, so the status stands in for it);
3. apply the oldest matching fault: sleep its delay, then break the connection if it is a
   reset, else answer its status if it has one;
4. hand the request to the routes, with its body replayed.

A reset cannot be expressed in ASGI, so the gateway starts a 200 answer without a length,
sends one byte of body and raises `ConnectionResetByFault`: uvicorn then closes the socket
mid-answer. httpx raises `httpx.RemoteProtocolError` ("peer closed connection without sending
complete message body"), a `TransportError`, as for a connection dropped by a proxy. The
request log keeps `status` None for it. `fakedatadog.__main__` keeps uvicorn from logging
the traceback.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fakedatadog.faults import org_of_request, take_fault
from fakedatadog.hosts import HostKind, classify, tls_mismatch_message
from fakedatadog.params import parse_params
from fakedatadog.state import EmulatorState, Fault, InFlight, RecordedRequest

CONTROL_PREFIX = "/_emulator/"


class ConnectionResetByFault(Exception):
    """Raised after a reset fault's partial answer, so that the server drops the connection."""


class Gateway:
    """ASGI middleware; `state` is the app's one `EmulatorState`."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        record = _record(scope, b"" if self.state.settings.bench else body)
        self.state.requests.append(record)
        flight = _Flight(
            self.state.in_flight, org_of_request(self.state, record.headers, {}), record.path
        )
        try:
            await self._answer(scope, receive, send, record, body, flight)
        finally:
            flight.land()

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        record: RecordedRequest,
        body: bytes,
        flight: _Flight,
    ) -> None:
        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                flight.land()  # the client may send its next request before the app returns
            await send(message)

        replay = _replay(body, receive)
        answer = self._refusal(record.host)
        if answer is None:
            fault = await self._fault(record, body)
            if fault is not None and fault.reset:
                await _reset_connection(send)
            if fault is not None and fault.status is not None:
                answer = _fault_response(fault)
        if answer is not None:
            await answer(scope, replay, send_recording)
        else:
            await self.app(scope, replay, send_recording)

    def _refusal(self, host: str) -> Response | None:
        kind = classify(self.state, host).kind
        if kind is HostKind.UNKNOWN:
            return JSONResponse({"errors": [f"Misdirected request: unknown host {host!r}"]}, 421)
        if kind is HostKind.TLS_MISMATCH:
            return PlainTextResponse(tls_mismatch_message(host), 495)
        return None

    async def _fault(self, record: RecordedRequest, body: bytes) -> Fault | None:
        """Take the matching fault, if any, once its delay has passed.

        The org comes from the credential headers first; the body is parsed for OAuth
        parameters only when they name none (intake bodies are large).
        """
        org = None
        if any(fault.dd_oid is not None for fault in self.state.faults):
            params = dict(parse_qsl(record.query))
            org = org_of_request(self.state, record.headers, params)
            if org is None:
                params.update(parse_params(record.headers.get("content-type"), body))
                org = org_of_request(self.state, record.headers, params)
        fault = take_fault(self.state, record.host, record.path, org)
        if fault is not None and fault.delay_seconds > 0:
            await asyncio.sleep(fault.delay_seconds)
        return fault


class _Flight:
    """One request counted in flight for (org, path) from arrival until its answer is
    complete (or the connection breaks); requests naming no org are not counted."""

    def __init__(self, in_flight: InFlight, org: str | None, path: str) -> None:
        self._in_flight = in_flight  # the one entered, even if the state is reset meanwhile
        self._key = None if org is None else (org, path)
        if self._key is not None:
            in_flight.enter(self._key)

    def land(self) -> None:
        if self._key is not None:
            self._in_flight.leave(self._key)
            self._key = None


async def _reset_connection(send: Send) -> None:
    """Start an answer, then abort it (see the module docstring)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise ConnectionResetByFault


def _fault_response(fault: Fault) -> Response:
    assert fault.status is not None
    if fault.body is None:
        return Response(status_code=fault.status, headers=fault.headers)
    return JSONResponse(fault.body, status_code=fault.status, headers=fault.headers)


def _record(scope: Scope, body: bytes) -> RecordedRequest:
    host, _, rest = scope["path"].removeprefix("/").partition("/")
    host = host.lower()  # host names are case-insensitive; faults and filters match lower case
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return RecordedRequest(
        method=scope["method"],
        host=host,
        path=f"/{rest}",
        query=scope["query_string"].decode("latin-1"),
        headers=headers,
        body=body.decode("utf-8", errors="replace"),
    )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
