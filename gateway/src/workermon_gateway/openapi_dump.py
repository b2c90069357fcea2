"""Print the gateway's OpenAPI document without starting anything: the admin UI's API types come from it.

    uv run --frozen python -m workermon_gateway.openapi_dump > admin/openapi.json

The document is the one `/openapi.json` serves, built from the same descriptors and rules; the base path
defaults to the UI's ("/api"). Keys keep their order, so the output is stable from run to run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .openapi import build_openapi
from .routes import build_routes

DEFAULT_BASE_PATH = "/api"


def document(base_path: str = DEFAULT_BASE_PATH) -> dict[str, Any]:
    """The OpenAPI document for every route, with `base_path` as its server."""
    return build_openapi(build_routes(), base_path)


def render(base_path: str = DEFAULT_BASE_PATH) -> str:
    """The document as indented JSON with a final newline."""
    return json.dumps(document(base_path), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the document to stdout, or to `--output`."""
    parser = argparse.ArgumentParser(prog="python -m workermon_gateway.openapi_dump", description=__doc__)
    parser.add_argument("--base-path", default=DEFAULT_BASE_PATH, help="server URL in the document")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    args = parser.parse_args(argv)
    text = render(args.base_path)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
