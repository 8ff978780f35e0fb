"""The embedded database: the store runs inside this process (the `_native` extension over the
Rust `BlockingDb`). `Database` is the blocking form; `KoruDelta` the asyncio form, which runs
each blocking call in the running loop's default executor (`asyncio.to_thread`)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Mapping, Optional, Union

from . import _native
from ._aio import AsyncApi
from ._args import KeyArg, WriteArg, dumps, keys_items, query_body, writes_items
from .errors import error_for
from .types import (
    BatchWritten,
    ChangesPage,
    Entry,
    Found,
    HistoryPage,
    KeysPage,
    Moment,
    Written,
    format_timestamp,
)

if TYPE_CHECKING:
    from .client import AsyncClient

__all__ = ["Database", "KoruDelta"]

PathLike = Union[str, "os.PathLike[str]"]


def _call(method: Callable[..., str], *args: Any) -> Any:
    """Runs a native call (it releases the GIL) and reads its JSON answer; a native failure
    becomes the typed exception for its code."""
    try:
        answer = method(*args)
    except _native.NativeError as e:
        code, message = e.args
        raise error_for(code, message) from None
    return json.loads(answer)


class Database:
    """An embedded database, blocking form. Every call runs on the caller's thread and releases
    the GIL while the store works, so other Python threads run meanwhile. Thread-safe."""

    __slots__ = ("_db", "path")

    def __init__(self, native: "_native.Database", path: str) -> None:
        self._db = native
        self.path = path

    @classmethod
    def open(cls, path: PathLike) -> "Database":
        """Opens (or creates) the database in the directory `path`, replaying its log."""
        path = os.fspath(path)
        try:
            native = _native.Database.open(path)
        except _native.NativeError as e:
            code, message = e.args
            raise error_for(code, message) from None
        return cls(native, path)

    def put(self, namespace: str, key: str, value: Any, *, if_match: Optional[str] = None) -> Written:
        """Writes `value` (any JSON-serializable object) as the key's new version; with
        `if_match`, only if that version is still the key's latest (else VersionMismatchError)."""
        return Written(_call(self._db.put, namespace, key, dumps(value), if_match))

    def get(self, namespace: str, key: str) -> Entry:
        """The key's latest version (NotFoundError when it never existed or was deleted)."""
        return Entry(_call(self._db.get, namespace, key))

    def delete(self, namespace: str, key: str, *, if_match: Optional[str] = None) -> Written:
        """Writes a delete version (NotFoundError when the key is not live)."""
        return Written(_call(self._db.delete, namespace, key, if_match))

    def history(
        self, namespace: str, key: str, *, cursor: Optional[str] = None, limit: Optional[int] = None
    ) -> HistoryPage:
        """A page of the key's versions, oldest first, deletes included."""
        return HistoryPage(_call(self._db.history, namespace, key, cursor, limit))

    def get_at(self, namespace: str, key: str, at: Moment) -> Entry:
        """The version current at `at` (a `datetime`, naive meaning UTC, or RFC 3339 text)."""
        return Entry(_call(self._db.get_at, namespace, key, format_timestamp(at)))

    def query(self, namespace: str, query: Optional[Mapping[str, Any]] = None) -> Any:
        """Answers a query (the HTTP API's query body as a dict) with the HTTP answer as plain
        objects: `{"results": [...], "total", ...}` or `{"groups": [...], ...}`."""
        return _call(self._db.query, namespace, dumps(query_body(query or {})))

    def batch_put(self, writes: Iterable[WriteArg]) -> BatchWritten:
        """Writes every entry as one record: all or none. Each write is
        `{"namespace", "key", "value"}`, `{"namespace", "key", "delete": True}` or a tuple
        `(namespace, key, value)`."""
        return BatchWritten(_call(self._db.batch_put, dumps(writes_items(writes))))

    def batch_get(self, keys: Iterable[KeyArg]) -> List[Found]:
        """Reads many keys, each now or as of its own moment: `{"namespace", "key", "at"?}` or a
        tuple `(namespace, key[, at])`; absent keys come back with `found` False."""
        body = _call(self._db.batch_get, dumps(keys_items(keys)))
        return [Found(r) for r in body["results"]]

    def changes(self, since: int = 0, *, limit: Optional[int] = None) -> ChangesPage:
        """Committed records after LSN `since`, in order."""
        return ChangesPage(_call(self._db.changes, since, limit))

    def keys(
        self,
        namespace: str,
        *,
        prefix: str = "",
        cursor: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> KeysPage:
        """A page of live keys starting with `prefix`, in byte order."""
        return KeysPage(_call(self._db.keys, namespace, prefix, cursor, limit))

    def namespaces(self) -> List[str]:
        """Namespaces with at least one live key, sorted."""
        return list(_call(self._db.namespaces)["namespaces"])

    def close(self) -> None:
        """Writes and fsyncs what is queued and stops the store; later calls raise
        UnavailableError (`shutting_down`)."""
        self._db.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({self.path!r})"


class KoruDelta(AsyncApi):
    """An embedded database, asyncio form: `db = await KoruDelta.start_with_path("./data")`.

    Each method is a coroutine that runs the blocking call in the running loop's default executor
    (`asyncio.to_thread`); no event loop or thread of our own. `KoruDelta.open(path)` gives the
    blocking form and `KoruDelta.connect(url, token)` an asyncio client of a server."""

    __slots__ = ()

    def __init__(self, database: Database) -> None:
        super().__init__(database)

    @classmethod
    async def start_with_path(cls, path: PathLike) -> "KoruDelta":
        """Opens (or creates) the database in the directory `path`."""
        return cls(await asyncio.to_thread(Database.open, path))

    @staticmethod
    def open(path: PathLike) -> Database:
        """Opens the database in `path`, blocking form (no asyncio)."""
        return Database.open(path)

    @staticmethod
    async def connect(url: str, token: Optional[str] = None, **options: Any) -> "AsyncClient":
        """An asyncio client of the server or hosted cluster at `url` (see `korudelta.connect`)."""
        from .client import AsyncClient, Client

        return AsyncClient(Client(url, token, **options))

    @property
    def blocking(self) -> Database:
        """The blocking form over the same store."""
        return self._sync  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"KoruDelta({self._sync.path!r})"  # type: ignore[attr-defined]

