"""The client of a KoruDelta server or hosted cluster, over HTTP (the standard library's
http.client; no third-party dependency). `Client` is the blocking form, `AsyncClient` the asyncio
form; both answer with the same objects and raise the same typed errors as the embedded
database."""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import quote, unquote, urlencode, urlsplit

from . import __version__
from ._aio import AsyncApi
from ._args import KeyArg, WriteArg, dumps, keys_items, query_body, writes_items
from .errors import ConnectionFailedError, KoruDeltaError, error_for
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

__all__ = ["Client", "AsyncClient", "connect", "RETRY_CODES"]

#: Error codes that mean "nothing was done, ask again soon": an election, a stopping or
#: catching-up member, the rate limit. (`outcome_unknown` is not among them: the write may have
#: been applied.)
RETRY_CODES = frozenset({"no_leader", "shutting_down", "catching_up", "rejoining", "rate_limited"})

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Client:
    """A blocking client of the server at `url` (`http://host:port` or `https://...`, with an
    optional path prefix). Thread-safe: it keeps a small pool of kept-alive connections.

    `token` is sent as `Authorization: Bearer <token>`. A token may instead ride in the URL's
    user info (`http://token:SECRET@host:port`), sent as Basic auth, which the server reads as
    the same bearer token. Requests answered 503 `no_leader`/`shutting_down`/`catching_up` or 429
    `rate_limited` are retried up to `retries` times, waiting what `Retry-After` says (at most
    `max_retry_wait` seconds a time)."""

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        max_retry_wait: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self._prefix = parts.path.rstrip("/") + "/api/v1"
        self._timeout = timeout
        self._retries = retries
        self._max_retry_wait = max_retry_wait
        self._headers = {"Accept": "application/json", "User-Agent": f"korudelta-python/{__version__}"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        elif parts.username is not None or parts.password is not None:
            user_pass = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            basic = base64.b64encode(user_pass.encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {basic}"
        self._idle: List[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- the database's methods ------------------------------------------------------------

    def put(self, namespace: str, key: str, value: Any, *, if_match: Optional[str] = None) -> Written:
        """Writes `value` as the key's new version; with `if_match`, only over that version."""
        body = self._request("PUT", self._key_path(namespace, key), {"value": value}, if_match)
        return Written(body)

    def get(self, namespace: str, key: str) -> Entry:
        """The key's latest version (NotFoundError when absent or deleted)."""
        return Entry(self._request("GET", self._key_path(namespace, key)))

    def delete(self, namespace: str, key: str, *, if_match: Optional[str] = None) -> Written:
        """Writes a delete version (NotFoundError when the key is not live)."""
        return Written(self._request("DELETE", self._key_path(namespace, key), None, if_match))

    def history(
        self, namespace: str, key: str, *, cursor: Optional[str] = None, limit: Optional[int] = None
    ) -> HistoryPage:
        """A page of the key's versions, oldest first, deletes included."""
        path = self._key_path(namespace, key) + "/history" + _params(cursor=cursor, limit=limit)
        return HistoryPage(self._request("GET", path), cursor)

    def get_at(self, namespace: str, key: str, at: Moment) -> Entry:
        """The version current at `at` (a `datetime`, naive meaning UTC, or RFC 3339 text)."""
        path = self._key_path(namespace, key) + "/at/" + quote(format_timestamp(at), safe="")
        return Entry(self._request("GET", path))

    def query(self, namespace: str, query: Optional[Mapping[str, Any]] = None) -> Any:
        """Answers a query body with the HTTP answer as plain objects."""
        return self._request("POST", f"{self._prefix}/{_seg(namespace)}/query", query_body(query or {}))

    def batch_put(self, writes: Iterable[WriteArg]) -> BatchWritten:
        """Writes every entry as one record: all or none."""
        return BatchWritten(self._request("POST", f"{self._prefix}/batch", {"writes": writes_items(writes)}))

    def batch_get(self, keys: Iterable[KeyArg]) -> List[Found]:
        """Reads many keys, each now or as of its own moment."""
        body = self._request("POST", f"{self._prefix}/batch/get", {"keys": keys_items(keys)})
        return [Found(r) for r in body["results"]]

    def changes(self, since: int = 0, *, limit: Optional[int] = None) -> ChangesPage:
        """Committed records after LSN `since`, in order."""
        return ChangesPage(self._request("GET", f"{self._prefix}/changes" + _params(since=since, limit=limit)))

    def keys(
        self,
        namespace: str,
        *,
        prefix: str = "",
        cursor: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> KeysPage:
        """A page of live keys starting with `prefix`, in byte order."""
        query = _params(prefix=prefix or None, cursor=cursor, limit=limit)
        return KeysPage(self._request("GET", f"{self._prefix}/{_seg(namespace)}/keys{query}"))

    def namespaces(self) -> List[str]:
        """Namespaces with at least one live key, sorted."""
        return list(self._request("GET", f"{self._prefix}/namespaces")["namespaces"])

    def close(self) -> None:
        """Closes the kept-alive connections; later calls raise ConnectionFailedError."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self._host}:{self._port})"

    # -- HTTP ------------------------------------------------------------------------------

    def _key_path(self, namespace: str, key: str) -> str:
        return f"{self._prefix}/{_seg(namespace)}/{_seg(key)}"

    def _request(
        self, method: str, path: str, body: Optional[Dict[str, Any]] = None, if_match: Optional[str] = None
    ) -> Any:
        """Sends one request (retrying as the class says) and answers its JSON body, or raises
        the typed error of its `{"error": {"code", "message"}}` body."""
        headers = dict(self._headers)
        payload = None
        if body is not None:
            payload = dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if if_match is not None:
            headers["If-Match"] = if_match
        attempt = 0
        while True:
            status, retry_after, data = self._exchange(method, path, payload, headers)
            if 200 <= status < 300:
                return json.loads(data) if data else {}
            error = _error(status, data)
            if error.code not in RETRY_CODES or attempt >= self._retries:
                raise error
            time.sleep(self._retry_wait(attempt, retry_after))
            attempt += 1

    def _retry_wait(self, attempt: int, retry_after: Optional[str]) -> float:
        """What `Retry-After` asks (seconds or an HTTP date), else a jittered exponential
        backoff; never more than `max_retry_wait`."""
        wait: Optional[float] = None
        if retry_after:
            try:
                wait = float(retry_after)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(retry_after)
                    wait = (when - datetime.now(timezone.utc)).total_seconds()
                except (TypeError, ValueError):
                    wait = None
        if wait is None:
            wait = 0.05 * (2**attempt) * (0.5 + random.random())
        return max(0.0, min(wait, self._max_retry_wait))

    def _exchange(
        self, method: str, path: str, payload: Optional[bytes], headers: Dict[str, str]
    ) -> Tuple[int, Optional[str], bytes]:
        """One request on a pooled connection. A kept-alive connection the server closed while
        idle fails before any answer: the request is sent again once on a new connection (it was
        never processed). A refused connection is retried with the same bound as a 503."""
        refused = 0
        while True:
            conn, reused = self._acquire()
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, OSError) as e:
                conn.close()
                if reused and isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    continue
                if isinstance(e, ConnectionRefusedError) and refused < self._retries:
                    time.sleep(self._retry_wait(refused, None))
                    refused += 1
                    continue
                raise ConnectionFailedError(
                    "connection_failed", f"{method} {self._host}:{self._port}{path}: {e}"
                ) from e
            if response.will_close:
                conn.close()
            else:
                self._release(conn)
            return response.status, response.getheader("Retry-After"), data

    def _acquire(self) -> Tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._closed:
                raise ConnectionFailedError("connection_failed", "the client is closed")
            if self._idle:
                return self._idle.pop(), True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self._timeout), False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()


class AsyncClient(AsyncApi):
    """An asyncio client: `Client`'s methods as coroutines, each run in the running loop's
    default executor (`asyncio.to_thread`). Made by `await KoruDelta.connect(url, token)`."""

    __slots__ = ()

    def __init__(self, client: Client) -> None:
        super().__init__(client)

    @property
    def blocking(self) -> Client:
        """The blocking client underneath (same connections)."""
        return self._sync  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"AsyncClient({self._sync!r})"


def connect(url: str, token: Optional[str] = None, **options: Any) -> Client:
    """A blocking client of the server or hosted cluster at `url` (see `Client`)."""
    return Client(url, token, **options)


def _seg(name: str) -> str:
    """A namespace or key as one path segment (everything percent-encoded but unreserved)."""
    return quote(name, safe="")


def _params(**params: Any) -> str:
    present = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(present) if present else ""


def _error(status: int, data: bytes) -> KoruDeltaError:
    """The typed error of an error answer; a body without our shape (a proxy's page) gets a
    code from its status."""
    try:
        err = json.loads(data)["error"]
        return error_for(str(err["code"]), str(err.get("message", "")), status)
    except (ValueError, KeyError, TypeError):
        text = data[:200].decode("utf-8", "replace")
        fallback = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limited"}
        return error_for(fallback.get(status, f"http_{status}"), text or f"HTTP {status}", status)
