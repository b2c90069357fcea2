"""Generate the Python stubs for every proto under proto/ into the workermon-proto package.

Also stages the third-party protos the contract imports (google/api from googleapis-common-protos)
into build/protodeps, so that `buf lint` runs offline against exactly what protoc compiled.

The one place the protoc arguments live: `make proto` runs it for the editable install (into
libs/proto/src), and libs/proto/hatch_build.py calls `generate()` when a workermon-proto wheel is built
(into a temporary folder), from the repository or from the sdist, which carries proto/ and this file.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

import google.api  # type: ignore[import-untyped, unused-ignore]
import grpc_tools  # type: ignore[import-untyped, unused-ignore]
from grpc_tools import protoc  # type: ignore[import-untyped, unused-ignore]

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "proto" / "src"
DEPS_DIR = ROOT / "build" / "protodeps"
# The contract with its comments: the Python stubs drop source info, and the gateway's OpenAPI document
# and docs page describe every route and field with the proto comments.
DESCRIPTOR_SET = "descriptors.binpb"
GOOGLE_API_PROTOS = ("annotations.proto", "http.proto", "field_behavior.proto", "httpbody.proto")


def googleapis_root() -> Path:
    """The include root holding google/api/*.proto of the installed googleapis-common-protos."""
    return Path(next(iter(google.api.__path__))).parent.parent


def stage_deps(deps_dir: Path = DEPS_DIR) -> None:
    """Copy google/api/*.proto next to each other so buf and protoc see one include root."""
    target = deps_dir / "google" / "api"
    if deps_dir.exists():
        shutil.rmtree(deps_dir)
    target.mkdir(parents=True)
    for name in GOOGLE_API_PROTOS:
        shutil.copy(googleapis_root() / "google" / "api" / name, target / name)


def _plugin(name: str) -> str:
    """A protoc plugin installed beside this interpreter (a build environment's bin/), else on PATH."""
    search = os.pathsep.join([sysconfig.get_path("scripts"), str(Path(sys.executable).parent)])
    found = shutil.which(name, path=search) or shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install mypy-protobuf")
    return found


def generate(out_dir: Path = OUT_DIR, proto_dir: Path = PROTO_DIR) -> int:
    """Write the workermon package (stubs, .pyi, descriptors.binpb) into out_dir; protoc's exit code."""
    well_known = Path(next(iter(grpc_tools.__path__))) / "_proto"
    generated = out_dir / "workermon"
    if generated.exists():
        shutil.rmtree(generated)
    generated.mkdir(parents=True)
    files = sorted(p.relative_to(proto_dir).as_posix() for p in proto_dir.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{googleapis_root()}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        f"--descriptor_set_out={generated / DESCRIPTOR_SET}",
        "--include_source_info",
        *files,
    ]
    code = int(protoc.main(args))
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
        return code
    # Regular packages (not namespace ones) so every tool resolves them the same way.
    for folder in [generated, *(p for p in generated.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    (generated / "py.typed").touch()
    print(f"generated {len(files)} proto files into {generated}")
    return 0


def main() -> int:
    stage_deps()
    return generate()


if __name__ == "__main__":
    sys.exit(main())
