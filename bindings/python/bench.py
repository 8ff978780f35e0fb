"""Throughput of the Python binding: embedded puts/s and gets/s (single calls and batches) and
client-mode requests/s against a real server, printed beside the same loop in Rust
(examples/blocking_loop.rs) so the binding's overhead per call can be read off.

    python bench.py [--n 20000] [--batch 1000] [--repeat 1] [--server PATH] [--rust PATH]

`--server` is a koru-dataplane binary (a child on a free port is started for the client figures);
`--rust` the built `blocking_loop` example. Build both with `--release` for meaningful figures, and
the wheel too (`KORU_PY_PROFILE=release scripts/bindings/python.sh`)."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from typing import Any, Callable

import korudelta


def value(i: int) -> Any:
    return {"name": f"user{i}", "age": i % 90, "tags": ["a", "b"]}


REPEAT = 1


def timed(label: str, n: int, fn: Callable[[], None]) -> float:
    """Runs `fn` REPEAT times (it must be repeatable: puts overwrite) and prints the best."""
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<44} {n / best:>10.0f} ops/s  {best * 1e6 / n:>8.2f} us/op", flush=True)
    return best


def run_api(prefix: str, db: Any, n: int, batch: int) -> None:
    def puts() -> None:
        for i in range(n):
            db.put("bench", f"k{i}", value(i))

    def gets() -> None:
        for i in range(n):
            db.get("bench", f"k{i}").value()

    def batch_puts() -> None:
        for start in range(0, n, batch):
            db.batch_put([("bench_batch", f"k{i}", value(i)) for i in range(start, min(n, start + batch))])

    def batch_gets() -> None:
        for start in range(0, n, batch):
            for f in db.batch_get([("bench_batch", f"k{i}") for i in range(start, min(n, start + batch))]):
                f.value()

    timed(f"{prefix} put (single)", n, puts)
    timed(f"{prefix} get (single)", n, gets)
    timed(f"{prefix} put (batches of {batch})", n, batch_puts)
    timed(f"{prefix} get (batches of {batch})", n, batch_gets)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--server", default=os.environ.get("KORU_DATAPLANE_BIN"))
    parser.add_argument("--rust")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs per figure")
    args = parser.parse_args()
    global REPEAT
    REPEAT = args.repeat
    work = tempfile.mkdtemp(prefix="korudelta-bench-")
    try:
        if args.rust:
            for r in range(args.repeat):
                subprocess.run([args.rust, os.path.join(work, f"rust{r}"), str(args.n), str(args.batch)], check=True)
        with korudelta.KoruDelta.open(os.path.join(work, "py")) as db:
            run_api("python embedded", db, args.n, args.batch)
        if args.server:
            port = free_port()
            proc = subprocess.Popen(
                [args.server, "--data-dir", os.path.join(work, "server"), "--listen", f"127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                for _ in range(300):
                    try:
                        urllib.request.urlopen(url + "/healthz", timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.05)
                with korudelta.connect(url) as client:
                    run_api("python client (1 connection)", client, args.n // 4, args.batch)
            finally:
                proc.terminate()
                proc.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
