"""The hub's HTTP app: webhooks, the operations API, the console, ``/metrics``
and ``/healthz``, on one FastAPI app over one launched hub.

:func:`create_app` builds it; :class:`ApiServer` serves it with uvicorn in a
background thread (``q2c run`` and ``q2c demo --serve`` use it). A
dispatcher thread starts the flows of accepted webhook events as soon as a
delivery is committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from quote2cash.api import _problems, console, routes, webhooks
from quote2cash.api._auth import check
from quote2cash.api._problems import problem
from quote2cash.api.metrics import Health, HubMetrics
from quote2cash.flows import intake
from quote2cash.runtime.hub import Hub

log = structlog.get_logger("quote2cash.api")
STATIC = Path(__file__).with_name("static")
VERSION = "1.0.0"


class Dispatcher:
    """Starts the flows of accepted events: at once when woken, and every ``interval`` seconds;
    reads the CRM's closed-won feed first when a webhook said a deal changed there."""

    def __init__(self, hub: Hub, interval: float = 1.0) -> None:
        self.hub = hub
        self.interval = interval
        self._wake = threading.Event()
        self._poll = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Dispatch now (called after a delivery is committed)."""
        self._wake.set()

    def poll_crm(self) -> None:
        """Read the CRM's closed-won feed now, then dispatch (a webhook that names a changed deal)."""
        self._poll.set()
        self._wake.set()

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True, name="q2c-dispatcher")
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread; accepted events stay in the inbox for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self._poll.is_set():
                    self._poll.clear()
                    intake.poll_closed_won(self.hub, dispatch_now=False)
                intake.dispatch(self.hub)
            except Exception as exc:  # the inbox keeps the events: the next round starts them
                log.warning("dispatch.failed", error=type(exc).__name__, detail=str(exc)[:200])


def create_app(hub: Hub, *, dispatch: bool = True) -> FastAPI:
    """The app over a launched hub; ``dispatch`` runs the dispatcher thread while it serves."""
    dispatcher = Dispatcher(hub)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if dispatch:
            dispatcher.start()
        try:
            yield
        finally:
            dispatcher.stop()

    app = FastAPI(
        title="quote2cash hub",
        version=VERSION,
        description=(
            "Webhook intake, the operations API and the console of the quote2cash hub. Every route "
            "needs an API token (`Authorization: Bearer q2c_…`) except `/healthz` and the webhook "
            "routes, which verify each source's own signature. Errors are RFC 9457 problem details "
            "carrying the hub's stable error codes (`docs/errors.md`)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.dispatcher = dispatcher
    app.state.metrics = metrics = HubMetrics(hub)
    health = Health(hub)
    _problems.install(app)
    limit = hub.config.api.max_body_bytes

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response = problem(
                request, "api.too_large", f"the body is {declared} bytes, over the {limit} accepted"
            )
        elif "\x00" in request.url.path or any("\x00" in v for v in request.query_params.values()):
            # No database takes a NUL character in text: refused here, never a 500 further in.
            response = problem(
                request, "api.malformed", "the path or a query parameter holds a NUL character"
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", None) or "unmatched"
        metrics.observe(name, request.method, response.status_code, time.perf_counter() - started)
        return response

    app.include_router(webhooks.router)
    app.include_router(routes.router)
    app.include_router(console.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> Response:
        """Each connected system's state and the database's; 503 when the database is down."""
        report = await run_in_threadpool(health.report)
        return JSONResponse(report, status_code=503 if report["status"] == "down" else 200)

    @app.get("/metrics", tags=["health"], response_class=Response, responses=_problems.responses(401, 403))
    async def prometheus(request: Request) -> Response:
        """Prometheus metrics: technical and business (needs the ``read`` scope)."""
        await run_in_threadpool(check, request, "read")
        body = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI 3 document, with the bearer scheme every route but the open ones needs."""
    doc = app.openapi()
    doc.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token from `q2c tokens create`",
    }
    for path, ops in doc["paths"].items():
        open_route = path == "/healthz" or path.startswith("/webhooks/") or path.startswith("/console")
        for op in ops.values():
            if not open_route:
                op["security"] = [{"bearer": []}]
    return doc


class ApiServer:
    """The app served by uvicorn in a background thread."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="q2c-api")
        self.host = host

    def start(self, timeout: float = 15.0) -> ApiServer:
        """Start and wait until the socket listens."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the hub's API server did not start (is the port in use?)")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Ask uvicorn to exit and wait."""
        self._server.should_exit = True
        self._thread.join(timeout=15)


def serve(hub: Hub, *, host: str | None = None, port: int | None = None) -> ApiServer:
    """Serve the app over ``hub`` on the configured (or given) address."""
    api = hub.config.api
    return ApiServer(create_app(hub), host=host or api.host, port=api.port if port is None else port).start()
