"""Audit entries of the gateway's own actions (logins, log out everywhere), appended through
MonitorService.CreateAuditLog with the gateway's own admin identity, as IncidentService does."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.audit_client import append_audit_log
from workermon_core.peer import Peer

# An actor or entity is a user name (at most 64 characters); a login may try anything: kept bounded.
_MAX_NAME = 128
# A refused login: nobody was authenticated, so nobody acted.
ANONYMOUS = "anonymous"


class AuthAudit:
    """Writes login and revocation entries; Unavailable (AUDIT_UNAVAILABLE) when they cannot be written."""

    def __init__(self, monitor: Peer[mon_grpc.MonitorServiceStub]) -> None:
        self.monitor = monitor

    async def write(
        self,
        action: mon_pb.AuditAction.ValueType,
        *,
        actor: str,
        role: str,
        user: str,
        outcome: mon_pb.AuditOutcome.ValueType,
        parameters: dict[str, Any],
        result: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry about `user`; raise Unavailable saying why when the audit log refuses it."""
        entry = mon_pb.AuditLog(
            actor=actor[:_MAX_NAME],
            role=role,
            action=action,
            entity_type="user",
            entity_id=user[:_MAX_NAME] or "-",
            outcome=outcome,
        )
        entry.parameters.update(parameters)
        if result:
            details = struct_pb2.Struct()
            details.update(result)
            entry.result.CopyFrom(details)
        await append_audit_log(self.monitor.stub, entry)
