"""Argument encoding shared by the embedded and the client forms: what a caller may pass for a
batch's writes and keys, turned into the HTTP API's JSON items."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Union

from .types import Moment, format_timestamp

WriteArg = Union[Mapping[str, Any], Sequence[Any]]
KeyArg = Union[Mapping[str, Any], Sequence[Any]]


def dumps(value: Any) -> str:
    """A value as compact JSON text (NaN and infinities are refused by the database)."""
    return json.dumps(value, separators=(",", ":"))


def writes_items(writes: Iterable[WriteArg]) -> List[Dict[str, Any]]:
    """`batch_put`'s writes as `{"namespace", "key", "value"}` or `{..., "delete": true}` items.

    Each write is such a mapping, or a tuple `(namespace, key, value)` (a put)."""
    items: List[Dict[str, Any]] = []
    for w in writes:
        if isinstance(w, Mapping):
            item = {"namespace": w["namespace"], "key": w["key"]}
            if w.get("delete"):
                item["delete"] = True
            else:
                item["value"] = w["value"]
        else:
            namespace, key, value = w
            item = {"namespace": namespace, "key": key, "value": value}
        items.append(item)
    return items


def keys_items(keys: Iterable[KeyArg]) -> List[Dict[str, Any]]:
    """`batch_get`'s keys as `{"namespace", "key", "at"?}` items.

    Each key is such a mapping, or a tuple `(namespace, key)` or `(namespace, key, at)`."""
    items: List[Dict[str, Any]] = []
    for k in keys:
        if isinstance(k, Mapping):
            namespace, key, at = k["namespace"], k["key"], k.get("at")
        else:
            namespace, key, at = (tuple(k) + (None,))[:3]
        item: Dict[str, Any] = {"namespace": namespace, "key": key}
        if at is not None:
            item["at"] = format_timestamp(at)
        items.append(item)
    return items


def query_body(query: Mapping[str, Any]) -> Dict[str, Any]:
    """A query body with an `at` given as a `datetime` turned into RFC 3339 text."""
    body = dict(query)
    at: Moment = body.get("at")  # type: ignore[assignment]
    if at is not None:
        body["at"] = format_timestamp(at)
    return body
