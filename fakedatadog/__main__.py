"""`python -m fakedatadog` / `fakedatadog`: serve the emulator until interrupted."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import uvicorn

from fakedatadog.app import create_app
from fakedatadog.gateway import ConnectionResetByFault


def main(argv: Sequence[str] | None = None) -> None:
    """Parse `--host`, `--port`, `--extra-sites` (comma-separated domains) and `--bench`,
    then serve."""
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
    args = parser.parse_args(argv)
    extra = [domain for domain in args.extra_sites.split(",") if domain]
    app = create_app(extra, bench=args.bench)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    logging.getLogger("uvicorn.error").addFilter(_not_a_fault_reset)
    uvicorn.Server(config).run()


def _not_a_fault_reset(record: logging.LogRecord) -> bool:
    """Drop uvicorn's "Exception in ASGI application" for resets the emulator made on purpose."""
    return record.exc_info is None or not isinstance(record.exc_info[1], ConnectionResetByFault)


if __name__ == "__main__":
    main()
