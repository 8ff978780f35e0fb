"""The asyncio forms: `await KoruDelta.start_with_path(...)` and `await KoruDelta.connect(...)`
run every call in the running loop's executor and answer like the blocking forms."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import korudelta
from conftest import Server


async def _exercise(db: Any) -> None:
    w = await db.put("users", "alice", {"age": 30})
    assert (await db.get("users", "alice")).value() == {"age": 30}
    await db.put("users", "alice", {"age": 31}, if_match=w.version_id)
    with pytest.raises(korudelta.VersionMismatchError):
        await db.put("users", "alice", {"age": 0}, if_match=w.version_id)
    assert (await db.get_at("users", "alice", w.timestamp)).value() == {"age": 30}
    assert len(await db.history("users", "alice")) == 2
    await db.batch_put([("users", "bob", 1), ("users", "carol", 2)])
    assert [f.found for f in await db.batch_get([("users", "bob"), ("users", "zed")])] == [True, False]
    assert (await db.keys("users")).keys == ["alice", "bob", "carol"]
    assert await db.namespaces() == ["users"]
    assert len(await db.changes()) == 3
    assert (await db.query("users", {"limit": 1}))["total"] == 3
    await db.delete("users", "bob")
    with pytest.raises(korudelta.NotFoundError):
        await db.get("users", "bob")


def test_async_embedded(tmp_path: Path) -> None:
    async def main() -> None:
        async with await korudelta.KoruDelta.start_with_path(tmp_path / "data") as db:
            assert isinstance(db, korudelta.KoruDelta)
            await _exercise(db)

    asyncio.run(main())


def test_async_client(server: Server) -> None:
    async def main() -> None:
        async with await korudelta.KoruDelta.connect(server.url) as db:
            assert isinstance(db, korudelta.AsyncClient)
            await _exercise(db)

    asyncio.run(main())


def test_calls_overlap_and_leave_the_loop_free(tmp_path: Path) -> None:
    """Coroutines run concurrently in the executor: gathered writes all land, and a ticker task
    on the loop keeps ticking while they run."""
    ticks = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(threading.get_ident())
            await asyncio.sleep(0)

    async def main() -> None:
        db = await korudelta.KoruDelta.start_with_path(tmp_path / "data")
        stop = asyncio.Event()
        tick = asyncio.ensure_future(ticker(stop))
        results = await asyncio.gather(*(db.put("n", f"k{i}", i) for i in range(50)))
        stop.set()
        await tick
        assert len({r.version_id for r in results}) == 50
        assert len(await db.keys("n")) == 50
        await db.close()

    asyncio.run(main())
    assert len(ticks) > 1
