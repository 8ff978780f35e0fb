"""Answers of the database's calls, the same whether they came from the embedded store or a
server: each is built from the HTTP API's body for the call, and `to_dict()` gives that body
back (timestamps as RFC 3339 text), which is what the conformance vectors compare."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Union

__all__ = [
    "Written",
    "Entry",
    "HistoryPage",
    "KeysPage",
    "BatchResult",
    "BatchWritten",
    "Found",
    "ChangeOp",
    "Change",
    "ChangesPage",
    "parse_timestamp",
    "format_timestamp",
]

Moment = Union[datetime, str]


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp (ours: UTC, microseconds, `Z`) as an aware `datetime` in UTC."""
    if len(text) == 27 and text[-1] == "Z":
        # Ours (`2026-01-02T03:04:05.123456Z`): every Python >= 3.9 reads it without help.
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python < 3.11 reads only 3 or 6 fraction digits: pad or cut to microseconds.
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{(frac + '000000')[:6]}{tail}"
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def format_timestamp(moment: Moment) -> str:
    """A moment as our RFC 3339 text: UTC, microseconds, `Z`. A naive `datetime` is taken as UTC;
    a string is passed on as given (the database checks it)."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Written:
    """The answer to a write of one key (`put`, `delete`)."""

    __slots__ = ("version_id", "_ts", "previous_version")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.version_id: str = body["version_id"]
        self._ts: Union[str, datetime] = body["timestamp"]
        self.previous_version: Optional[str] = body.get("previous_version")


    @property
    def timestamp(self) -> datetime:
        """The commit time: an aware `datetime` in UTC (read from the answer's text when first
        asked, so calls that never look at it do not pay for it)."""
        ts = self._ts
        if isinstance(ts, str):
            ts = self._ts = parse_timestamp(ts)
        return ts

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this answer."""
        return {
            "version_id": self.version_id,
            "timestamp": format_timestamp(self.timestamp),
            "previous_version": self.previous_version,
        }

    def __repr__(self) -> str:
        return f"Written(version_id={self.version_id!r}, timestamp={self.timestamp!r})"


class Entry:
    """One version of a key: what `get`, `get_at` and `history` return. `value()` is the stored
    value as plain Python objects (None for a delete version)."""

    __slots__ = ("_value", "version_id", "_ts", "previous_version", "deleted")

    def __init__(self, body: Dict[str, Any]) -> None:
        self._value: Any = body.get("value")
        self.version_id: str = body["version_id"]
        self._ts: Union[str, datetime] = body["timestamp"]
        self.previous_version: Optional[str] = body.get("previous_version")
        self.deleted: bool = bool(body.get("deleted", False))


    @property
    def timestamp(self) -> datetime:
        """The commit time: an aware `datetime` in UTC (read from the answer's text when first
        asked, so calls that never look at it do not pay for it)."""
        ts = self._ts
        if isinstance(ts, str):
            ts = self._ts = parse_timestamp(ts)
        return ts

    def value(self) -> Any:
        """The value as plain Python objects (dict, list, str, int, float, bool, None)."""
        return self._value

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this version."""
        body = {
            "value": self._value,
            "version_id": self.version_id,
            "timestamp": format_timestamp(self.timestamp),
            "previous_version": self.previous_version,
        }
        if self.deleted:
            body["deleted"] = True
        return body

    def __repr__(self) -> str:
        return f"Entry(version_id={self.version_id!r}, value={self._value!r})"


class HistoryPage:
    """A page of a key's versions, oldest first; `next_cursor` asks for the next page."""

    __slots__ = ("versions", "next_cursor")

    def __init__(self, body: Dict[str, Any], cursor: Optional[str] = None) -> None:
        self.versions: List[Entry] = []
        # A server's history entries (KoruDelta v1's shape) carry no `previous_version`; the
        # versions of a page are consecutive, so each one's predecessor is the entry before it
        # (the cursor for a page's first), as the embedded store says.
        previous = cursor
        for v in body["versions"]:
            entry = Entry(v)
            if "previous_version" not in v:
                entry.previous_version = previous
            previous = entry.version_id
            self.versions.append(entry)
        self.next_cursor: Optional[str] = body.get("next_cursor")

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this page."""
        return {"versions": [v.to_dict() for v in self.versions], "next_cursor": self.next_cursor}

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.versions)

    def __len__(self) -> int:
        return len(self.versions)


class KeysPage:
    """A page of live keys in byte order; `next_cursor` asks for the next page."""

    __slots__ = ("keys", "next_cursor")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.keys: List[str] = list(body["keys"])
        self.next_cursor: Optional[str] = body.get("next_cursor")

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this page."""
        return {"keys": self.keys, "next_cursor": self.next_cursor}

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


class BatchResult:
    """One write of a batch: the version it made."""

    __slots__ = ("namespace", "key", "version_id", "previous_version")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.namespace: str = body["namespace"]
        self.key: str = body["key"]
        self.version_id: str = body["version_id"]
        self.previous_version: Optional[str] = body.get("previous_version")

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this result."""
        return {
            "namespace": self.namespace,
            "key": self.key,
            "version_id": self.version_id,
            "previous_version": self.previous_version,
        }


class BatchWritten:
    """The answer to `batch_put`: one record, so one LSN and one commit time."""

    __slots__ = ("lsn", "_ts", "results")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.lsn: int = body["lsn"]
        self._ts: Union[str, datetime] = body["timestamp"]
        self.results: List[BatchResult] = [BatchResult(r) for r in body["results"]]


    @property
    def timestamp(self) -> datetime:
        """The commit time: an aware `datetime` in UTC (read from the answer's text when first
        asked, so calls that never look at it do not pay for it)."""
        ts = self._ts
        if isinstance(ts, str):
            ts = self._ts = parse_timestamp(ts)
        return ts

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this answer."""
        return {
            "lsn": self.lsn,
            "timestamp": format_timestamp(self.timestamp),
            "results": [r.to_dict() for r in self.results],
        }


class Found:
    """One answer of `batch_get`: `found` is False when the key was absent (then or now)."""

    __slots__ = ("namespace", "key", "found", "entry")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.namespace: str = body["namespace"]
        self.key: str = body["key"]
        self.found: bool = bool(body["found"])
        self.entry: Optional[Entry] = Entry(body) if self.found else None

    def value(self) -> Any:
        """The value read, or None when not found."""
        return None if self.entry is None else self.entry.value()

    @property
    def version_id(self) -> Optional[str]:
        """The version read, or None when not found."""
        return None if self.entry is None else self.entry.version_id

    @property
    def timestamp(self) -> Optional[datetime]:
        """The commit time of the version read, or None when not found."""
        return None if self.entry is None else self.entry.timestamp

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this answer."""
        body: Dict[str, Any] = {"namespace": self.namespace, "key": self.key, "found": self.found}
        if self.entry is not None:
            body.update(self.entry.to_dict())
        return body


class ChangeOp:
    """One operation of a committed record: `op` is `put` or `delete`."""

    __slots__ = ("op", "namespace", "key", "version_id", "_value")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.op: str = body["op"]
        self.namespace: str = body["namespace"]
        self.key: str = body["key"]
        self.version_id: str = body["version_id"]
        self._value: Any = body.get("value")

    def value(self) -> Any:
        """The value written (None for a delete)."""
        return self._value

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this operation."""
        body = {"op": self.op, "namespace": self.namespace, "key": self.key, "version_id": self.version_id}
        if self.op != "delete":
            body["value"] = self._value
        return body


class Change:
    """One committed record of the change feed."""

    __slots__ = ("lsn", "_ts", "ops")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.lsn: int = body["lsn"]
        self._ts: Union[str, datetime] = body["timestamp"]
        self.ops: List[ChangeOp] = [ChangeOp(o) for o in body["ops"]]


    @property
    def timestamp(self) -> datetime:
        """The commit time: an aware `datetime` in UTC (read from the answer's text when first
        asked, so calls that never look at it do not pay for it)."""
        ts = self._ts
        if isinstance(ts, str):
            ts = self._ts = parse_timestamp(ts)
        return ts

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this record."""
        return {
            "lsn": self.lsn,
            "timestamp": format_timestamp(self.timestamp),
            "ops": [o.to_dict() for o in self.ops],
        }


class ChangesPage:
    """A page of the change feed: pass `next_since` back as `since`; more may follow while
    `next_since < last_lsn`."""

    __slots__ = ("changes", "next_since", "last_lsn")

    def __init__(self, body: Dict[str, Any]) -> None:
        self.changes: List[Change] = [Change(c) for c in body["changes"]]
        self.next_since: int = body["next_since"]
        self.last_lsn: int = body["last_lsn"]

    def to_dict(self) -> Dict[str, Any]:
        """The HTTP API's body for this page."""
        return {
            "changes": [c.to_dict() for c in self.changes],
            "next_since": self.next_since,
            "last_lsn": self.last_lsn,
        }

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)
