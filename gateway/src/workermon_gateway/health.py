"""Liveness and readiness of the gateway: /healthz (this process) and /readyz (the services behind it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .upstream import Upstream


def health_routes(upstream: Upstream, services: Sequence[str]) -> list[Route]:
    """`/healthz` answers 200 while the process runs; `/readyz` 200 only when every service is SERVING."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        states = await asyncio.gather(*(upstream.health(name) for name in services))
        by_service = dict(zip(services, states, strict=True))
        not_ready = {name: state for name, state in by_service.items() if state != "SERVING"}
        body: dict[str, object] = {
            "status": "ready" if not not_ready else "not ready",
            "services": by_service,
            "notServing": sorted(not_ready),
        }
        status = 503 if not_ready else 200
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
