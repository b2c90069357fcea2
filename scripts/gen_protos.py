"""Generate the Python stubs for every proto under proto/ into the workermon-proto package.

Also stages the third-party protos the contract imports (google/api from googleapis-common-protos)
into build/protodeps, so that `buf lint` runs offline against exactly what protoc compiled.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import google.api
import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "proto" / "src"
DEPS_DIR = ROOT / "build" / "protodeps"
# The contract with its comments: the Python stubs drop source info, and the gateway's OpenAPI document
# and docs page describe every route and field with the proto comments.
DESCRIPTOR_SET = "descriptors.binpb"


def stage_deps() -> Path:
    """Copy google/api/*.proto next to each other so buf and protoc see one include root."""
    googleapis_root = Path(next(iter(google.api.__path__))).parent.parent
    target = DEPS_DIR / "google" / "api"
    if DEPS_DIR.exists():
        shutil.rmtree(DEPS_DIR)
    target.mkdir(parents=True)
    for name in ("annotations.proto", "http.proto", "field_behavior.proto"):
        shutil.copy(googleapis_root / "google" / "api" / name, target / name)
    return googleapis_root


def main() -> int:
    googleapis_root = stage_deps()
    well_known = Path(next(iter(grpc_tools.__path__))) / "_proto"
    generated = OUT_DIR / "workermon"
    if generated.exists():
        shutil.rmtree(generated)
    generated.mkdir(parents=True)
    files = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{googleapis_root}",
        f"-I{well_known}",
        f"--python_out={OUT_DIR}",
        f"--mypy_out={OUT_DIR}",
        f"--grpc_python_out={OUT_DIR}",
        f"--mypy_grpc_out={OUT_DIR}",
        f"--descriptor_set_out={generated / DESCRIPTOR_SET}",
        "--include_source_info",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
        return int(code)
    # Regular packages (not namespace ones) so every tool resolves them the same way.
    for folder in [generated, *(p for p in generated.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    (generated / "py.typed").touch()
    print(f"generated {len(files)} proto files into {generated.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
