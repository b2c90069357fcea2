"""The API routes, built at start-up from the services' descriptors and their google.api.http rules."""

from __future__ import annotations

import importlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote

import grpc
import structlog
from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from workermon.common.v1 import access_pb2
from workermon_core.auth import TokenAuthority, authorize, bearer_token, role_name
from workermon_core.errors import DomainError, InvalidArgument

from . import errors, transcode
from .json_cache import JsonCache
from .moved import MovedPath, moved_paths, moved_target
from .transcode import PathTemplate
from .upstream import Upstream, grpc_path, request_class, response_class

log = structlog.get_logger("workermon.gateway")

# Every service the gateway exposes; a new service is one more name here (its *_pb2 module is found by
# convention: workermon.<area>.v1.FooService lives in workermon.<area>.v1.foo_service_pb2).
SERVICES: tuple[str, ...] = (
    "workermon.monitor.v1.MonitorService",
    "workermon.heartbeat.v1.HeartbeatService",
    "workermon.collector.v1.CollectorService",
    "workermon.incidents.v1.IncidentService",
)
MAX_BODY_BYTES = 4 * 1024 * 1024
DESCRIPTOR_SET = "descriptors.binpb"
HTTP_BODY = "google.api.HttpBody"
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One HTTP binding of one RPC."""

    method: MethodDescriptor
    verb: str
    template: PathTemplate
    body: str
    response_body: str
    min_role: int
    action_role: int
    # A server stream of google.api.HttpBody (or of messages whose `response_body` is one): its chunks
    # are the HTTP response body (an export).
    streaming: bool = False

    @property
    def grpc_path(self) -> str:
        """'/workermon.monitor.v1.MonitorService/PauseQueue'."""
        return grpc_path(self.method)

    @property
    def service(self) -> str:
        """Short service name: 'MonitorService'."""
        return str(self.method.containing_service.name)

    @property
    def path_fields(self) -> frozenset[str]:
        """Fields the path binds, as proto field paths."""
        return frozenset(self.template.variables)

    @property
    def description(self) -> str:
        """The RPC's proto comment."""
        return proto_comments().get(self.method.full_name, "")

    @property
    def min_role_name(self) -> str:
        """'viewer' (empty when the RPC declares none)."""
        return role_name(self.min_role) if self.min_role else ""

    @property
    def action_role_name(self) -> str:
        """'operator' for an audited action needing it, else empty."""
        return role_name(self.action_role) if self.action_role else ""


def _service_descriptor(name: str) -> Any:
    pool = descriptor_pool.Default()
    try:
        return pool.FindServiceByName(name)
    except KeyError:
        package, _, service = name.rpartition(".")
        module = re.sub(r"(?<!^)(?=[A-Z])", "_", service).lower() + "_pb2"
        importlib.import_module(f"{package}.{module}")
        return pool.FindServiceByName(name)


def _bindings(rule: http_pb2.HttpRule) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    pattern = rule.WhichOneof("pattern")
    if pattern in _VERBS:
        out.append((pattern.upper(), getattr(rule, pattern), rule.body, rule.response_body))
    elif pattern == "custom":
        out.append((rule.custom.kind.upper(), rule.custom.path, rule.body, rule.response_body))
    for extra in rule.additional_bindings:
        out.extend(_bindings(extra))
    return out


def _chunk_type(method: MethodDescriptor, response_body: str) -> str:
    """The full name of what an RPC answers with, or of its `response_body` field when it names one."""
    output = method.output_type
    if response_body and response_body in output.fields_by_name:
        field = output.fields_by_name[response_body]
        return str(field.message_type.full_name) if field.message_type else ""
    return str(output.full_name)


def build_routes(services: Sequence[str] = SERVICES) -> list[ApiRoute]:
    """A route for every unary RPC with a google.api.http rule, and for server streams of HttpBody (other
    server streams are served elsewhere)."""
    routes: list[ApiRoute] = []
    for name in services:
        for method in _service_descriptor(name).methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            for verb, path, body, response_body in _bindings(options.Extensions[annotations_pb2.http]):
                streaming = method.server_streaming and _chunk_type(method, response_body) == HTTP_BODY
                if method.client_streaming or (method.server_streaming and not streaming):
                    continue
                routes.append(
                    ApiRoute(
                        method=method,
                        verb=verb,
                        template=PathTemplate.parse(path),
                        body=body,
                        response_body=response_body,
                        min_role=int(options.Extensions[access_pb2.min_role]),
                        action_role=int(options.Extensions[access_pb2.action_role]),
                        streaming=streaming,
                    )
                )
    return routes


@cache
def proto_comments() -> dict[str, str]:
    """Leading comments by full name (services, methods, messages, fields, enums, values); {} if absent.

    The generated stubs carry no source info, so they come from the descriptor set written beside them.
    """
    try:
        raw = resources.files("workermon").joinpath(DESCRIPTOR_SET).read_bytes()
    except (FileNotFoundError, OSError):
        return {}
    found: dict[str, str] = {}
    for file in descriptor_pb2.FileDescriptorSet.FromString(raw).file:
        by_path = {
            tuple(loc.path): " ".join(line.strip() for line in loc.leading_comments.strip().splitlines())
            for loc in file.source_code_info.location
            if loc.leading_comments
        }
        package = file.package

        def enum(
            e: descriptor_pb2.EnumDescriptorProto,
            scope: str,
            path: tuple[int, ...],
            by_path: dict[tuple[int, ...], str] = by_path,
        ) -> None:
            full = f"{scope}.{e.name}"
            found[full] = by_path.get(path, "")
            for i, value in enumerate(e.value):
                # Enum values live in the enclosing scope, not inside the enum.
                found[f"{scope}.{value.name}"] = by_path.get((*path, 2, i), "")

        def message(
            m: descriptor_pb2.DescriptorProto,
            scope: str,
            path: tuple[int, ...],
            by_path: dict[tuple[int, ...], str] = by_path,
        ) -> None:
            full = f"{scope}.{m.name}"
            found[full] = by_path.get(path, "")
            for i, field in enumerate(m.field):
                found[f"{full}.{field.name}"] = by_path.get((*path, 2, i), "")
            for i, nested in enumerate(m.nested_type):
                message(nested, full, (*path, 3, i))
            for i, nested_enum in enumerate(m.enum_type):
                enum(nested_enum, full, (*path, 4, i))

        for i, m in enumerate(file.message_type):
            message(m, package, (4, i))
        for i, e in enumerate(file.enum_type):
            enum(e, package, (5, i))
        for i, service in enumerate(file.service):
            found[f"{package}.{service.name}"] = by_path.get((6, i), "")
            for j, rpc in enumerate(service.method):
                found[f"{package}.{service.name}.{rpc.name}"] = by_path.get((6, i, 2, j), "")
    return {name: text for name, text in found.items() if text}


def _strip_root(scope: Scope) -> tuple[str, str]:
    """(decoded path, raw path) relative to the app's root_path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    raw_bytes: bytes | None = scope.get("raw_path")
    raw = raw_bytes.decode("latin-1") if raw_bytes else quote(path)
    if root and path.startswith(root):
        path = path[len(root) :]
        raw = raw[len(root) :] if raw.startswith(root) else quote(path)
    return path, raw


class BodyTooLarge(DomainError):
    """A request body over MAX_BODY_BYTES (HTTP 413)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "BODY_TOO_LARGE"


class ApiRouter(BaseRoute):
    """Everything under the base path: transcodes each request to its RPC and the reply back to JSON."""

    def __init__(
        self,
        routes: Sequence[ApiRoute],
        base_path: str,
        upstream: Upstream,
        authority: TokenAuthority,
        moved: Sequence[MovedPath] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.moved = moved_paths() if moved is None else list(moved)
        self.base_path = base_path
        self.upstream = upstream
        self.authority = authority
        self.json_cache = JsonCache()
        # With an empty base path the API still claims only its own versioned prefixes (/v1/...).
        self._prefixes = tuple(sorted({"/" + r.template.template.split("/")[1] for r in self.routes}))

    def _claims(self, path: str) -> bool:
        if self.base_path:
            return path == self.base_path or path.startswith(self.base_path + "/")
        return any(path == p or path.startswith((p + "/", p + ":")) for p in self._prefixes)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Claim every HTTP request under the base path (unknown ones get the 404 error shape)."""
        if scope["type"] == "http" and self._claims(_strip_root(scope)[0]):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """API routes are not reversed by name."""
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one API request."""
        request = Request(scope, receive)
        response = await self.dispatch(request)
        await response(scope, receive, send)

    def resolve(self, verb: str, raw_path: str) -> tuple[ApiRoute, dict[str, str]] | list[str] | None:
        """The route and its path variables; the allowed verbs when only the verb is wrong; None."""
        found = [(r, v) for r in self.routes if (v := r.template.match(raw_path)) is not None]
        if not found:
            return None
        best = max(r.template.specificity for r, _ in found)
        top = [(r, v) for r, v in found if r.template.specificity == best]
        for route, variables in top:
            if route.verb == verb:
                return route, variables
        return sorted({r.verb for r, _ in top})

    async def dispatch(self, request: Request) -> Response:
        """Resolve, authenticate, transcode, call, render; every failure in the error shape."""
        rid = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        path, raw = _strip_root(request.scope)
        sub = raw[len(self.base_path) :] if raw.startswith(self.base_path) else path[len(self.base_path) :]
        verb = "GET" if request.method == "HEAD" else request.method
        resolved = self.resolve(verb, sub)
        if resolved is None and (target := moved_target(self.moved, sub)) is not None:
            return _moved_permanently(request, self.base_path + target)
        if resolved is None:
            return errors.not_found(path)
        if isinstance(resolved, list):
            return errors.method_not_allowed(request.method, path, resolved)
        route, variables = resolved
        try:
            return await self._call(request, route, variables, rid)
        except DomainError as err:
            return errors.domain_error_response(err, http=413 if isinstance(err, BodyTooLarge) else None)
        except grpc.aio.AioRpcError as exc:
            return errors.rpc_error_response(exc)
        except Exception:
            log.exception("gateway_request_failed", request_id=rid, rpc=route.grpc_path)
            return errors.internal_error(rid)

    async def _call(self, request: Request, route: ApiRoute, variables: dict[str, str], rid: str) -> Response:
        header = request.headers.get("authorization")
        token = bearer_token((("authorization", header),) if header is not None else None)
        principal = self.authority.verify(token)
        # Early refusal on min_role only: an action_role refusal must reach the service to be audited.
        authorize(principal, route.grpc_path, route.min_role)

        message = request_class(route.method)()
        if route.body:
            raw = await _read_body(request)
            transcode.apply_body(message, raw, route.body)
        if route.body != "*":
            transcode.apply_query(message, list(request.query_params.multi_items()), bound=route.path_fields)
        elif request.query_params:
            first = next(iter(request.query_params.keys()))
            raise InvalidArgument(first, "this route takes its fields in the JSON body")
        transcode.apply_path(message, variables)

        if route.streaming:
            return await self._stream(route, message, token, rid)
        started = time.perf_counter()
        raw = await self.upstream.unary_bytes(route.method, message, token=token, request_id=rid)
        request.state.upstream_ms = round((time.perf_counter() - started) * 1000, 2)

        def render(reply_bytes: bytes) -> dict[str, Any]:
            out: Message = response_class(route.method).FromString(reply_bytes)
            if route.response_body:
                out = getattr(out, route.response_body)
            return transcode.to_json(out)

        body = self.json_cache.body(route.grpc_path, raw, render)
        return Response(body, media_type="application/json")

    async def _stream(self, route: ApiRoute, message: Message, token: str | None, rid: str) -> Response:
        """The chunks of an HttpBody stream as one streamed response; an error before the first chunk is
        an ordinary error response (after it, the body just ends)."""
        replies = self.upstream.server_stream(route.method, message, token=token, request_id=rid)

        async def bodies() -> AsyncIterator[Message]:
            async for reply in replies:
                yield getattr(reply, route.response_body) if route.response_body else reply

        chunks = bodies()
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            return Response(b"", media_type="application/octet-stream")

        async def body() -> AsyncIterator[bytes]:
            yield bytes(getattr(first, "data", b""))
            try:
                async for chunk in chunks:
                    yield bytes(getattr(chunk, "data", b""))
            except grpc.aio.AioRpcError as exc:
                log.warning("gateway_stream_failed", request_id=rid, rpc=route.grpc_path, error=exc.details())

        return StreamingResponse(
            body(), media_type=getattr(first, "content_type", "") or "application/octet-stream"
        )


def _moved_permanently(request: Request, path: str) -> Response:
    """308 to `path` under the app's root path, with the query string: method and body are kept."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    location = request.scope.get("root_path", "") + path + (f"?{query}" if query else "")
    return Response(status_code=308, headers={"location": location})


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
