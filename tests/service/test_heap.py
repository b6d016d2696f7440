"""`service.heap.settle`: what start-up built is frozen, young collections are rarer (run in a
process of its own, so this test process keeps Python's defaults)."""

from __future__ import annotations

import json
import subprocess
import sys

from service.heap import YOUNG_THRESHOLD


def test_settle_freezes_start_up_and_raises_the_young_threshold() -> None:
    script = (
        "import gc, json; from service import heap; before = gc.get_threshold(); "
        "assert gc.get_freeze_count() == 0; heap.settle(); "
        "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    before, after, frozen = json.loads(out)
    assert after == [YOUNG_THRESHOLD, before[1], before[2]]
    assert frozen > 1_000  # what the interpreter built at start-up, none before
