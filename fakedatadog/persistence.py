"""The emulator's orgs and credentials kept across restarts (`fakedatadog --state-file`).

`ddbridge dev` restarts the emulator with every `make run`. Real Datadog does not forget the
orgs, grants and API keys a customer made, and the connections ddbridge keeps rely on them,
so in that use the emulator saves them when it stops and loads them when it starts: orgs,
client registrations, grants with their refresh tokens, API keys, monitors, incidents and
the secrets list. Access tokens are not kept (their expiry is on this process's monotonic
clock): ddbridge refreshes them as it would after an expiry. Telemetry, the request log,
faults and settings always start empty.

The file is the emulator's own, written by it (owner-readable only) under the data
directory it was given; pickle keeps the objects' shared references (a grant and its tokens)
without a schema of its own. Never point `--state-file` at a file from elsewhere.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

from fakedatadog.state import EmulatorState

log = logging.getLogger(__name__)

KEPT = ("orgs", "clients", "refresh_tokens", "api_keys", "monitors", "incidents", "secrets")
FORMAT = 1


def save(state: EmulatorState, path: Path) -> None:
    """Write what `KEPT` names to `path` (atomically: a reader sees the old or the new)."""
    kept = {"format": FORMAT, **{name: getattr(state, name) for name in KEPT}}
    scratch = path.with_suffix(".tmp")
    scratch.unlink(missing_ok=True)
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as sink:
        pickle.dump(kept, sink)
    scratch.replace(path)


def load(state: EmulatorState, path: Path) -> bool:
    """Restore a saved state into `state`; False (and nothing changed) if there is none."""
    try:
        with path.open("rb") as source:
            kept: dict[str, Any] = pickle.load(source)  # noqa: S301 - the emulator's own file
    except FileNotFoundError:
        return False
    if kept.get("format") != FORMAT:
        log.warning("ignoring %s: written by another version of the emulator", path)
        return False
    for name in KEPT:
        setattr(state, name, kept[name])
    return True
