"""Fixtures of tests/deploy: the files under deploy/, and the real suite and gateway beside it
(tests/support/gateway.py)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.gateway import _keep_test_logging, gateway

__all__ = ["_keep_test_logging", "gateway"]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load_check_compose() -> ModuleType:
    """deploy/compose/check_compose.py, which is a script and not a package."""
    spec = importlib.util.spec_from_file_location("check_compose", DEPLOY / "compose" / "check_compose.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def suite_containers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the suite's image."""
    return {name: s for name, s in compose["services"].items() if s.get("image") == "workermon:latest"}


def target_of(service: dict[str, Any]) -> str | None:
    """What `--target` a container serves (None for the migrate job)."""
    command = service.get("command") or []
    return str(command[command.index("--target") + 1]) if "--target" in command else None


def replicas(service: dict[str, Any]) -> int:
    """How many containers of a service `docker compose up` starts."""
    return int((service.get("deploy") or {}).get("replicas", 1))


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as the container gets it (Compose passes a null or empty value as "")."""
    env = service.get("environment") or {}
    return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


@pytest.fixture(scope="session")
def check_compose() -> ModuleType:
    return load_check_compose()


SECRETS = ("WORKERMON_JWT_SECRET", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


@pytest.fixture(scope="session")
def compose(check_compose: Any) -> dict[str, Any]:
    """compose.yaml as Compose reads it with a .env made from .env.example: the secrets filled in, the
    optional settings left unset (so the file's defaults apply)."""
    import yaml

    env = {name: value for name, value in check_compose.env_example().items() if value}
    env.update({name: f"{name.lower()}-placeholder-0123456789abcdef" for name in SECRETS})
    document: dict[str, Any] = yaml.safe_load(
        check_compose.interpolate(check_compose.COMPOSE_FILE.read_text(), env)
    )
    return document


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool's path; a failure, not a skip, without it (`make test` and CI must run these tests)."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is required: apt-get install prometheus (Debian/Ubuntu), or put promtool on the PATH"
        )
    return found
