"""The shared conformance vectors (bindings/conformance/*.json, format in its README) run in both
modes: embedded on a fresh data directory per file, client against a fresh koru-dataplane per
file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict

import pytest

import korudelta
from conftest import REPO, Server

VECTORS = sorted((REPO / "bindings" / "conformance").glob("*.json"))
_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)\.(.+)$")


def substitute(value: Any, saved: Dict[str, Any]) -> Any:
    """Replaces every `"$name.field.0.x"` string by that field of a saved result."""
    if isinstance(value, str):
        m = _REF.match(value)
        if not m:
            return value
        found: Any = saved[m.group(1)]
        for part in m.group(2).split("."):
            found = found[int(part)] if isinstance(found, list) else found[part]
        return found
    if isinstance(value, list):
        return [substitute(v, saved) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, saved) for k, v in value.items()}
    return value


def matches(expected: Any, actual: Any, path: str = "") -> None:
    """Asserts the README's subset match: objects by their expected keys, arrays element by
    element with equal lengths, numbers by value, `$any` anything, null also absent."""
    if expected == "$any":
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for k, v in expected.items():
            if v is None and k not in actual:
                continue
            assert k in actual, f"{path}.{k}: missing in {actual!r}"
            matches(v, actual[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected an array, got {actual!r}"
        assert len(expected) == len(actual), f"{path}: {len(actual)} elements, expected {len(expected)}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            matches(e, a, f"{path}.{i}")
    elif isinstance(expected, bool) or isinstance(actual, bool):
        assert expected is actual, f"{path}: {actual!r} != {expected!r}"
    elif isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        assert float(expected) == float(actual), f"{path}: {actual!r} != {expected!r}"
    else:
        assert expected == actual, f"{path}: {actual!r} != {expected!r}"


def run_op(db: Any, step: Dict[str, Any]) -> Any:
    """Calls the binding's own method for the step and answers the canonical result."""
    op = step["op"]
    a = {k: v for k, v in step.items() if k not in ("op", "save", "expect", "expect_error")}
    if op == "put":
        return db.put(a["namespace"], a["key"], a["value"], if_match=a.get("if_match")).to_dict()
    if op == "delete":
        return db.delete(a["namespace"], a["key"], if_match=a.get("if_match")).to_dict()
    if op == "get":
        return db.get(a["namespace"], a["key"]).to_dict()
    if op == "get_at":
        return db.get_at(a["namespace"], a["key"], a["at"]).to_dict()
    if op == "history":
        return db.history(a["namespace"], a["key"], cursor=a.get("cursor"), limit=a.get("limit")).to_dict()
    if op == "query":
        return db.query(a["namespace"], a["query"])
    if op == "batch_put":
        return db.batch_put(a["writes"]).to_dict()
    if op == "batch_get":
        return {"results": [f.to_dict() for f in db.batch_get(a["keys"])]}
    if op == "keys":
        return db.keys(a["namespace"], prefix=a.get("prefix", ""), cursor=a.get("cursor"), limit=a.get("limit")).to_dict()
    if op == "changes":
        return db.changes(a.get("since", 0), limit=a.get("limit")).to_dict()
    if op == "namespaces":
        return {"namespaces": db.namespaces()}
    raise AssertionError(f"unknown op {op!r}")


def run_vector(db: Any, vector: Dict[str, Any]) -> None:
    saved: Dict[str, Any] = {}
    for i, raw in enumerate(vector["steps"]):
        step = substitute({k: v for k, v in raw.items() if k != "expect"}, saved)
        where = f"{vector['name']} step {i} ({raw['op']})"
        if "expect_error" in step:
            with pytest.raises(korudelta.KoruDeltaError) as caught:
                run_op(db, step)
            assert caught.value.code == step["expect_error"], f"{where}: {caught.value!r}"
            continue
        result = run_op(db, step)
        # Round-trip through JSON text, as another language's runner would see the result.
        result = json.loads(json.dumps(result))
        if "expect" in raw:
            try:
                matches(substitute(raw["expect"], saved), result)
            except AssertionError as e:
                raise AssertionError(f"{where}: {e}") from None
        if "save" in step:
            saved[step["save"]] = result


def _ids(paths: Any) -> Any:
    return [p.stem for p in paths]


def test_vectors_present() -> None:
    assert len(VECTORS) >= 8, VECTORS


@pytest.mark.parametrize("path", VECTORS, ids=_ids(VECTORS))
def test_embedded(path: Path, tmp_path: Path) -> None:
    vector = json.loads(path.read_text())
    with korudelta.KoruDelta.open(tmp_path / "data") as db:
        run_vector(db, vector)


@pytest.mark.parametrize("path", VECTORS, ids=_ids(VECTORS))
def test_client(path: Path) -> None:
    vector = json.loads(path.read_text())
    server = Server()
    try:
        with korudelta.connect(server.url) as db:
            run_vector(db, vector)
    finally:
        server.stop()
