"""The HTTP app: ``POST /v1/inspect``, health, info, metrics, and the drop-a-file page at ``/``.

Every API endpoint but health asks for the bearer token when the service has one (compared in
constant time). No endpoint takes a server path, no CORS header is ever sent, and a request from a
browser page of another origin is refused, so that a web page cannot make a local service work
for it. The interactive docs are off (they load from a CDN); the schema is at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..version import __version__
from .page import drop_page
from .refusals import Refused
from .service import Service
from .uploads import FIELD, UploadLimits, receive_uploads

API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
ROUTES = ("/", "/v1/inspect", "/v1/health", "/v1/info", "/metrics", "/openapi.json")
_UPLOAD_SCHEMA = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [FIELD],
        "properties": {FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}},
    }}},
}  # fmt: skip


class _CountRequests:
    """ASGI middleware: every answer counted by endpoint and status, with the API's headers."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in ROUTES else "other"

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.service.metrics.requests.labels(endpoint, str(message["status"])).inc()
                present = {key.lower() for key, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in API_HEADERS.items() if k.lower().encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, counted)


def create_app(service: Service) -> FastAPI:
    """The app answering for ``service``."""
    app = FastAPI(title="aigdetect", version=__version__, docs_url=None, redoc_url=None,
                  description="Tell AI-generated images from real photographs, with the evidence and the credentials.")  # fmt: skip
    config = service.config
    limits = UploadLimits(config.max_upload_bytes, config.max_files, config.read_timeout_s)
    page, page_policy = drop_page()

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        service.metrics.errors.labels(exc.reason).inc()
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        service.metrics.errors.labels("internal").inc()
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return JSONResponse({"detail": f"internal error: {detail}"}, status_code=500)

    def authorize(request: Request) -> None:
        if config.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), config.token.encode()):
            raise Refused(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer TOKEN)",
                          {"WWW-Authenticate": "Bearer"})  # fmt: skip

    def same_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise Refused(403, "cross-origin", "requests from pages of another origin are refused")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": page_policy, "X-Frame-Options": "DENY"})

    @app.post("/v1/inspect", openapi_extra={"requestBody": _UPLOAD_SCHEMA},
              summary="Inspect uploaded images: one report per file, as `aigdetect inspect --json` prints it.")  # fmt: skip
    async def inspect(request: Request) -> JSONResponse:
        authorize(request)
        same_origin(request)
        if not service.ready:
            raise Refused(503, "loading", "the detector is still loading; retry shortly")
        started = time.monotonic()
        service.metrics.in_flight.inc()
        try:
            headers = request.headers
            uploads = await receive_uploads(headers.get("content-type"), headers.get("content-length"), request.stream(), limits)
            try:
                reports = await service.inspect(uploads)
            finally:
                await asyncio.to_thread(uploads.remove)  # deleting files can take milliseconds: not on the event loop
        finally:
            service.metrics.in_flight.dec()
        service.metrics.latency.observe(time.monotonic() - started)
        return JSONResponse(reports)

    @app.get("/v1/health", summary="200 once the detector is loaded, 503 before (or when loading failed).")
    async def health() -> JSONResponse:
        if service.ready:
            return JSONResponse({"status": "ok"})
        status = "failed" if service.failure is not None else "loading"
        return JSONResponse({"status": status}, status_code=503)

    @app.get("/v1/info", summary="Detector id, threshold, bands, version, C2PA trust anchors and limits.")
    async def info(request: Request) -> dict[str, Any]:
        authorize(request)
        return service.info()

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        authorize(request)
        body, content_type = service.metrics.text()
        return Response(body, media_type=content_type)

    app.add_middleware(_CountRequests, service=service)
    return app
