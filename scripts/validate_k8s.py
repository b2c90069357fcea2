"""Render every Kustomize overlay of deploy/k8s and validate what it renders, offline (`make lint`).

Each `deploy/k8s/overlays/<name>` is rendered with `kubectl kustomize` into `build/k8s/<name>.yaml`, and
that file is checked with `kubernetes-validate --strict` against the Kubernetes version below: every
resource must match its schema, unknown fields included. No cluster is contacted.

`kubectl` comes from KUBECTL or the PATH (only its built-in Kustomize is used). tests/deploy renders the
overlays with the same function and checks the suite's own rules on them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS_DIR = ROOT / "deploy" / "k8s" / "overlays"
BUILD_DIR = ROOT / "build" / "k8s"
# The newest Kubernetes whose schemas kubernetes-validate ships (`kubernetes-validate --help`).
KUBERNETES_VERSION = "1.37.0"


def overlays() -> list[Path]:
    """Every overlay: the folders under deploy/k8s/overlays with a kustomization.yaml."""
    return sorted(path.parent for path in OVERLAYS_DIR.glob("*/kustomization.yaml"))


def kubectl() -> str:
    """The kubectl to render with; SystemExit naming what to install when there is none."""
    found = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not found:
        raise SystemExit("validate_k8s: kubectl is needed to render deploy/k8s (set KUBECTL or the PATH)")
    return found


def render(overlay: Path) -> str:
    """The overlay's manifests as `kubectl kustomize` renders them (several YAML documents)."""
    done = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"validate_k8s: kubectl kustomize {overlay} failed:\n{done.stderr.strip()}")
    return done.stdout


def validate(rendered: Path) -> bool:
    """Whether every resource in the file matches the schemas of KUBERNETES_VERSION (strictly)."""
    command = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet"]
    done = subprocess.run([*command, "-k", KUBERNETES_VERSION, str(rendered)], check=False)
    return done.returncode == 0


def main() -> int:
    """Render and validate every overlay; non-zero when any fails."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    failed = []
    found = overlays()
    if not found:
        print(f"validate_k8s: no overlay under {OVERLAYS_DIR.relative_to(ROOT)}")
        return 1
    for overlay in found:
        target = BUILD_DIR / f"{overlay.name}.yaml"
        target.write_text(render(overlay), encoding="utf-8")
        name = overlay.relative_to(ROOT)
        if validate(target):
            print(f"{name}: valid against Kubernetes {KUBERNETES_VERSION} (strict)")
        else:
            failed.append(str(name))
    if failed:
        print(f"validate_k8s: not valid: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
