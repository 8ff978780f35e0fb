"""Shared fixtures: a fresh embedded database per test and a fresh real `koru-dataplane` server
(the binary from KORU_DATAPLANE_BIN) per test or per conformance file."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

import korudelta

REPO = Path(__file__).resolve().parents[3]


def dataplane_bin() -> str:
    """The server binary: KORU_DATAPLANE_BIN, else the debug build in CARGO_TARGET_DIR."""
    path = os.environ.get("KORU_DATAPLANE_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/koru-delta-cloud/target"))
        path = str(Path(target) / "debug" / "koru-dataplane")
    if not os.access(path, os.X_OK):
        message = f"koru-dataplane not found at {path} (set KORU_DATAPLANE_BIN)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A real koru-dataplane child process on a free loopback port with its own data dir."""

    def __init__(self, extra_args: Optional[List[str]] = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="korudelta-py-server-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [dataplane_bin(), "--data-dir", os.path.join(self.dir, "data"),
                "--listen", f"127.0.0.1:{self.port}", *(extra_args or [])]
        self._log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"koru-dataplane exited: {self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"koru-dataplane not ready in 30 s: {self.log()}")

    def log(self) -> str:
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[korudelta.Database]:
    db = korudelta.KoruDelta.open(tmp_path / "data")
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def client(server: Server) -> Iterator[korudelta.Client]:
    c = korudelta.connect(server.url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(params=["embedded", "client"])
def db(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The same tests over both modes."""
    return request.getfixturevalue(request.param)
