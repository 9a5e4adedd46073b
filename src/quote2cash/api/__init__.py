"""The hub's HTTP surface: webhook intake per vendor, the operations API
(OpenAPI 3, RFC 9457 problem details), the console, ``/metrics`` and ``/healthz``.

- :func:`create_app` — the FastAPI app over a launched hub;
- :func:`serve` / :class:`ApiServer` — the app served by uvicorn in a thread;
- :func:`openapi_document` — the OpenAPI document committed as ``docs/openapi.json``.
"""

from __future__ import annotations

from quote2cash.api.app import ApiServer, create_app, openapi_document, serve

__all__ = ["ApiServer", "create_app", "openapi_document", "serve"]
