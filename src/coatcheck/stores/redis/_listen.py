"""The Redis store's release notices: one pub/sub subscription per store and process.

The store's scripts publish a storage key on ``<prefix>released`` when they free a lock
that someone announced they wait for (see :mod:`._scripts`). :class:`Feed` (sync) and
:class:`AsyncFeed` (asyncio) subscribe to that channel on a connection of their own and hand
the keys to :mod:`coatcheck.stores._handover`, which wakes the waiters.

Classic pub/sub, on every topology: on a Cluster a classic ``PUBLISH`` reaches subscribers
on every node, so one subscription serves every slot; under Sentinel a replica relays its
master's messages, so a subscription survives a failover. redis-py re-subscribes by itself
after a dropped connection; the confirmation it then receives is passed on as None, "notices
may have been lost", which wakes every waiter to read again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any


def _confirmed(message: Any) -> bool:
    return message is not None and message["type"] == "subscribe"


def _parse(message: Any) -> tuple[bool, str | None]:
    """(meaningful, key): a released key, None for a re-subscription, or nothing at all."""
    kind = message["type"]
    if kind == "message":
        data = message["data"]
        return True, data.decode() if isinstance(data, bytes) else str(data)
    return kind == "subscribe", None


class Feed:
    """The sync subscription (``redis``); :meth:`open` subscribes it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pubsub: Any = None

    def open(self, channel: str, timeout: float) -> Feed:
        self._pubsub = self._client.pubsub()
        try:
            self._pubsub.subscribe(channel)
            deadline = time.monotonic() + timeout
            while not _confirmed(self._pubsub.get_message(timeout=timeout)):
                if time.monotonic() >= deadline:
                    raise TimeoutError("redis did not confirm the subscription")
        except BaseException:
            self._pubsub.close()
            raise
        return self

    def receive(self, timeout: float) -> Iterator[str | None]:
        message = self._pubsub.get_message(timeout=timeout)
        while message is not None:
            meaningful, key = _parse(message)
            if meaningful:
                yield key
            message = self._pubsub.get_message(timeout=0)  # the rest of what has arrived

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()


class AsyncFeed:
    """The asyncio subscription (``redis.asyncio``); :meth:`open` subscribes it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pubsub: Any = None

    async def open(self, channel: str, timeout: float) -> AsyncFeed:
        initialize = getattr(self._client, "initialize", None)
        if initialize is not None:  # a Cluster client learns its nodes here
            await initialize()
        self._pubsub = self._client.pubsub()
        try:
            await self._pubsub.subscribe(channel)
            deadline = time.monotonic() + timeout
            while not _confirmed(await self._pubsub.get_message(timeout=timeout)):
                if time.monotonic() >= deadline:
                    raise TimeoutError("redis did not confirm the subscription")
        except BaseException:
            await self._pubsub.aclose()
            raise
        return self

    async def receive(self, timeout: float) -> AsyncIterator[str | None]:
        message = await self._pubsub.get_message(timeout=timeout)
        while message is not None:
            meaningful, key = _parse(message)
            if meaningful:
                yield key
            message = await self._pubsub.get_message(timeout=0)

    async def close(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
