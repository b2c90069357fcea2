"""Token minting and verification, role ladder, and the secret kept in the data directory."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from workermon.common.v1 import access_pb2
from workermon.heartbeat.v1 import heartbeat_service_pb2  # noqa: F401 - registers the service descriptor
from workermon_core.auth import TokenAuthority, load_or_create_secret, method_roles, role_allows
from workermon_core.errors import Unauthenticated


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
    assert roles["/workermon.heartbeat.v1.HeartbeatService/SendCommand"] == access_pb2.ROLE_OPERATOR
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
