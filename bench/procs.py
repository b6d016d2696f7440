"""Measuring the benchmark's child processes: CPU time and memory, by process id.

A process counts with its live descendants: `ddbridge api --workers N` is a supervisor and
N uvicorn processes, measured as one.
"""

from __future__ import annotations

from pathlib import Path

import psutil


def tree(pid: int) -> list[psutil.Process]:
    """The process and its live descendants (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, its live descendants and the children they
    waited for (0 if gone)."""
    total = 0.0
    for process in tree(pid):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def rss_bytes(pid: int) -> int:
    """Resident set size now, of the process and its descendants (0 if gone)."""
    total = 0
    for process in tree(pid):
        try:
            total += int(process.memory_info().rss)
        except psutil.Error:
            continue
    return total


def peak_rss_bytes(pid: int) -> int:
    """The kernel's high-water marks of RSS (`VmHWM`) of the process and its descendants,
    summed (0 if unknown)."""
    return sum(_peak(process.pid) for process in tree(pid))


def processes(pid: int) -> int:
    """How many processes the tree holds now."""
    return len(tree(pid))


def _peak(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
