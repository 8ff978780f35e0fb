"""KoruDelta for Python: the versioned, time-travelling JSON database.

Embedded (the store runs in this process, through the native extension):

    db = await KoruDelta.start_with_path("./data")   # asyncio
    db = KoruDelta.open("./data")                     # blocking

Client of a server or a hosted cluster (pure Python, over HTTP):

    db = connect("https://cluster.example", token="...")            # blocking
    db = await KoruDelta.connect("https://cluster.example", token)  # asyncio

Every form has the same methods (put, get, delete, history, get_at, query, batch_put,
batch_get, changes, keys, namespaces, close), answers and typed errors (`KoruDeltaError`)."""

__version__ = "0.1.0"

from .client import AsyncClient, Client, connect  # noqa: E402
from .embedded import Database, KoruDelta  # noqa: E402
from .errors import *  # noqa: E402,F401,F403
from .errors import __all__ as _errors_all  # noqa: E402
from .types import (  # noqa: E402
    BatchResult,
    BatchWritten,
    Change,
    ChangeOp,
    ChangesPage,
    Entry,
    Found,
    HistoryPage,
    KeysPage,
    Written,
)

__all__ = [
    "KoruDelta",
    "Database",
    "Client",
    "AsyncClient",
    "connect",
    "Written",
    "Entry",
    "HistoryPage",
    "KeysPage",
    "BatchResult",
    "BatchWritten",
    "Found",
    "Change",
    "ChangeOp",
    "ChangesPage",
    *[name for name in _errors_all if name != "error_for"],
]
