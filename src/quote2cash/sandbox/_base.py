"""What every vendor sandbox shares: a persistent document store, fault
injection, call statistics and a loopback HTTP server.

A sandbox is a real HTTP server on 127.0.0.1 that speaks one vendor's wire
format. Its state lives in a SQLite file, so a sandbox restarted on the same
file keeps its records (the SIGKILL tests rely on this). Faults are injected
on demand through ``/__sandbox/faults`` or :meth:`Sandbox.inject`:

- ``latency``: wait ``seconds`` before handling.
- ``throttle``: answer 429 with ``Retry-After: retry_after``.
- ``error``: answer ``status`` (default 503) without handling.
- ``timeout``: wait ``seconds`` and then answer 504 without handling (the client gives up first).
- ``timeout_after_commit``: handle the request (the write happens) and then
  wait ``seconds`` before answering: the client sees a timeout for a write
  that was applied. This is the "in-doubt" case.
- ``reject``: answer ``status`` with the vendor-format ``body`` given.

Rules match on method and a regular expression over the path, fire with a
``probability`` (seeded) and at most ``count`` times.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

FaultKind = Literal["latency", "throttle", "error", "timeout", "timeout_after_commit", "reject"]


class DocStore:
    """Documents by kind and id, in memory, written through to SQLite.

    Thread-safe. ``path=None`` keeps everything in memory only.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self._lock = threading.RLock()
        self._docs: dict[str, dict[str, dict[str, Any]]] = {}
        self._seq: dict[str, int] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS docs (kind TEXT, id TEXT, data TEXT, PRIMARY KEY (kind, id))"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS seq (kind TEXT PRIMARY KEY, value INTEGER)")
            for kind, id_, data in self._db.execute("SELECT kind, id, data FROM docs"):
                self._docs.setdefault(kind, {})[id_] = json.loads(data)
            for kind, value in self._db.execute("SELECT kind, value FROM seq"):
                self._seq[kind] = value

    @property
    def lock(self) -> threading.RLock:
        """Hold this to make a read-check-write sequence atomic."""
        return self._lock

    def next_id(self, kind: str, start: int = 1000) -> int:
        """A new, never reused, numeric id for ``kind``."""
        with self._lock:
            value = self._seq.get(kind, start) + 1
            self._seq[kind] = value
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO seq VALUES (?, ?)", (kind, value))
            return value

    def put(self, kind: str, id_: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace one document."""
        self.put_many(kind, [(id_, doc)])
        return doc

    def put_many(self, kind: str, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Insert or replace many documents in one transaction."""
        items = list(items)
        with self._lock:
            bucket = self._docs.setdefault(kind, {})
            for id_, doc in items:
                bucket[str(id_)] = doc
            if self._db is not None:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO docs VALUES (?, ?, ?)",
                    [(kind, str(i), json.dumps(d, default=str)) for i, d in items],
                )
                self._db.execute("COMMIT")

    def get(self, kind: str, id_: str) -> dict[str, Any] | None:
        """One document, or None."""
        return self._docs.get(kind, {}).get(str(id_))

    def delete(self, kind: str, id_: str) -> bool:
        """Remove a document; True if it existed."""
        with self._lock:
            existed = self._docs.get(kind, {}).pop(str(id_), None) is not None
            if existed and self._db is not None:
                self._db.execute("DELETE FROM docs WHERE kind = ? AND id = ?", (kind, str(id_)))
            return existed

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every document of a kind, in insertion order."""
        with self._lock:
            return list(self._docs.get(kind, {}).values())

    def items(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, document) pairs of a kind, snapshot."""
        with self._lock:
            return iter(list(self._docs.get(kind, {}).items()))

    def count(self, kind: str) -> int:
        """How many documents of a kind there are."""
        return len(self._docs.get(kind, {}))

    def find(self, kind: str, **equals: Any) -> list[dict[str, Any]]:
        """Documents whose fields equal every given value."""
        return [d for d in self.all(kind) if all(d.get(k) == v for k, v in equals.items())]

    def clear(self) -> None:
        """Forget every document and sequence."""
        with self._lock:
            self._docs.clear()
            self._seq.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM docs")
                self._db.execute("DELETE FROM seq")

    def close(self) -> None:
        """Close the SQLite file."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


@dataclass
class FaultRule:
    """One fault to inject; see the module docstring for the kinds."""

    kind: FaultKind
    path: str = ".*"
    method: str | None = None
    probability: float = 1.0
    count: int | None = None
    seconds: float = 0.0
    status: int = 503
    retry_after: float | None = 0.05
    body: Any = None
    fired: int = field(default=0)

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to a request (ignoring probability)."""
        if self.count is not None and self.fired >= self.count:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return re.search(self.path, path) is not None


class FaultInjector:
    """The active fault rules of one sandbox."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        """Activate a rule."""
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        """The active rules."""
        with self._lock:
            return list(self._rules)

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if any (and count it)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path) and self._rng.random() < rule.probability:
                    rule.fired += 1
                    return rule
        return None


class Sandbox:
    """Base of a vendor sandbox: subclasses add routes in :meth:`install_routes`."""

    vendor = "vendor"

    def __init__(self, path: Path | str | None = None, *, seed: int = 0) -> None:
        self.store = DocStore(path)
        self.faults = FaultInjector(seed)
        self.stats: Counter[str] = Counter()
        self.app = FastAPI(title=f"{self.vendor} sandbox", docs_url=None, redoc_url=None, openapi_url=None)
        self._install_admin()
        self.install_routes(self.app)
        self._server: SandboxServer | None = None

    # -- for subclasses --------------------------------------------------------------
    def install_routes(self, app: FastAPI) -> None:
        """Add the vendor's routes."""

    def fault_response(self, rule: FaultRule) -> Response:
        """The response for a ``reject`` or ``error`` rule, in the vendor's format."""
        return JSONResponse(rule.body if rule.body is not None else {"error": "injected"}, rule.status)

    # -- public helpers --------------------------------------------------------------
    def inject(self, kind: FaultKind, **kw: Any) -> FaultRule:
        """Activate a fault rule (see the module docstring)."""
        return self.faults.add(FaultRule(kind=kind, **kw))

    def calls(self, prefix: str = "") -> int:
        """How many requests were handled whose ``METHOD path`` starts with ``prefix``."""
        return sum(n for key, n in self.stats.items() if key.startswith(prefix) or prefix in key)

    def start(self, port: int = 0) -> SandboxServer:
        """Serve on loopback in a background thread; returns the running server."""
        self._server = SandboxServer(self.app, port=port).start()
        return self._server

    def stop(self) -> None:
        """Stop serving (the store stays usable)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        if self._server is None:
            raise RuntimeError(f"the {self.vendor} sandbox is not running")
        return self._server.url

    # -- admin routes and the fault middleware ---------------------------------------
    def _install_admin(self) -> None:
        app = self.app

        @app.middleware("http")
        async def faults(request: Request, call_next: Any) -> Response:
            path = request.url.path
            if path.startswith("/__sandbox"):
                response: Response = await call_next(request)
                return response
            self.stats[f"{request.method} {path}"] += 1
            rule = self.faults.pick(request.method, path)
            if rule is None:
                response = await call_next(request)
                return response
            if rule.kind == "latency":
                await asyncio.sleep(rule.seconds)
                response = await call_next(request)
                return response
            if rule.kind == "throttle":
                headers = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
                body = rule.body if rule.body is not None else {"error": "rate limit exceeded"}
                return JSONResponse(body, 429, headers=headers)
            if rule.kind == "timeout":
                await asyncio.sleep(rule.seconds)
                return JSONResponse({"error": "gateway timeout"}, 504)
            if rule.kind == "timeout_after_commit":
                response = await call_next(request)
                await asyncio.sleep(rule.seconds)
                return response
            return self.fault_response(rule)

        @app.get("/__sandbox/faults")
        def list_faults() -> list[dict[str, Any]]:
            return [asdict(r) for r in self.faults.rules()]

        @app.post("/__sandbox/faults")
        async def add_fault(request: Request) -> dict[str, Any]:
            return asdict(self.faults.add(FaultRule(**(await request.json()))))

        @app.delete("/__sandbox/faults")
        def clear_faults() -> dict[str, Any]:
            self.faults.clear()
            return {"cleared": True}

        @app.get("/__sandbox/stats")
        def stats() -> dict[str, int]:
            return dict(self.stats)


class SandboxServer:
    """A uvicorn server on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name=f"sandbox:{port}")
        self.host = host
        self.port = port

    def start(self, timeout: float = 10.0) -> SandboxServer:
        """Start and wait until the socket listens."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        sockets = self._server.servers[0].sockets
        self.port = sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def wait(self) -> None:
        """Block until the server stops."""
        self._thread.join()
