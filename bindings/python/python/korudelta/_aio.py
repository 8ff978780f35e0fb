"""The asyncio form of every way in: the blocking object's methods as coroutines that run the
blocking call in the running loop's default executor (`asyncio.to_thread`), so the loop never
waits on the store or the network and we start no loop or thread of our own."""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, List, Mapping, Optional

from ._args import KeyArg, WriteArg
from .types import BatchWritten, ChangesPage, Entry, Found, HistoryPage, KeysPage, Moment, Written


class AsyncApi:
    """The database's methods as coroutines over a blocking form (`Database` or `Client`)."""

    __slots__ = ("_sync",)

    def __init__(self, sync: Any) -> None:
        self._sync = sync

    async def put(self, namespace: str, key: str, value: Any, *, if_match: Optional[str] = None) -> Written:
        """Writes `value` as the key's new version (see `Database.put`)."""
        return await asyncio.to_thread(self._sync.put, namespace, key, value, if_match=if_match)

    async def get(self, namespace: str, key: str) -> Entry:
        """The key's latest version (see `Database.get`)."""
        return await asyncio.to_thread(self._sync.get, namespace, key)

    async def delete(self, namespace: str, key: str, *, if_match: Optional[str] = None) -> Written:
        """Writes a delete version (see `Database.delete`)."""
        return await asyncio.to_thread(self._sync.delete, namespace, key, if_match=if_match)

    async def history(
        self, namespace: str, key: str, *, cursor: Optional[str] = None, limit: Optional[int] = None
    ) -> HistoryPage:
        """A page of the key's versions (see `Database.history`)."""
        return await asyncio.to_thread(self._sync.history, namespace, key, cursor=cursor, limit=limit)

    async def get_at(self, namespace: str, key: str, at: Moment) -> Entry:
        """The version current at `at` (see `Database.get_at`)."""
        return await asyncio.to_thread(self._sync.get_at, namespace, key, at)

    async def query(self, namespace: str, query: Optional[Mapping[str, Any]] = None) -> Any:
        """Answers a query (see `Database.query`)."""
        return await asyncio.to_thread(self._sync.query, namespace, query)

    async def batch_put(self, writes: Iterable[WriteArg]) -> BatchWritten:
        """Writes every entry as one record (see `Database.batch_put`)."""
        return await asyncio.to_thread(self._sync.batch_put, list(writes))

    async def batch_get(self, keys: Iterable[KeyArg]) -> List[Found]:
        """Reads many keys (see `Database.batch_get`)."""
        return await asyncio.to_thread(self._sync.batch_get, list(keys))

    async def changes(self, since: int = 0, *, limit: Optional[int] = None) -> ChangesPage:
        """Committed records after LSN `since` (see `Database.changes`)."""
        return await asyncio.to_thread(self._sync.changes, since, limit=limit)

    async def keys(
        self,
        namespace: str,
        *,
        prefix: str = "",
        cursor: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> KeysPage:
        """A page of live keys (see `Database.keys`)."""
        return await asyncio.to_thread(self._sync.keys, namespace, prefix=prefix, cursor=cursor, limit=limit)

    async def namespaces(self) -> List[str]:
        """Namespaces with at least one live key (see `Database.namespaces`)."""
        return await asyncio.to_thread(self._sync.namespaces)

    async def close(self) -> None:
        """Closes the database or the client's connections."""
        await asyncio.to_thread(self._sync.close)

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
