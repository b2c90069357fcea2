"""A self-contained HTML page documenting every route (no scripts, no CDN), from the OpenAPI document."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#1d2430}
h1{margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #d8dde6}
section{margin:1.2em 0;padding:.6em 1em;border:1px solid #d8dde6;border-radius:6px}
code{font:13px ui-monospace,monospace;background:#f2f4f8;padding:.1em .3em;border-radius:3px}
.verb{font-weight:700;display:inline-block;min-width:4em}
.GET{color:#0a7d38}.POST{color:#b35c00}.PUT,.PATCH{color:#5a32a3}.DELETE{color:#b3261e}
table{border-collapse:collapse;width:100%;margin:.5em 0} td,th{text-align:left;padding:.2em .5em;
border-bottom:1px solid #eceff4;vertical-align:top} th{font-weight:600} .role{color:#555}
"""


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    if "allOf" in schema:
        return _type(schema["allOf"][0])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return str(schema.get("format") or schema.get("type") or "any")


def _enum_values(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    target = schema.get("items", schema) if schema.get("type") == "array" else schema
    ref = target.get("$ref")
    if not ref:
        return []
    found = document["components"]["schemas"].get(str(ref).rsplit("/", 1)[-1], {})
    return [str(v) for v in found.get("enum", []) if not str(v).endswith("_UNSPECIFIED")]


def render_docs(document: dict[str, Any], base_url: str) -> str:
    """The docs page: per service, each route with its description, role, parameters and body fields."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>{escape(document['info']['title'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(document['info']['title'])}</h1>",
        f"<p>{escape(document['info']['description'])}</p>",
        f"<p>Base URL <code>{escape(base_url)}</code>. Every request needs <code>Authorization: Bearer "
        "&lt;token&gt;</code> (<code>workermon token --role viewer --sub me</code> prints one). "
        "Machine-readable: <a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in document["paths"].items():
        for verb, op in operations.items():
            by_tag.setdefault(op["tags"][0], []).append((path, verb.upper(), op))
    for tag in document.get("tags", []):
        name = tag["name"]
        parts.append(f"<h2>{escape(name)}</h2><p>{escape(tag.get('description', ''))}</p>")
        for path, verb, op in by_tag.get(name, []):
            anchor = escape(op["operationId"])
            role = escape(op.get("x-min-role") or "none")
            if op.get("x-action-role"):
                role += f"; acting needs <b>{escape(op['x-action-role'])}</b>"
            parts.append(
                f"<section id='{anchor}'><div><span class='verb {verb}'>{verb}</span> "
                f"<code>{escape(base_url + path)}</code></div>"
                f"<p>{escape(op.get('description', '').split(chr(10))[0])}</p>"
                f"<p class=role>Role: {role} · gRPC <code>{escape(op.get('x-grpc-method', ''))}</code></p>"
            )
            rows = []
            for param in op.get("parameters", []):
                values = _enum_values(document, param["schema"])
                extra = f" One of: {', '.join(values)}." if values else ""
                rows.append(
                    f"<tr><td><code>{escape(param['name'])}</code></td><td>{escape(param['in'])}</td>"
                    f"<td>{escape(_type(param['schema']))}</td>"
                    f"<td>{escape(param.get('description', '') + extra)}</td></tr>"
                )
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            for field, schema in body.get("properties", {}).items():
                rows.append(
                    f"<tr><td><code>{escape(field)}</code></td><td>body</td><td>{escape(_type(schema))}</td>"
                    f"<td>{escape(schema.get('description', ''))}</td></tr>"
                )
            if rows:
                parts.append(
                    "<table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>"
                    + "".join(rows)
                    + "</table>"
                )
            parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)
