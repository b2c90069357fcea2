"""The OpenAPI 3.1 document, generated from the same descriptors and rules as the routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from . import transcode
from .routes import ApiRoute, proto_comments

ERROR_SCHEMA = "Error"
ERROR_REF = f"#/components/schemas/{ERROR_SCHEMA}"
_INT32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
_UINT32 = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}
_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64}
_UINT64 = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}
_FLOAT = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}
_DURATION_PATTERN = r"^-?[0-9]+(\.[0-9]{1,9})?s$"

# JSON forms of the well-known types, per the proto3 JSON mapping.
_WKT: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": _DURATION_PATTERN, "examples": ["30s"]},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64"},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64"},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "minimum": 0},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": {"type": "string", "contentEncoding": "base64"},
}


def _described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    if not description:
        return schema
    if "$ref" in schema:
        # 3.1 allows siblings of $ref, but several tools still drop them: wrap instead.
        return {"allOf": [schema], "description": description}
    return {**schema, "description": description}


class SchemaBuilder:
    """Collects component schemas for the messages and enums the routes touch."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}
        self.comments = proto_comments()

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        """A $ref to the enum's schema: its value names as strings."""
        name = enum.full_name
        if name not in self.schemas:
            values = [v.name for v in enum.values]
            lines = [f"- `{v.name}`: {self.comments.get(_value_name(enum, v.name), '')}" for v in enum.values]
            description = "\n".join([self.comments.get(name, ""), "", *lines]).strip()
            self.schemas[name] = {"type": "string", "enum": values, "description": description}
        return {"$ref": f"#/components/schemas/{name}"}

    def message(self, message: Descriptor, *, exclude: frozenset[str] | None = None) -> dict[str, Any]:
        """A $ref to the message's schema; inline, without the `exclude` fields, for a request body."""
        name = message.full_name
        if name in _WKT:
            return dict(_WKT[name])
        if exclude is not None:
            return self._object(message, exclude)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursive messages refer to themselves
            self.schemas[name] = self._object(message, None)
        return {"$ref": f"#/components/schemas/{name}"}

    def _object(self, message: Descriptor, exclude: frozenset[str] | None) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in message.fields:
            if exclude is not None and field.name in exclude:
                continue
            properties[field.json_name] = _described(
                self.field(field), self.comments.get(f"{message.full_name}.{field.name}", "")
            )
            if field.is_repeated and exclude is None:
                # Responses always carry repeated fields (see transcode.to_json).
                required.append(field.json_name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if exclude is not None:
            schema["additionalProperties"] = False
        else:
            schema["description"] = self.comments.get(message.full_name, "")
            if required:
                schema["required"] = required
        return schema

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        """The JSON schema of a field's value (an array for repeated fields, an object for maps)."""
        entry = field.message_type
        if field.type == FieldDescriptor.TYPE_MESSAGE and entry is not None and entry.GetOptions().map_entry:
            value = entry.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.single(value)}
        single = self.single(field)
        if field.is_repeated:
            return {"type": "array", "items": single}
        return single

    def single(self, field: FieldDescriptor) -> dict[str, Any]:
        """The schema of one value of the field's type."""
        kind = field.type
        if kind in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP) and field.message_type:
            return self.message(field.message_type)
        if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            return self.enum(field.enum_type)
        return scalar_schema(kind)


def scalar_schema(kind: int) -> dict[str, Any]:
    """proto3 JSON mapping of a scalar: 64-bit integers are strings, bytes base64."""
    if kind in _INT32:
        return {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
    if kind in _UINT32:
        return {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
    if kind in _INT64:
        return {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"}
    if kind in _UINT64:
        return {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"}
    if kind in _FLOAT:
        return {"type": "number"}
    if kind == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    return {"type": "string"}


def _value_name(enum: EnumDescriptor, value: str) -> str:
    scope = enum.full_name.rsplit(".", 1)[0]
    return f"{scope}.{value}"


def _query_parameters(
    builder: SchemaBuilder, message: Descriptor, bound: frozenset[str], prefix: str = "", depth: int = 0
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for field in message.fields:
        proto_path = f"{prefix}{field.name}"
        if proto_path in bound:
            continue
        json_path = ".".join([*(p for p in prefix.split(".") if p), field.json_name])
        if transcode.is_query_leaf(field):
            schema = builder.field(field)
            param: dict[str, Any] = {
                "name": json_path,
                "in": "query",
                "required": False,
                "schema": schema,
                "description": builder.comments.get(f"{message.full_name}.{field.name}", ""),
            }
            if schema.get("type") == "array":
                param.update(style="form", explode=True)
            params.append(param)
        elif (
            field.type == FieldDescriptor.TYPE_MESSAGE
            and field.message_type is not None
            and not field.is_repeated
            and not field.message_type.GetOptions().map_entry
            and depth < 3
        ):
            nested = field.message_type
            params.extend(_query_parameters(builder, nested, bound, f"{proto_path}.", depth + 1))
    return params


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Every error: the HTTP status, the gRPC code name, a message and google.rpc details.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "status", "message", "details"],
                "properties": {
                    "code": {"type": "integer", "description": "HTTP status"},
                    "status": {"type": "string", "description": "gRPC code name, such as NOT_FOUND"},
                    "message": {"type": "string"},
                    "details": {
                        "type": "array",
                        "description": "google.rpc.ErrorInfo and google.rpc.BadRequest, with @type",
                        "items": {
                            "type": "object",
                            "required": ["@type"],
                            "properties": {"@type": {"type": "string"}},
                        },
                    },
                },
            }
        },
    }


def _role_text(route: ApiRoute) -> str:
    text = f"Role: {route.min_role_name or 'none'}"
    if route.action_role_name:
        text += f" to call; {route.action_role_name} to act (a refusal is audited)"
    return text


def operation_ids(routes: Sequence[ApiRoute]) -> dict[int, str]:
    """The RPC name as operationId; qualified with the service when two services share it."""
    names = [r.method.name for r in routes]
    out: dict[int, str] = {}
    for i, route in enumerate(routes):
        base = route.method.name if names.count(route.method.name) == 1 else route.method.full_name
        out[i] = base
    # Several bindings of one RPC need distinct ids.
    seen: dict[str, int] = {}
    for i, name in out.items():
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            out[i] = f"{name}_{seen[name]}"
    return out


def build_openapi(routes: Sequence[ApiRoute], base_path: str, *, version: str = "0.1.0") -> dict[str, Any]:
    """An OpenAPI 3.1 document describing every route (servers: the base path)."""
    builder = SchemaBuilder()
    paths: dict[str, dict[str, Any]] = {}
    ids = operation_ids(routes)
    for i, route in enumerate(routes):
        request = route.method.input_type
        parameters: list[dict[str, Any]] = []
        for variable in route.template.variables:
            leaf = transcode.resolve_field(request, variable)[-1]
            owner = leaf.containing_type.full_name if leaf.containing_type else ""
            schema = builder.field(leaf)
            parameters.append(
                {
                    "name": variable,
                    "in": "path",
                    "required": True,
                    "schema": {**schema, **_path_constraint(schema)},
                    "description": builder.comments.get(f"{owner}.{leaf.name}", ""),
                }
            )
        if route.body != "*":
            parameters.extend(_query_parameters(builder, request, route.path_fields))
        operation: dict[str, Any] = {
            "operationId": ids[i],
            "tags": [route.service],
            "summary": _summary(route),
            "description": f"{route.description}\n\n{_role_text(route)}. gRPC: `{route.grpc_path}`.".strip(),
            "x-grpc-method": route.grpc_path,
            "x-min-role": route.min_role_name,
            "parameters": parameters,
            "responses": {
                "200": _ok(builder, route),
                "default": {
                    "description": "An error (see Error)",
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
                    },
                },
            },
        }
        if route.action_role_name:
            operation["x-action-role"] = route.action_role_name
        if route.body:
            if route.body == "*":
                body_schema = builder.message(request, exclude=route.path_fields)
            else:
                body_schema = builder.field(transcode.resolve_field(request, route.body)[-1])
            operation["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": body_schema}},
            }
        paths.setdefault(route.template.openapi_path(), {})[route.verb.lower()] = operation
    schemas = dict(sorted(builder.schemas.items()))
    schemas[ERROR_SCHEMA] = _error_schema()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Worker Monitor API",
            "version": version,
            "description": (
                "HTTP/JSON API of the Worker Monitor services, derived from their protos' google.api.http "
                "rules. JSON follows the proto3 mapping: lowerCamelCase names, 64-bit integers as strings, "
                'enums by name, timestamps in RFC 3339, durations such as "30s". Fields at their default '
                "value are left out, except lists, which are always present. Query enums also take the "
                "short lower-case name (`states=failed`)."
            ),
        },
        "servers": [{"url": base_path or "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "tags": [
            {
                "name": route.service,
                "description": proto_comments().get(route.method.containing_service.full_name, ""),
            }
            for route in {r.service: r for r in routes}.values()
        ],
    }


def _ok(builder: SchemaBuilder, route: ApiRoute) -> dict[str, Any]:
    """The success response: the reply message as JSON, or a streamed file for an HttpBody stream."""
    if route.streaming:
        text = {"schema": {"type": "string"}}
        return {
            "description": "A file, streamed (JSON lines or CSV, as the format asks)",
            "content": {"application/x-ndjson": text, "text/csv": text},
        }
    return {
        "description": "OK",
        "content": {"application/json": {"schema": builder.message(route.method.output_type)}},
    }


def _summary(route: ApiRoute) -> str:
    """The first sentence of the RPC's comment."""
    if not route.description:
        return str(route.method.name)
    return route.description.split(". ")[0].rstrip(".")


def _path_constraint(schema: dict[str, Any]) -> dict[str, Any]:
    # A path segment is never empty, and `/` would leave the segment.
    if schema.get("type") == "string" and "pattern" not in schema and "format" not in schema:
        return {"minLength": 1, "pattern": "^[^/]+$"}
    return {}
