"""Token minting and verification, role ladder, and the secret kept in the data directory."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest

from workermon.common.v1 import access_pb2
from workermon.heartbeat.v1 import heartbeat_service_pb2  # noqa: F401 - registers the service descriptor
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon_core.auth import (
    TokenAuthority,
    authorize,
    load_or_create_secret,
    method_roles,
    role_allows,
)
from workermon_core.errors import PermissionDenied, Unauthenticated
from workermon_core.refusals import method_audit_actions


def test_role_ladder() -> None:
    assert role_allows("admin", access_pb2.ROLE_OPERATOR)
    assert role_allows("operator", access_pb2.ROLE_VIEWER)
    assert not role_allows("viewer", access_pb2.ROLE_OPERATOR)
    assert role_allows("worker", access_pb2.ROLE_WORKER)
    assert role_allows("admin", access_pb2.ROLE_WORKER)
    assert not role_allows("operator", access_pb2.ROLE_WORKER)
    assert not role_allows("worker", access_pb2.ROLE_VIEWER)
    assert not role_allows("admin", access_pb2.ROLE_UNSPECIFIED)


def test_roles_come_from_the_proto() -> None:
    roles = method_roles(["workermon.heartbeat.v1.HeartbeatService"])
    assert roles["/workermon.heartbeat.v1.HeartbeatService/Beat"] == access_pb2.ROLE_WORKER
    assert roles["/workermon.heartbeat.v1.HeartbeatService/ListWorkers"] == access_pb2.ROLE_VIEWER
    assert roles["/workermon.heartbeat.v1.HeartbeatService/SendCommand"] == access_pb2.ROLE_SERVICE
    assert all(role != access_pb2.ROLE_UNSPECIFIED for role in roles.values())


def test_secret_created_once_and_private(tmp_path: Path) -> None:
    first = load_or_create_secret(None, tmp_path)
    assert load_or_create_secret(None, tmp_path) == first
    assert stat.S_IMODE((tmp_path / "jwt-secret").stat().st_mode) == 0o600
    assert load_or_create_secret("configured-" + "z" * 40, tmp_path) != first


def test_mint_and_verify_round_trip() -> None:
    authority = TokenAuthority("k" * 40)
    principal = authority.verify(authority.mint("alice", "operator", 60))
    assert (principal.subject, principal.role) == ("alice", "operator")
    with pytest.raises(Unauthenticated):
        TokenAuthority("j" * 40).verify(authority.mint("alice", "operator", 60))
    with pytest.raises(ValueError, match="at least 32"):
        TokenAuthority("short")


def test_service_and_worker_claims() -> None:
    authority = TokenAuthority("s" * 40)
    acting = authority.verify(authority.mint("alice", "operator", actor="monitor"))
    assert (acting.subject, acting.role, acting.actor, acting.worker) == (
        "alice",
        "operator",
        "monitor",
        None,
    )
    plain = authority.verify(authority.mint("alice", "admin"))
    assert plain.actor is None
    with pytest.raises(PermissionDenied) as caught:
        authorize(plain, "/x.Heartbeat/SendCommand", access_pb2.ROLE_SERVICE)
    assert caught.value.reason == "SERVICE_ONLY"
    authorize(acting, "/x.Heartbeat/SendCommand", access_pb2.ROLE_SERVICE)
    bound = authority.verify(authority.mint("fleet", "worker", worker="pay-*"))
    assert bound.may_act_as_worker("pay-1") and not bound.may_act_as_worker("mail-1")
    assert not authority.verify(authority.mint("old", "worker")).may_act_as_worker("pay-1")
    assert plain.may_act_as_worker("anything")  # an admin, for diagnosis
    assert not acting.may_act_as_worker("pay-1")  # an operator never beats
    with pytest.raises(ValueError, match="worker binding"):
        authority.mint("fleet", "worker", worker="")


@pytest.mark.parametrize(
    ("claim", "value"), [("act", "monitor"), ("act", {"sub": 3}), ("wid", 7), ("wid", "x" * 300)]
)
def test_malformed_service_and_worker_claims_are_refused(claim: str, value: object) -> None:
    authority = TokenAuthority("s" * 40)
    now = int(time.time())
    claims = {"sub": "a", "role": "worker", "iss": "workermon", "iat": now, "exp": now + 60, claim: value}
    with pytest.raises(Unauthenticated) as caught:
        authority.verify(jwt.encode(claims, "s" * 40, algorithm="HS256"))
    assert caught.value.metadata["check"] == "claims"


def test_audited_actions_come_from_the_proto() -> None:
    actions = method_audit_actions(
        ["workermon.heartbeat.v1.HeartbeatService", "workermon.monitor.v1.MonitorService"]
    )
    assert (
        actions["/workermon.heartbeat.v1.HeartbeatService/SendCommand"] == mon_pb.AUDIT_ACTION_WORKER_COMMAND
    )
    assert actions["/workermon.monitor.v1.MonitorService/StopWorker"] == mon_pb.AUDIT_ACTION_WORKER_STOP
    assert "/workermon.monitor.v1.MonitorService/ListQueues" not in actions
