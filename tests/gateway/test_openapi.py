"""The OpenAPI document and the docs page: valid OpenAPI 3.1, one operation per route, described from the
proto comments, with the JSON mapping's types.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from tests.support.gateway import Gateway
from workermon_gateway import openapi_dump
from workermon_gateway.openapi import build_openapi
from workermon_gateway.routes import build_routes, proto_comments


async def test_document_is_valid_openapi_31(gateway: Gateway) -> None:
    reply = await gateway.client(None).get("/openapi.json")
    assert reply.status_code == 200
    document: dict[str, Any] = reply.json()
    errors = [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert errors == []
    assert document["openapi"] == "3.1.0" and document["servers"] == [{"url": "/api"}]
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_every_route_is_an_operation() -> None:
    routes = build_routes()
    document = build_openapi(routes, "/api")
    operations = {(verb.upper(), path) for path, ops in document["paths"].items() for verb in ops}
    assert operations == {(r.verb, r.template.openapi_path()) for r in routes}
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) == len(build_routes())
    # Server streams are served by the live stream, not as plain routes.
    assert "/v1/workers:watch" not in document["paths"]


def test_parameters_bodies_and_types() -> None:
    document = build_openapi(build_routes(), "/api")
    schemas = document["components"]["schemas"]
    jobs = document["paths"]["/v1/queues/{queue}/jobs"]["get"]
    params = {p["name"]: p for p in jobs["parameters"]}
    assert params["queue"]["in"] == "path" and params["queue"]["required"] is True
    assert params["states"]["schema"]["type"] == "array" and params["states"]["explode"] is True
    state_ref = params["states"]["schema"]["items"]["$ref"].rsplit("/", 1)[-1]
    assert "JOB_STATE_FAILED" in schemas[state_ref]["enum"]
    assert params["pageSize"]["schema"]["type"] == "integer"
    assert params["pageSize"]["description"].startswith("Page size")
    trend = {p["name"]: p for p in document["paths"]["/v1/queues/{queue}/trend"]["get"]["parameters"]}
    assert trend["startTime"]["schema"] == {"type": "string", "format": "date-time"}
    assert trend["step"]["schema"]["pattern"].endswith("s$")

    pause = document["paths"]["/v1/queues/{queue}:pause"]["post"]
    body = pause["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"reason"} and body["additionalProperties"] is False
    assert pause["x-min-role"] == "viewer" and pause["x-action-role"] == "operator"
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert pause["responses"]["default"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    queue = schemas["workermon.monitor.v1.Queue"]
    # 64-bit integers are strings in proto3 JSON.
    assert queue["properties"]["jobsPerMinute"]["type"] == "string"
    assert queue["properties"]["jobsPerMinute"]["format"] == "int64"
    parameters = schemas["workermon.monitor.v1.AuditLog"]["properties"]["parameters"]
    # google.protobuf.Struct: any JSON object (generated clients must not read it as an empty one).
    assert parameters["type"] == "object" and parameters["additionalProperties"] is True
    assert "topFailureCategories" in queue["required"]
    assert document["paths"]["/v1/overview"]["get"]["summary"].startswith("Totals across every queue")


async def test_the_dump_is_the_served_document(gateway: Gateway, tmp_path: Path) -> None:
    served = (await gateway.client(None).get("/openapi.json")).json()
    assert json.loads(openapi_dump.render()) == served
    out = tmp_path / "openapi.json"
    assert openapi_dump.main(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == openapi_dump.render()
    assert json.loads(openapi_dump.render("/elsewhere/api"))["servers"] == [{"url": "/elsewhere/api"}]


def test_comments_come_from_the_protos() -> None:
    comments = proto_comments()
    assert comments["workermon.monitor.v1.MonitorService.PauseQueue"].startswith("Pauses a queue")
    assert comments["workermon.monitor.v1.ListJobsRequest.page_size"].startswith("Page size")
    assert comments["workermon.monitor.v1.JOB_STATE_FAILED"] == "Failed for good."


async def test_docs_page(gateway: Gateway) -> None:
    reply = await gateway.client(None).get("/docs")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    page = reply.text
    # Self-contained: no scripts, nothing loaded from elsewhere.
    assert "<script" not in page and "src=" not in page and "<link" not in page
    for route in build_routes():
        assert "/api" + route.template.openapi_path() in page
    assert "Pauses a queue" in page and "acting needs <b>operator</b>" in page
    assert "JOB_STATE_FAILED" in page
