"""Property-based run of schemathesis over /openapi.json against the live gateway: no 5xx, and every
answer conforms to the document (status codes, content types, response schemas).

Every operation is included, destructive ones too: they run against this module's private suite, and
their `confirm` field (which must equal the target's name) makes random bodies harmless refusals.
Runs as a subprocess so the gateway keeps serving on this test's event loop while it runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, fail_some

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = "6"
# A time budget would cut hypothesis off mid-operation (reported as an error); examples bound it instead.
PHASES = "examples,coverage,fuzzing,stateful"


def _schemathesis() -> str:
    found = Path(sys.executable).parent / "schemathesis"
    if not found.exists():
        pytest.fail("the schemathesis command is missing: make test installs it with the dev dependencies")
    return str(found)


async def _run(
    gateway: Gateway, role: str, mode: str, checks: str, report: Path, *extra: str
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        _schemathesis(),
        "run",
        f"{gateway.url}/openapi.json",
        "--checks",
        checks,
        "--mode",
        mode,
        "--max-examples",
        MAX_EXAMPLES,
        "--phases",
        PHASES,
        "--seed",
        "20310304",
        "--generation-database",
        "none",
        "--no-color",
        # One worker: with two, CPython 3.11 can fail compiling schemathesis' generated filters in
        # parallel threads ("SystemError: AST constructor recursion depth mismatch"), a run error.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {gateway.token(role, f'fuzz-{role}')}",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    out, _ = await process.communicate()
    return int(process.returncode or 0), out.decode(errors="replace")


@pytest.mark.timeout(400)
@pytest.mark.parametrize("role", ["viewer", "admin"])
async def test_no_server_errors_and_conforming_answers(gateway: Gateway, role: str, tmp_path: Path) -> None:
    queue = gateway.queue("gw-fuzz")
    await fail_some(gateway, queue, completed=1, failed=1)
    started = time.monotonic()
    code, output = await _run(gateway, role, "positive", CHECKS, tmp_path / "positive.xml")
    assert code == 0, output[-6000:]
    if role == "admin":
        # Invalid inputs must be refused with a 4xx, never crash anything (once: they fail the same
        # way whoever sends them). Single path segments (`^[^/]+$`) have few invalid forms a URL can
        # carry, so hypothesis would discard most draws and stop on its filter health check; and the
        # two operations whose only input is such a segment have no invalid request at all (an empty
        # or slashed id names another route), so they run in the positive pass only; so does
        # GetBulkOperation, for the same reason.
        code, output = await _run(
            gateway,
            role,
            "negative",
            "not_a_server_error",
            tmp_path / "negative.xml",
            "--suppress-health-check",
            "filter_too_much",
            "--exclude-path",
            "/v1/commands/{command_id}",
            "--exclude-path",
            "/v1/workers/{worker_id}",
            "--exclude-path",
            "/v1/bulkOperations/{operation_id}",
        )
        assert code == 0, output[-6000:]
    print(f"schemathesis as {role}: {time.monotonic() - started:.1f}s")
