"""What only the HTTP client does: retries on 503/429 honouring Retry-After (bounded), If-Match,
the Bearer and URL-userinfo (Basic) token forms, kept-alive connections, and a real server with
auth on."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import korudelta
from conftest import Server, free_port

WRITTEN = {"version_id": "7.0", "timestamp": "2026-01-02T03:04:05.123456Z", "previous_version": None}


class Fake:
    """A scripted HTTP/1.1 server: answers `script` in order (then 200 WRITTEN) and records each
    request's method, path, headers and client port."""

    def __init__(self) -> None:
        self.script: List[Tuple[int, Dict[str, str], Any]] = []
        self.seen: List[Dict[str, Any]] = []
        self.close_after_each = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                  "port": self.client_address[1], "body": body})
                status, headers, answer = fake.script.pop(0) if fake.script else (200, {}, WRITTEN)
                data = json.dumps(answer).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if fake.close_after_each:
                    # Closes without saying so, as a server dropping an idle connection does.
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    yield f
    f.stop()


def _err(code: str) -> Dict[str, Any]:
    return {"error": {"code": code, "message": f"{code} for the test"}}


def test_retries_503_no_leader_honouring_retry_after(fake: Fake) -> None:
    fake.script = [(503, {"Retry-After": "0"}, _err("no_leader")),
                   (503, {"Retry-After": "0"}, _err("shutting_down")),
                   (429, {"Retry-After": "0"}, _err("rate_limited"))]
    with korudelta.connect(fake.url) as db:
        w = db.put("users", "alice", {"a": 1})
    assert w.version_id == "7.0"
    assert [s["method"] for s in fake.seen] == ["PUT"] * 4
    assert json.loads(fake.seen[-1]["body"]) == {"value": {"a": 1}}


def test_retry_after_is_bounded_and_retries_end(fake: Fake) -> None:
    fake.script = [(503, {"Retry-After": "3600"}, _err("no_leader"))] * 3
    with korudelta.connect(fake.url, retries=2, max_retry_wait=0.05) as db:
        started = time.monotonic()
        with pytest.raises(korudelta.UnavailableError) as e:
            db.get("users", "alice")
        assert time.monotonic() - started < 2
    assert e.value.code == "no_leader" and e.value.status == 503
    assert len(fake.seen) == 3


def test_retry_after_waits(fake: Fake) -> None:
    fake.script = [(503, {"Retry-After": "1"}, _err("no_leader"))]
    with korudelta.connect(fake.url) as db:
        started = time.monotonic()
        db.put("users", "alice", 1)
        assert time.monotonic() - started >= 0.9


def test_no_retry_when_the_outcome_is_unknown_or_the_code_is_final(fake: Fake) -> None:
    fake.script = [(503, {"Retry-After": "0"}, _err("outcome_unknown")),
                   (503, {}, _err("read_only")),
                   (418, {}, {"not": "ours"})]
    with korudelta.connect(fake.url) as db:
        with pytest.raises(korudelta.OutcomeUnknownError):
            db.put("users", "alice", 1)
        with pytest.raises(korudelta.UnavailableError) as e:
            db.put("users", "alice", 1)
        assert e.value.code == "read_only"
        with pytest.raises(korudelta.KoruDeltaError) as e:
            db.put("users", "alice", 1)
        assert type(e.value) is korudelta.KoruDeltaError and e.value.code == "http_418"
    assert len(fake.seen) == 3


def test_if_match_keys_and_paths(fake: Fake) -> None:
    with korudelta.connect(fake.url + "/prefix/") as db:
        db.put("users", "a/b c", 1, if_match="3.0")
        db.delete("users", "k", if_match="4.1")
    assert fake.seen[0]["headers"]["If-Match"] == "3.0"
    assert fake.seen[0]["path"] == "/prefix/api/v1/users/a%2Fb%20c"
    assert fake.seen[0]["headers"]["Content-Type"] == "application/json"
    assert fake.seen[1]["method"] == "DELETE" and fake.seen[1]["headers"]["If-Match"] == "4.1"


def test_token_forms(fake: Fake) -> None:
    with korudelta.connect(fake.url, token="tok-1") as db:
        db.put("n", "k", 1)
    host = fake.url.split("//")[1]
    with korudelta.connect(f"http://token:s%40cret@{host}") as db:
        db.put("n", "k", 1)
    with korudelta.connect(fake.url) as db:
        db.put("n", "k", 1)
    assert fake.seen[0]["headers"]["Authorization"] == "Bearer tok-1"
    assert fake.seen[1]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"token:s@cret").decode()
    assert "Authorization" not in fake.seen[2]["headers"]


def test_connections_are_kept_alive_and_a_dropped_one_is_replaced(fake: Fake) -> None:
    with korudelta.connect(fake.url) as db:
        for _ in range(3):
            db.put("n", "k", 1)
        assert len({s["port"] for s in fake.seen}) == 1
        fake.close_after_each = True
        for _ in range(3):
            db.put("n", "k", 1)
    assert len(fake.seen) == 6


def test_unreachable_server() -> None:
    with korudelta.connect(f"http://127.0.0.1:{free_port()}", retries=1, max_retry_wait=0.01) as db:
        with pytest.raises(korudelta.ConnectionFailedError) as e:
            db.get("n", "k")
    assert e.value.code == "connection_failed"
    with pytest.raises(ValueError):
        korudelta.connect("ftp://example.com")


def test_real_server_with_auth(tmp_path: Path) -> None:
    secret = "s3cret-" + "x" * 40
    token_file = tmp_path / "admin-token"
    token_file.write_text(secret)
    key = Path(__file__).parent / "data" / "auth_public.pem"
    server = Server(["--auth-public-key", str(key), "--cluster-id", "c1",
                     "--admin-token-file", str(token_file)])
    try:
        with korudelta.connect(server.url) as anonymous:
            with pytest.raises(korudelta.UnauthorizedError) as e:
                anonymous.put("users", "alice", 1)
            assert e.value.code == "unauthorized" and e.value.status == 401
        with korudelta.connect(server.url, token=secret) as bearer:
            w = bearer.put("users", "alice", {"age": 30})
        host = server.url.split("//")[1]
        with korudelta.connect(f"http://token:{secret}@{host}") as basic:
            assert basic.get("users", "alice").version_id == w.version_id
        with korudelta.connect(server.url, token="wrong") as wrong:
            with pytest.raises(korudelta.UnauthorizedError):
                wrong.get("users", "alice")
    finally:
        server.stop()


def test_compare_and_set_against_a_real_server(client: korudelta.Client) -> None:
    w1 = client.put("acct", "x", 1)
    client.put("acct", "x", 2, if_match=w1.version_id)
    with pytest.raises(korudelta.VersionMismatchError) as e:
        client.put("acct", "x", 3, if_match=w1.version_id)
    assert e.value.status == 412

