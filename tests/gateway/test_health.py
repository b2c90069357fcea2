"""/healthz answers while the process runs; /readyz only while every service behind it is SERVING."""

from __future__ import annotations

from tests.support.gateway import Gateway
from workermon_gateway.routes import SERVICES


async def test_healthz_and_readyz(gateway: Gateway) -> None:
    client = gateway.client(None)
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["services"].values()) == {"SERVING"} and len(ready.json()["services"]) == len(
        SERVICES
    )


async def test_readyz_names_the_services_not_serving(gateway: Gateway) -> None:
    # What SIGTERM does first: every service goes NOT_SERVING, and stays so (last test of the module).
    await gateway.suite.server.health.enter_graceful_shutdown()
    client = gateway.client(None)
    reply = await client.get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["notServing"] == sorted(reply.json()["services"]) and len(
        reply.json()["notServing"]
    ) == len(SERVICES)
    assert (await client.get("/healthz")).status_code == 200
