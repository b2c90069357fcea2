"""Appending an entry to the audit log from another service (MonitorService.CreateAuditLog), with the
one refusal every caller gives when it cannot be written: UNAVAILABLE / AUDIT_UNAVAILABLE."""

from __future__ import annotations

import grpc

from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc

from .errors import Unavailable

AUDIT_TIMEOUT_SECONDS = 5.0


async def append_audit_log(
    stub: mon_grpc.MonitorServiceStub,
    entry: mon_pb.AuditLog,
    *,
    consequence: str = "",
    request_id: str = "",
) -> None:
    """Write `entry` (once per non-empty `request_id`, however often retried); Unavailable
    (AUDIT_UNAVAILABLE) saying why, then `consequence`, when it cannot be."""
    try:
        await stub.CreateAuditLog(
            mon_pb.CreateAuditLogRequest(audit_log=entry, request_id=request_id),
            timeout=AUDIT_TIMEOUT_SECONDS,
        )
    except grpc.aio.AioRpcError as exc:
        raise Unavailable(
            f"the audit log cannot be written ({exc.code().name}: {exc.details()}){consequence}",
            reason="AUDIT_UNAVAILABLE",
        ) from None
