"""Sampling profiles of the API, worker and emulator while phase A runs (`--profile DIR`).

py-spy (`pip install py-spy`) records each process, with its subprocesses (the API's uvicorn
processes), for the phase's window into collapsed stacks (`DIR/<process>-<signal>.txt`). `python -m bench.profile FILE...` prints where the
samples went: by our own function (inclusive) and by leaf (self time).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE_HZ = 100
OWN_CODE = re.compile(r"\((?:service|worker|fakedatadog)/")
LINE = re.compile(r":\d+\)$")


def start(
    pids: dict[str, int], seconds: float, out_dir: Path, tag: str
) -> list[subprocess.Popen[bytes]]:
    """Start one `py-spy record` per process; empty if py-spy is not installed."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                str(RATE_HZ),
                "--format",
                "raw",
                "--nonblocking",
                "--subprocesses",
                "--output",
                str(out_dir / f"{name}-{tag}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def _frames(stack: str) -> list[str]:
    return [frame for frame in stack.split(";") if frame]


def summarize(path: Path, top: int = 25) -> list[str]:
    """Lines describing where the samples in one collapsed-stack file went."""
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        total += count
        if frames:
            leaves[frames[-1]] += count
        for function in {LINE.sub(")", frame) for frame in frames if OWN_CODE.search(frame)}:
            inclusive[function] += count
    lines = [f"{path.name}: {total} samples at {RATE_HZ} Hz"]
    lines.append("  inclusive, our functions (line numbers merged):")
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    lines.append("  self (leaf frames):")
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in leaves.most_common(top)]
    return lines


def main() -> None:
    for name in sys.argv[1:]:
        print("\n".join(summarize(Path(name))))


if __name__ == "__main__":
    main()
