"""`python -m fakedatadog` / `fakedatadog`: serve the emulator until interrupted."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

import uvicorn

from fakedatadog import persistence
from fakedatadog.app import create_app
from fakedatadog.gateway import ConnectionResetByFault
from fakedatadog.provisioning import seed_demo


def main(argv: Sequence[str] | None = None) -> None:
    """Parse `--host`, `--port`, `--extra-sites` (comma-separated domains), `--bench`, the
    demo seed options and `--state-file`, then serve."""
    parser = argparse.ArgumentParser(prog="fakedatadog", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8126, help="TCP port to listen on")
    parser.add_argument(
        "--extra-sites",
        default="",
        help="comma-separated extra Datadog domains to trust, e.g. example-dd.com",
    )
    parser.add_argument(
        "--bench",
        action="store_true",
        help="count intake items without validating or storing them (for load tests)",
    )
    parser.add_argument(
        "--demo-client",
        metavar="ID:SECRET",
        default=os.environ.get("FAKEDATADOG_DEMO_CLIENT"),
        help="seed demo orgs (one per site) and this published OAuth client on every site "
        "(default: $FAKEDATADOG_DEMO_CLIENT, which keeps the secret off the command line)",
    )
    parser.add_argument(
        "--demo-redirect-uri",
        default=os.environ.get(
            "FAKEDATADOG_DEMO_REDIRECT_URI", "http://127.0.0.1:8000/oauth/callback"
        ),
        help="the demo client's registered redirect URI",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="keep orgs and credentials here across restarts (see fakedatadog.persistence)",
    )
    args = parser.parse_args(argv)
    extra = [domain for domain in args.extra_sites.split(",") if domain]
    app = create_app(extra, bench=args.bench)
    state = app.state.emulator
    loaded = args.state_file is not None and persistence.load(state, args.state_file)
    if args.demo_client:
        client_id, _, secret = args.demo_client.partition(":")
        if not client_id or not secret:
            parser.error("--demo-client takes ID:SECRET")
        if not (loaded and state.registrations(client_id)):
            seed_demo(state, client_id, secret, args.demo_redirect_uri)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    logging.getLogger("uvicorn.error").addFilter(_not_a_fault_reset)
    # uvicorn raises the SIGTERM it stopped on again once done: end through `finally` instead.
    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.Server(config).run()
    finally:
        if args.state_file is not None:
            persistence.save(state, args.state_file)


def _exit(_signum: int, _frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


def _not_a_fault_reset(record: logging.LogRecord) -> bool:
    """Drop uvicorn's "Exception in ASGI application" for resets the emulator made on purpose."""
    return record.exc_info is None or not isinstance(record.exc_info[1], ConnectionResetByFault)


if __name__ == "__main__":
    main()
