"""The roadmap's Python snippet (ROADMAP.md, section 4.1) runs as written, in a temp directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SNIPPET = '''\
from korudelta import KoruDelta
import asyncio

async def main():
    db = await KoruDelta.start_with_path("./data")
    await db.put("users", "alice", {"name": "Alice", "age": 30})
    user = await db.get("users", "alice")
    print(user.value())

asyncio.run(main())
'''


def test_snippet_runs_verbatim(tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(SNIPPET)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "{'name': 'Alice', 'age': 30}\n"
    assert (tmp_path / "data").is_dir()
    # The data is durable: a second process reads it back.
    again = subprocess.run(
        [sys.executable, "-c", "import korudelta; print(korudelta.KoruDelta.open('./data').get('users', 'alice').value())"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == "{'name': 'Alice', 'age': 30}\n"

