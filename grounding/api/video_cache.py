"""Encoded videos kept in memory, made by a bounded pool, one lock per video (``EncodedCache``).

Why not one lock for all: encoding a long video takes minutes; grounding a video already encoded takes
milliseconds and must not wait for it. Here a request for a cached video returns at once; a request
for a missing one takes that video's lock (so concurrent requests for it encode it once) and hands the
work to a pool of ``workers`` threads; when ``max_waiting`` encodings are already queued or running,
it is refused with ``Busy`` rather than piling up threads and memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class Busy(Exception):
    """Too many encodings queued; the caller should answer 503 and try later."""


class EncodedCache:
    def __init__(self, capacity: int, workers: int = 1, max_waiting: int = 4) -> None:
        if capacity < 1 or workers < 1 or max_waiting < workers:
            raise ValueError(f"capacity {capacity}, workers {workers}, max_waiting {max_waiting}: "
                             "need capacity >= 1, workers >= 1 and max_waiting >= workers")
        self.capacity = capacity
        self.max_waiting = max_waiting
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, number of requests holding or awaiting it]
        self._guard = threading.Lock()
        self._waiting = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="encode")

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        """The value for ``key``, made by ``make()`` on the pool when missing (raises what ``make`` raises)."""
        found = self._lookup(key)
        if found is not None:
            return found
        lock = self._acquire_lock(key)
        try:
            with lock:
                found = self._lookup(key)
                if found is not None:
                    return found
                with self._guard:
                    if self._waiting >= self.max_waiting:
                        raise Busy(f"{self._waiting} videos are being encoded; try again in a minute")
                    self._waiting += 1
                try:
                    value = self._pool.submit(make).result()
                finally:
                    with self._guard:
                        self._waiting -= 1
                self._store(key, value)
                return value
        finally:
            self._release_lock(key)

    def drop(self, key: str) -> None:
        with self._guard:
            self._items.pop(key, None)

    def keys(self) -> list[str]:
        with self._guard:
            return list(self._items)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _lookup(self, key: str) -> Any:
        with self._guard:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def _store(self, key: str, value: Any) -> None:
        with self._guard:
            self._items[key] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def _acquire_lock(self, key: str) -> threading.Lock:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
            return entry[0]

    def _release_lock(self, key: str) -> None:
        with self._guard:
            entry = self._locks[key]
            entry[1] -= 1
            if not entry[1]:
                del self._locks[key]  # the lock table never outgrows the requests in flight
