"""How `ddbridge dev` tells the other commands run in the same clone where it runs.

While it runs, `ddbridge dev` keeps `<data dir>/dev.env`: every `DDBRIDGE_*` setting its API
and worker use (the database and Redis URLs, the generated dev secrets), one `NAME=value`
per line, readable by its owner only, removed when it stops. An operator command
(`ddbridge connections list`, ...) run without `DDBRIDGE_DATABASE_URL` takes its settings
from there, so it reads the dev stack's database; what the environment sets still wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

FILE_NAME = "dev.env"


@contextmanager
def published(data_dir: Path, env: Mapping[str, str]) -> Iterator[Path]:
    """Write `env`'s `DDBRIDGE_*` settings to `<data_dir>/dev.env` until exit."""
    path = data_dir / FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    lines = [
        f"{name}={value}\n" for name, value in sorted(env.items()) if name.startswith("DDBRIDGE_")
    ]
    path.write_text("".join(lines))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def adopt(data_dir: Path) -> bool:
    """Set, from a running dev stack's `dev.env`, the variables the environment leaves unset;
    whether there was one."""
    try:
        text = (data_dir / FILE_NAME).read_text()
    except FileNotFoundError:
        return False
    for line in text.splitlines():
        name, separator, value = line.partition("=")
        if separator and name.startswith("DDBRIDGE_"):
            os.environ.setdefault(name, value)
    return True
