"""A process-wide budget of bytes: callers hold a share while they work, and wait in turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ByteBudget:
    """At most `capacity` bytes held at once; waiters are served first come, first served.

    A request larger than the whole budget holds all of it (it runs alone), so nothing waits
    forever. First come, first served means a large hold is not starved by a stream of small
    ones: only the waiter at the head of the line waits for room, the others wait for it.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._line = asyncio.Lock()
        self._room = asyncio.Condition()

    @property
    def held(self) -> int:
        return self.capacity - self._free

    @asynccontextmanager
    async def hold(self, size: int, wait_seconds: float) -> AsyncIterator[None]:
        """Hold `size` bytes (at most the capacity) for the block, once they are free.

        Raises `TimeoutError` if they are not free within `wait_seconds`; the budget is then
        as it was.
        """
        size = min(size, self.capacity)
        if size <= 0:
            yield
            return
        async with asyncio.timeout(wait_seconds), self._line, self._room:
            await self._room.wait_for(lambda: self._free >= size)
            self._free -= size
        try:
            yield
        finally:
            async with self._room:
                self._free += size
                self._room.notify_all()
