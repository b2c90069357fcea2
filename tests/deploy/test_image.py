"""The container image (deploy/docker/Dockerfile), built with podman and run as people will run it.

Once per run the image is built from the working tree: on the official Python and Node base images
when they can be had, else on local stand-ins that deploy/docker/local-base.sh makes from Debian's
packages (a machine that reaches no registry of images). Then the image is started with
`--target all` on a read-only root file system, as its non-root user, twice: on its embedded defaults
(a named volume for the data directory) and on the machine's Redis and PostgreSQL when REDIS_URL and
PostgreSQL answer. Each must answer /readyz 200, gRPC health SERVING and its own HEALTHCHECK, serve the
admin UI, and stop cleanly on SIGTERM.

Without podman the tests are skipped, unless CI_REQUIRE_PODMAN=1 (set by .ci/run, which installs
podman), which makes that an error. The build's time and the image's size are printed and written to
build/deploy/image.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.pool import NullPool

from tests.conftest import with_search_path
from tests.support.processes import free_port
from workermon_core.redis_store import key_prefix

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
LOCAL_BASE = ROOT / "deploy" / "docker" / "local-base.sh"
# What the Kubernetes manifests run from the image before a service that uses the database starts.
K8S_WAIT_SCRIPT = ROOT / "deploy" / "k8s" / "base" / "wait_for_migrations.py"
IMAGE = "localhost/workermon:test"
LOCAL_BASES = {
    "PYTHON_IMAGE": "localhost/workermon-base/python:3.11",
    "NODE_IMAGE": "localhost/workermon-base/node:20",
}
APP_UID = "10001"
READY_SECONDS = 90.0

pytestmark = pytest.mark.timeout(1800)


def _official_bases() -> dict[str, str]:
    """The base images the Dockerfile names by default (its `ARG NAME=image` lines)."""
    found = dict(re.findall(r"^ARG (PYTHON_IMAGE|NODE_IMAGE)=(\S+)$", DOCKERFILE.read_text(), re.M))
    assert set(found) == set(LOCAL_BASES), f"{DOCKERFILE} no longer declares {sorted(LOCAL_BASES)}"
    return found


@dataclass
class Podman:
    """podman with what this machine needs: a runtime that accepts its cgroups, limits it may set."""

    exe: str
    global_args: list[str] = field(default_factory=list)
    # The per-container limits podman would set by default (nofile 1048576) may exceed what this
    # process may raise to; this process's own limits always can be set.
    run_args: list[str] = field(default_factory=list)

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [self.exe, *self.global_args, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {out.returncode}:\n{out.stderr[-4000:]}")
        return out


@pytest.fixture(scope="session")
def podman() -> Podman:
    exe = shutil.which("podman")
    if exe is None:
        if os.environ.get("CI_REQUIRE_PODMAN") == "1":
            pytest.fail("CI_REQUIRE_PODMAN=1 but podman is not installed")
        pytest.skip("podman is not installed (CI_REQUIRE_PODMAN=1 makes this an error)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return Podman(exe, run_args=["--ulimit", f"nofile={soft}:{hard}", "--ulimit", "nproc=4096:4096"])


@pytest.fixture(scope="session")
def base_images(podman: Podman) -> dict[str, str]:
    """The official base images when present or pullable, else the local stand-ins."""
    official = _official_bases()
    if all(
        podman("image", "exists", ref, check=False).returncode == 0
        or podman("pull", "--quiet", ref, timeout=300, check=False).returncode == 0
        for ref in official.values()
    ):
        return official
    made = subprocess.run(["bash", str(LOCAL_BASE)], capture_output=True, text=True, timeout=900, check=False)
    assert made.returncode == 0, f"{LOCAL_BASE} failed:\n{made.stdout[-2000:]}\n{made.stderr[-4000:]}"
    return LOCAL_BASES


@pytest.fixture(scope="session")
def runtime(podman: Podman, base_images: dict[str, str]) -> Podman:
    """podman whose OCI runtime starts a container here: its default (crun), else runc (crun refuses
    a host with cgroups v1 and v2 mounted side by side, as on this kind of machine)."""
    probe = [*podman.run_args, "--network", "host", base_images["PYTHON_IMAGE"], "true"]
    if podman("run", "--rm", *probe, check=False).returncode == 0:
        return podman
    runc = Podman(podman.exe, ["--runtime", "runc"], podman.run_args)
    started = runc("run", "--rm", *probe, check=False)
    assert started.returncode == 0, f"no OCI runtime starts a container here:\n{started.stderr[-2000:]}"
    return runc


@pytest.fixture(scope="session")
def image(runtime: Podman, base_images: dict[str, str]) -> str:
    """The image, built once from the working tree (podman's layer cache makes a rebuild quick)."""
    started = time.monotonic()
    runtime(
        "build",
        "--format=docker",  # keeps HEALTHCHECK, which the OCI format has no field for
        "--network=host",
        "--file",
        str(DOCKERFILE),
        "--tag",
        IMAGE,
        *(f"--build-arg={name}={ref}" for name, ref in base_images.items()),
        str(ROOT),
        timeout=1500,
    )
    seconds = round(time.monotonic() - started, 1)
    size = int(runtime("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    figures = {"build_seconds": seconds, "size_bytes": size, "bases": base_images}
    out = ROOT / "build" / "deploy"
    out.mkdir(parents=True, exist_ok=True)
    (out / "image.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nimage {IMAGE}: built in {seconds} s, {size / 1e6:.0f} MB, on {base_images}")
    return IMAGE


def test_image_runs_as_a_non_root_user_with_the_documented_defaults(runtime: Podman, image: str) -> None:
    inspected = json.loads(runtime("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert config["Entrypoint"] == ["workermon", "serve"]
    assert set(config["ExposedPorts"]) == {"50051/tcp", "8080/tcp"}
    assert "/var/lib/workermon" in config["Volumes"]
    assert inspected["Healthcheck"]["Test"] == ["CMD", "python", "/opt/workermon/healthcheck.py"]
    assert {k: env[k] for k in ("WORKERMON_GRPC_HOST", "WORKERMON_HTTP_HOST", "WORKERMON_TARGET")} == {
        "WORKERMON_GRPC_HOST": "0.0.0.0",
        "WORKERMON_HTTP_HOST": "0.0.0.0",
        "WORKERMON_TARGET": "all",
    }
    assert env["WORKERMON_DATA_DIR"] == "/var/lib/workermon"


# --- running it ----------------------------------------------------------------------------------


def _status(url: str, body: object = None, token: str | None = None) -> tuple[int, str]:
    """GET, or POST of `body` as JSON; the status (0: no answer) and the body."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def _grpc_health(port: int) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


@dataclass
class Started:
    name: str
    grpc_port: int
    http_port: int


@contextlib.contextmanager
def _serving(
    runtime: Podman, image: str, env: dict[str, str], volume: str | None, args: list[str]
) -> Iterator[Started]:
    """The image migrated, then serving (`args` after the entrypoint) on a read-only root; removed,
    with its volumes, at the end."""
    grpc_port, http_port = free_port(), free_port()
    env = {**env, "WORKERMON_GRPC_PORT": str(grpc_port), "WORKERMON_HTTP_PORT": str(http_port)}
    name = "workermon-test-" + uuid.uuid4().hex[:10]
    common = [
        *runtime.run_args,
        "--network=host",  # the machine's Redis and PostgreSQL on 127.0.0.1; its ports, for the probes
        # A read-only root with only /tmp writable, as documented for Docker (podman would add
        # tmpfs on /run and /var/tmp by itself).
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs=/tmp",
        *(["--volume", f"{volume}:/var/lib/workermon"] if volume else []),
        *(f"--env={k}={v}" for k, v in env.items()),
    ]
    try:
        migrated = runtime("run", "--rm", *common, "--entrypoint", "workermon", image, "migrate")
        assert "migrations applied" in migrated.stdout
        runtime("run", "--detach", "--name", name, *common, image, *args)
        yield Started(name, grpc_port, http_port)
    finally:
        runtime("rm", "--force", "--volumes", name, check=False)
        if volume:
            runtime("volume", "rm", "--force", volume, check=False)


def _logs(runtime: Podman, name: str) -> str:
    out = runtime("logs", name)
    return out.stdout + out.stderr


def _events(logs: str) -> set[str]:
    """The `event` of every JSON log line."""
    return {json.loads(line).get("event") for line in logs.splitlines() if line.startswith("{")}


def _check_serving_then_stop(runtime: Podman, started: Started) -> None:
    readyz = f"http://127.0.0.1:{started.http_port}/readyz"
    deadline = time.monotonic() + READY_SECONDS
    status, body = _status(readyz)
    while status != 200 and time.monotonic() < deadline:
        running = runtime("inspect", "--format", "{{.State.Running}}", started.name).stdout.strip()
        assert running == "true", "the container stopped:\n" + _logs(runtime, started.name)[-4000:]
        time.sleep(1)
        status, body = _status(readyz)
    assert status == 200, f"/readyz {status} {body}\n" + _logs(runtime, started.name)[-4000:]
    assert json.loads(body)["status"] == "ready"
    assert _grpc_health(started.grpc_port) == "SERVING"
    # The image's own HEALTHCHECK, run inside the container.
    assert runtime("healthcheck", "run", started.name, check=False).returncode == 0
    # The admin UI built into the image is served, told where the API is.
    status, page = _status(f"http://127.0.0.1:{started.http_port}/")
    assert status == 200 and 'name="workermon-api-base"' in page, page[:500]
    # A user added in the running container (into the data directory) logs in through the gateway, and
    # the token reaches the services behind it.
    password = uuid.uuid4().hex
    runtime("exec", "-i", started.name, "workermon", "user", "add", "ops", "--role", "viewer",
            "--password-stdin", stdin=password + "\n")  # fmt: skip
    api = f"http://127.0.0.1:{started.http_port}/api/v1"
    status, body = _status(f"{api}/auth/login", {"username": "ops", "password": password})
    assert status == 200, body
    status, body = _status(f"{api}/overview", token=json.loads(body)["accessToken"])
    assert status == 200, body
    whoami = runtime("exec", started.name, "id", "-u").stdout.strip()
    assert whoami == APP_UID
    denied = runtime("exec", started.name, "touch", "/opt/workermon/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr

    runtime("stop", "--time", "30", started.name, timeout=60)
    state = json.loads(runtime("inspect", started.name).stdout)[0]["State"]
    logs = _logs(runtime, started.name)
    assert state["ExitCode"] == 0, logs[-4000:]
    assert {"serving", "shutting_down"} <= _events(logs), logs[-4000:]


def test_serves_all_on_embedded_defaults_on_a_read_only_root(runtime: Podman, image: str) -> None:
    """No REDIS_URL, no DATABASE_URL: the embedded Redis and SQLite keep their files in the volume."""
    volume = "workermon-test-" + uuid.uuid4().hex[:10]
    # No arguments: the target comes from the image's WORKERMON_TARGET (all).
    with _serving(runtime, image, {}, volume, []) as started:
        _check_serving_then_stop(runtime, started)
        files = runtime(
            "run", "--rm", *runtime.run_args, "--volume", f"{volume}:/data", "--entrypoint", "ls", image,
            "/data", "/data/redis",
        ).stdout.split()  # fmt: skip
        assert {"workermon.db", "jwt-secret", "appendonly.aof"} <= set(files), files


def test_serves_all_on_the_machines_redis_and_postgresql(
    runtime: Podman, image: str, postgres_url: str | None
) -> None:
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url or postgres_url is None:
        pytest.skip("needs REDIS_URL and a PostgreSQL that answers (.ci/run sets both where they do)")
    schema = "wm_image_" + uuid.uuid4().hex[:12]
    prefix = "wmtest-image-" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(postgres_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": with_search_path(postgres_url, schema),
        "WORKERMON_REDIS_PREFIX": prefix,
        # The machine's Redis holds other tests' queues: watch none of them.
        "WORKERMON_DISCOVER_QUEUES": "false",
    }
    try:
        with _serving(runtime, image, env, None, ["--target", "all"]) as started:
            _check_serving_then_stop(runtime, started)
        with admin.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema},
            ).scalar_one()
        assert tables > 0, "the image's `workermon migrate` created no table in PostgreSQL"
        # The Kubernetes initContainer's check, as the manifests run it: the image's `python`, the
        # script mounted read-only, a read-only root.
        waited = runtime(
            "run", "--rm", *runtime.run_args, "--network=host", "--read-only",
            f"--env=DATABASE_URL={env['DATABASE_URL']}",
            f"--volume={K8S_WAIT_SCRIPT.parent}:/opt/workermon-k8s:ro",
            "--entrypoint", "python", image, f"/opt/workermon-k8s/{K8S_WAIT_SCRIPT.name}", "--timeout", "30",
        )  # fmt: skip
        assert "schema ready" in waited.stdout + waited.stderr
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=key_prefix(prefix) + ":*"))
        if keys:
            client.unlink(*keys)
        client.close()


def test_one_target_from_the_environment_serves_grpc_alone(runtime: Podman, image: str) -> None:
    """WORKERMON_TARGET=heartbeat: gRPC only, no HTTP listener, and the HEALTHCHECK is content with that."""
    volume = "workermon-test-" + uuid.uuid4().hex[:10]
    with _serving(runtime, image, {"WORKERMON_TARGET": "heartbeat"}, volume, []) as started:
        deadline = time.monotonic() + READY_SECONDS
        while _grpc_health(started.grpc_port) != "SERVING" and time.monotonic() < deadline:
            time.sleep(1)
        assert _grpc_health(started.grpc_port) == "SERVING", _logs(runtime, started.name)[-4000:]
        assert _status(f"http://127.0.0.1:{started.http_port}/readyz")[0] == 0  # nothing listens
        checked = runtime("healthcheck", "run", started.name, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        runtime("stop", "--time", "30", started.name, timeout=60)
        assert "serving" in _events(_logs(runtime, started.name))
