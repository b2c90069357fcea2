"""workermon-proto and workermon-sdk as a user installs them: wheels that carry the generated stubs.

The stubs are not committed; libs/proto/hatch_build.py generates them into every wheel. These tests build
the wheels with uv (as `uv build` does outside the workspace), install them into fresh virtual
environments and import the stubs there. Third-party dependencies are held to the uv.lock versions, so
they come from uv's cache (or PyPI) and the test does not move with upstream releases.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What a workermon-proto wheel must hold (beside the __init__.py files).
EXPECTED_IN_WHEEL = (
    "workermon/descriptors.binpb",
    "workermon/py.typed",
    "workermon/heartbeat/v1/heartbeat_service_pb2.py",
    "workermon/heartbeat/v1/heartbeat_service_pb2.pyi",
    "workermon/heartbeat/v1/heartbeat_service_pb2_grpc.py",
    "workermon/heartbeat/v1/heartbeat_service_pb2_grpc.pyi",
    "workermon/monitor/v1/monitor_service_pb2.py",
    "workermon/monitor/v1/monitor_service_pb2_grpc.py",
)

# Run inside the fresh environment: the stubs and the SDK import from its site-packages, and the
# descriptor set (the gateway's source for routes and docs) is a package resource.
IMPORT_CHECK = textwrap.dedent(
    """
    import sys
    from importlib import resources
    from pathlib import Path

    import workermon
    import workermon.heartbeat.v1.heartbeat_service_pb2_grpc as heartbeat_grpc
    import workermon.monitor.v1.monitor_service_pb2 as monitor_pb2
    from google.protobuf import descriptor_pb2

    expected = Path(sys.argv[1]).resolve()
    located = Path(workermon.__file__).resolve()
    assert located.is_relative_to(expected), f"workermon imported from {located}, not {expected}"
    assert hasattr(heartbeat_grpc, "HeartbeatServiceStub")
    assert "MonitorService" in monitor_pb2.DESCRIPTOR.services_by_name
    raw = resources.files("workermon").joinpath("descriptors.binpb").read_bytes()
    names = {f.name for f in descriptor_pb2.FileDescriptorSet.FromString(raw).file}
    assert "workermon/monitor/v1/monitor_service.proto" in names, sorted(names)
    if len(sys.argv) > 2:
        import workermon_sdk

        assert hasattr(workermon_sdk, "HeartbeatClient")
    print("ok", located)
    """
)


def find_uv() -> str:
    """uv as the Makefile finds it: on PATH, else the private copy `make setup` puts in .tools."""
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    private = ROOT / ".tools" / "bin" / "uv"
    if private.is_file() and os.access(private, os.X_OK):
        return str(private)
    pytest.fail("uv is neither on PATH nor at .tools/bin/uv: run `make setup`, which installs it")


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    """Run a command outside this test's virtual environment; fail the test with its output if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited with {done.returncode}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    return done.stdout


def locked_versions(tmp: Path, uv: str) -> Path:
    """The uv.lock versions of every third-party package, as a constraints file."""
    constraints = tmp / "constraints.txt"
    run(uv, "export", "--frozen", "--all-packages", "--all-groups", "--all-extras", "--no-emit-workspace",
        "--no-hashes", "--no-header", "--no-annotate", "--output-file", constraints)  # fmt: skip
    return constraints


def fresh_venv(path: Path, uv: str) -> Path:
    run(uv, "venv", "--quiet", "--python", sys.executable, path)
    python = path / "bin" / "python"
    assert python.exists(), f"uv venv made no {python}"
    return python


def site_packages(python: Path) -> str:
    return run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()


def check_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in EXPECTED_IN_WHEEL if name not in names]
    assert not missing, f"{wheel.name} lacks {missing}"
    protos = sorted(p.relative_to(ROOT / "proto") for p in (ROOT / "proto").rglob("*.proto"))
    for proto in protos:
        module = f"{proto.with_suffix('').as_posix()}_pb2.py"
        assert module in names, f"{wheel.name} lacks the stubs of proto/{proto.as_posix()}"


def test_wheels_install_and_import_in_a_fresh_venv(tmp_path: Path) -> None:
    uv = find_uv()
    dist = tmp_path / "dist"
    run(uv, "build", "--wheel", "--out-dir", dist, ROOT / "libs" / "proto")
    run(uv, "build", "--wheel", "--out-dir", dist, ROOT / "sdk" / "python")
    (proto_wheel,) = dist.glob("workermon_proto-*.whl")
    (sdk_wheel,) = dist.glob("workermon_sdk-*.whl")
    check_wheel(proto_wheel)

    constraints = locked_versions(tmp_path, uv)
    python = fresh_venv(tmp_path / "venv", uv)
    run(uv, "pip", "install", "--quiet", "--python", python, "--constraints", constraints,
        proto_wheel, sdk_wheel)  # fmt: skip
    out = run(python, "-c", IMPORT_CHECK, site_packages(python), "sdk", cwd=tmp_path)
    assert out.startswith("ok"), out


def test_sdist_carries_the_contract_and_builds_a_wheel_with_the_stubs(tmp_path: Path) -> None:
    uv = find_uv()
    dist = tmp_path / "dist"
    run(uv, "build", "--sdist", "--out-dir", dist, ROOT / "libs" / "proto")
    (sdist,) = dist.glob("workermon_proto-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert "hatch_build.py" in members and "scripts/gen_protos.py" in members, sorted(members)
    for proto in (ROOT / "proto").rglob("*.proto"):
        assert proto.relative_to(ROOT).as_posix() in members, f"{sdist.name} lacks {proto}"
    assert not any(m.startswith("src/") for m in members), "the sdist must not ship the dev stubs"

    run(uv, "build", "--wheel", "--out-dir", tmp_path / "wheel", sdist)
    (wheel,) = (tmp_path / "wheel").glob("workermon_proto-*.whl")
    check_wheel(wheel)


def test_git_url_install_of_committed_head(tmp_path: Path) -> None:
    """`workermon-proto @ git+file://<repo>@<commit>#subdirectory=libs/proto` of the committed HEAD (not
    the working tree; uv reads `@HEAD` as a branch or tag name, hence the commit id). uv keeps the wheel
    it built for a commit in its cache, which is sound: the commit fixes the sources and the hook."""
    uv = find_uv()
    head = run("git", "-C", ROOT, "rev-parse", "--verify", "HEAD^{commit}").strip()
    python = fresh_venv(tmp_path / "venv", uv)
    requirement = f"workermon-proto @ git+{ROOT.as_uri()}@{head}#subdirectory=libs/proto"
    run(uv, "pip", "install", "--quiet", "--python", python, "--constraints", locked_versions(tmp_path, uv),
        requirement)  # fmt: skip
    out = run(python, "-c", IMPORT_CHECK, site_packages(python), cwd=tmp_path)
    assert out.startswith("ok"), out


def test_build_requirements_match_the_lock() -> None:
    """The hook's protoc, plugins and google/api protos are the ones `make proto` uses (uv.lock)."""
    build = tomllib.loads((ROOT / "libs" / "proto" / "pyproject.toml").read_text())["build-system"]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"]}
    pinned = dict(r.split("==", 1) for r in build["requires"] if "==" in r)
    assert set(pinned) == {"grpcio-tools", "mypy-protobuf", "googleapis-common-protos"}, pinned
    for name, version in pinned.items():
        assert locked.get(name) == version, f"{name}: build requires {version}, uv.lock {locked.get(name)}"
