"""Hatchling build hook: generate the gRPC stubs into every workermon-proto wheel.

The stubs are not committed. A wheel build (`uv build libs/proto`, a wheel from the sdist, or
`pip install "workermon-proto @ git+…#subdirectory=libs/proto"`) runs scripts/gen_protos.py — the one
generator, also behind `make proto` — on the contract's proto/ into a temporary folder and ships that
folder as the `workermon` package. The contract is found beside this file in the sdist (which carries
proto/ and scripts/gen_protos.py) or two levels up in the repository.

Editable installs (`uv sync`) are left alone: they put src/ on the path (dev-mode-dirs) and
`make setup` / `make proto` generate into it.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import (  # type: ignore[import-not-found, unused-ignore]
    BuildHookInterface,
)

GENERATOR = Path("scripts") / "gen_protos.py"


def contract_root(project_root: Path) -> Path:
    """The folder holding proto/ and scripts/gen_protos.py: the sdist's root, else the repository's."""
    for candidate in (project_root, project_root.parent.parent):
        if (candidate / GENERATOR).is_file() and (candidate / "proto").is_dir():
            return candidate
    raise RuntimeError(
        f"workermon-proto: no proto/ and {GENERATOR.as_posix()} in {project_root} or two levels up; "
        "build from the repository (libs/proto) or from its sdist"
    )


class ProtoStubsHook(BuildHookInterface):  # type: ignore[misc, unused-ignore]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        contract = contract_root(Path(self.root).resolve())
        spec = importlib.util.spec_from_file_location("workermon_gen_protos", contract / GENERATOR)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"workermon-proto: cannot load {contract / GENERATOR}")
        generator = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(generator)
        self._out = Path(tempfile.mkdtemp(prefix="workermon-proto-"))
        code = generator.generate(out_dir=self._out, proto_dir=contract / "proto")
        if code != 0:
            raise RuntimeError(f"workermon-proto: generating the stubs failed (protoc exit code {code})")
        build_data["force_include"][str(self._out / "workermon")] = "workermon"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        out = getattr(self, "_out", None)
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
