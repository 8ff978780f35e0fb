"""The API's behaviour, the same in both modes (`db` runs each test embedded and as a client of
a fresh server): answers, timestamps, compare-and-set, pages, batches and typed errors."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, List

import pytest

import korudelta
from korudelta import (
    BadRequestError,
    InvalidNameError,
    KoruDeltaError,
    NotFoundError,
    VersionMismatchError,
)


def test_put_get_values_are_plain_python(db: Any) -> None:
    value = {"name": "Alice", "tags": ["a", "b"], "n": 1, "f": 1.5, "ok": True, "none": None, "u": "é☃"}
    w = db.put("users", "alice", value)
    assert isinstance(w, korudelta.Written)
    assert w.previous_version is None
    got = db.get("users", "alice")
    assert got.value() == value
    assert got.version_id == w.version_id
    assert got.timestamp == w.timestamp
    assert got.previous_version is None
    for scalar in (7, "text", None, [1, [2]], 2**53 + 1):
        db.put("scalars", "k", scalar)
        assert db.get("scalars", "k").value() == scalar


def test_timestamps_are_utc_datetimes_with_microseconds(db: Any) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    w = db.put("t", "k", 1)
    assert isinstance(w.timestamp, datetime)
    assert w.timestamp.tzinfo is not None and w.timestamp.utcoffset() == timedelta(0)
    assert before < w.timestamp < datetime.now(timezone.utc) + timedelta(seconds=5)
    assert w.to_dict()["timestamp"].endswith("Z") and len(w.to_dict()["timestamp"]) == 27


def test_versions_and_time_travel(db: Any) -> None:
    w1 = db.put("users", "bob", {"age": 1})
    w2 = db.put("users", "bob", {"age": 2})
    assert w2.previous_version == w1.version_id
    assert db.get_at("users", "bob", w1.timestamp).value() == {"age": 1}
    # Text, naive (meaning UTC) and other-offset datetimes name the same moment.
    assert db.get_at("users", "bob", w1.to_dict()["timestamp"]).version_id == w1.version_id
    naive = w2.timestamp.replace(tzinfo=None)
    assert db.get_at("users", "bob", naive).version_id == w2.version_id
    paris = w1.timestamp.astimezone(timezone(timedelta(hours=2)))
    assert db.get_at("users", "bob", paris).version_id == w1.version_id
    with pytest.raises(NotFoundError):
        db.get_at("users", "bob", w1.timestamp - timedelta(seconds=1))
    history = db.history("users", "bob")
    assert [v.value() for v in history] == [{"age": 1}, {"age": 2}]
    assert history.next_cursor is None


def test_delete_and_compare_and_set(db: Any) -> None:
    w1 = db.put("acct", "x", {"balance": 10})
    w2 = db.put("acct", "x", {"balance": 20}, if_match=w1.version_id)
    with pytest.raises(VersionMismatchError) as e:
        db.put("acct", "x", {"balance": 99}, if_match=w1.version_id)
    assert e.value.code == "version_mismatch" and e.value.message
    assert isinstance(e.value, KoruDeltaError)
    assert db.get("acct", "x").value() == {"balance": 20}
    d = db.delete("acct", "x", if_match=w2.version_id)
    assert d.previous_version == w2.version_id
    with pytest.raises(NotFoundError):
        db.get("acct", "x")
    with pytest.raises(NotFoundError):
        db.delete("acct", "x")
    versions = db.history("acct", "x").versions
    assert versions[-1].deleted and versions[-1].value() is None


def test_pages(db: Any) -> None:
    for i in range(5):
        db.put("p", f"k{i}", i)
    page = db.keys("p", limit=2)
    assert page.keys == ["k0", "k1"] and page.next_cursor == "k1"
    assert db.keys("p", limit=2, cursor=page.next_cursor).keys == ["k2", "k3"]
    assert list(db.keys("p", prefix="k4")) == ["k4"]
    ws = [db.put("h", "k", i) for i in range(3)]
    first = db.history("h", "k", limit=2)
    assert len(first) == 2 and first.next_cursor == ws[1].version_id
    assert [v.previous_version for v in first] == [None, ws[0].version_id]
    second = db.history("h", "k", cursor=first.next_cursor)
    assert [v.value() for v in second] == [2]
    assert second.versions[0].previous_version == ws[1].version_id
    assert db.namespaces() == ["h", "p"]


def test_batches(db: Any) -> None:
    written = db.batch_put([("m", "cpu", {"v": 1}), {"namespace": "m", "key": "mem", "value": 2}])
    assert written.lsn >= 1 and isinstance(written.timestamp, datetime)
    assert [r.key for r in written.results] == ["cpu", "mem"]
    db.batch_put([{"namespace": "m", "key": "mem", "delete": True}])
    found = db.batch_get([("m", "cpu"), {"namespace": "m", "key": "mem"}, ("m", "mem", written.timestamp)])
    assert [f.found for f in found] == [True, False, True]
    assert found[0].value() == {"v": 1} and found[0].version_id == written.results[0].version_id
    assert found[1].value() is None and found[1].version_id is None
    assert found[2].value() == 2
    with pytest.raises(InvalidNameError):
        db.batch_put([("m", "ok", 1), ("_koru_x", "bad", 2)])
    with pytest.raises(NotFoundError):
        db.get("m", "ok")
    with pytest.raises(BadRequestError):
        db.batch_put([])


def test_changes_and_query(db: Any) -> None:
    db.put("users", "a", {"age": 30})
    db.put("users", "b", {"age": 20})
    feed = db.changes()
    assert [c.ops[0].key for c in feed] == ["a", "b"]
    assert feed.changes[0].ops[0].value() == {"age": 30}
    assert feed.next_since == feed.last_lsn
    assert len(db.changes(feed.changes[0].lsn)) == 1
    answer = db.query("users", {"filter": {"field": "age", "op": "gt", "value": 25}})
    assert answer["total"] == 1 and answer["results"][0]["key"] == "a"
    as_of = db.query("users", {"at": feed.changes[0].timestamp})
    assert [r["key"] for r in as_of["results"]] == ["a"]
    with pytest.raises(BadRequestError):
        db.query("users", {"filter": {"field": "age", "op": "between", "value": 1}})


def test_errors_carry_codes(db: Any) -> None:
    cases = [
        (lambda: db.get("users", "nobody"), NotFoundError, "not_found"),
        (lambda: db.put("bad name!", "k", 1), InvalidNameError, "invalid_name"),
        (lambda: db.get_at("users", "k", "yesterday"), BadRequestError, "bad_request"),
        (lambda: db.put("users", "k", 1, if_match="not-a-version"), BadRequestError, "bad_request"),
        (lambda: db.changes(0, limit=0), BadRequestError, "bad_request"),
    ]
    for call, cls, code in cases:
        with pytest.raises(cls) as e:
            call()
        assert e.value.code == code
        assert str(e.value).startswith(code)


def test_unknown_codes_map_to_the_base_class() -> None:
    e = korudelta.errors.error_for("something_new", "m", 418)
    assert type(e) is KoruDeltaError and e.code == "something_new" and e.status == 418


def test_context_manager_closes(tmp_path: Any) -> None:
    with korudelta.KoruDelta.open(tmp_path / "d") as db:
        db.put("n", "k", 1)
    with pytest.raises(korudelta.UnavailableError) as e:
        db.put("n", "k", 2)
    assert e.value.code == "shutting_down"
    with korudelta.KoruDelta.open(tmp_path / "d") as again:
        assert again.get("n", "k").value() == 1


def test_a_second_open_of_a_directory_in_use_is_locked(tmp_path: Any) -> None:
    with korudelta.KoruDelta.open(tmp_path / "d"):
        with pytest.raises(korudelta.LockedError) as e:
            korudelta.KoruDelta.open(tmp_path / "d")
        assert e.value.code == "locked"


def test_threads_share_one_database(db: Any) -> None:
    errors: List[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                db.put("t", f"{n}-{i}", i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(db.keys("t")) == 80
