"""Every blocking native call releases the GIL: another Python thread makes progress while one
long call runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import korudelta


def test_other_threads_run_during_a_long_batch(tmp_path: Path) -> None:
    db = korudelta.KoruDelta.open(tmp_path / "data")
    writes = [("n", f"key-{i:05d}", {"i": i, "pad": "x" * 2000}) for i in range(5000)]
    counter = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        best = 0
        # The call must be long enough to span several switch intervals (5 ms): a call that held
        # the GIL would let the spinner count only between calls, not during one.
        for _ in range(3):
            before = counter[0]
            started = time.perf_counter()
            written = db.batch_put(writes)
            elapsed = time.perf_counter() - started
            during = counter[0] - before
            assert len(written.results) == len(writes)
            best = max(best, during)
    finally:
        stop.set()
        t.join()
        db.close()
    assert elapsed > 0.01, f"the batch took only {elapsed:.4f} s: too short to tell"
    assert best > 10_000, f"the other thread counted only {best} during a {elapsed:.3f} s call"
