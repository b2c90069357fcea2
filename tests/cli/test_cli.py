"""The workermon command: tokens signed with the suite's key; bad settings stop it with the variable named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workermon_core.auth import TokenAuthority, load_or_create_secret


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workermon_cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_token_uses_the_data_dir_key(tmp_path: Path) -> None:
    out = _run(
        ["token", "--role", "viewer", "--sub", "ops", "--ttl", "120"], {"WORKERMON_DATA_DIR": str(tmp_path)}
    )
    assert out.returncode == 0, out.stderr
    principal = TokenAuthority(load_or_create_secret(None, tmp_path)).verify(out.stdout.strip())
    assert (principal.subject, principal.role) == ("ops", "viewer")


def test_a_worker_token_is_bound_to_its_workers(tmp_path: Path) -> None:
    env = {"WORKERMON_DATA_DIR": str(tmp_path)}
    unbound = _run(["token", "--role", "worker", "--sub", "fleet"], env)
    assert unbound.returncode == 2 and "--worker" in unbound.stderr
    misplaced = _run(["token", "--role", "viewer", "--sub", "ops", "--worker", "w-1"], env)
    assert misplaced.returncode == 2 and "--worker" in misplaced.stderr
    out = _run(["token", "--role", "worker", "--sub", "fleet", "--worker", "billing-*"], env)
    assert out.returncode == 0, out.stderr
    principal = TokenAuthority(load_or_create_secret(None, tmp_path)).verify(out.stdout.strip())
    assert principal.worker == "billing-*"
    assert principal.may_act_as_worker("billing-7") and not principal.may_act_as_worker("mail-1")


def test_bad_setting_exits_naming_it(tmp_path: Path) -> None:
    out = _run(["serve"], {"WORKERMON_DATA_DIR": str(tmp_path), "WORKERMON_GRPC_PORT": "-5"})
    assert out.returncode == 2
    assert "WORKERMON_GRPC_PORT" in out.stderr


def test_unknown_target_is_refused(tmp_path: Path) -> None:
    out = _run(
        ["serve", "--target", "nope"],
        {"WORKERMON_DATA_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1"},
    )
    assert out.returncode != 0
    assert "unknown --target" in out.stderr


def test_serve_target_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from workermon_cli.main import _parser

    monkeypatch.delenv("WORKERMON_TARGET", raising=False)
    assert _parser().parse_args(["serve"]).target == "all"
    monkeypatch.setenv("WORKERMON_TARGET", "heartbeat,gateway")
    assert _parser().parse_args(["serve"]).target == "heartbeat,gateway"
    # The option, when given, wins over the environment.
    assert _parser().parse_args(["serve", "--target", "collector"]).target == "collector"


def test_unknown_target_from_the_environment_is_refused(tmp_path: Path) -> None:
    out = _run(
        ["serve"],
        {"WORKERMON_DATA_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1", "WORKERMON_TARGET": "nope"},
    )
    assert out.returncode != 0
    assert "unknown --target 'nope'" in out.stderr
