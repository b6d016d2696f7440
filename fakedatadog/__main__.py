"""`python -m fakedatadog` / `fakedatadog`: serve the emulator until interrupted."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from fakedatadog.app import create_app


def main(argv: Sequence[str] | None = None) -> None:
    """Parse `--host`, `--port` and `--extra-sites` (comma-separated domains), then serve."""
    parser = argparse.ArgumentParser(prog="fakedatadog", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8126, help="TCP port to listen on")
    parser.add_argument(
        "--extra-sites",
        default="",
        help="comma-separated extra Datadog domains to trust, e.g. example-dd.com",
    )
    args = parser.parse_args(argv)
    extra = [domain for domain in args.extra_sites.split(",") if domain]
    uvicorn.run(create_app(extra), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
