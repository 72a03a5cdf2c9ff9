"""One check at a time per key and process, shared by every socket that asks for it.

A user's 1,000 sockets in one process re-check the same token and memberships: each asks
`SharedChecks.run(key, since, call)` and gets the result of a check that started at or after
`since` (a running one is joined), so the database sees one read per user per interval instead
of one per socket. A credentials nudge passes its own id in the key, so all sockets nudged by one
message share one check that started after that message arrived (hence after the change).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any


class SharedChecks:
    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        # key -> (monotonic start, the check's future)
        self._entries: dict[Any, tuple[float, asyncio.Future[Any]]] = {}
        self.started = 0

    async def run(self, key: Any, since: float, call: Callable[[], Awaitable[Any]]) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._entries.get(key)
        if entry is None or entry[0] < since or entry[1].get_loop() is not loop:
            entry = (time.monotonic(), asyncio.ensure_future(call()))
            self._entries[key] = entry
            self.started += 1
            entry[1].add_done_callback(functools.partial(self._settled, key))
            if len(self._entries) > self.max_entries:
                self._prune()
        # shield: one socket closing (its task cancelled) must not cancel its siblings' check.
        return await asyncio.shield(entry[1])

    def _settled(self, key: Any, future: asyncio.Future[Any]) -> None:
        # A failed check is not reused: the next caller tries again.
        if (future.cancelled() or future.exception() is not None) and (
            self._entries.get(key, (0.0, None))[1] is future
        ):
            del self._entries[key]

    def _prune(self) -> None:
        # Finished checks are only kept to be reused; dropping them costs a check at most.
        for key in [k for k, (_, future) in self._entries.items() if future.done()]:
            del self._entries[key]
