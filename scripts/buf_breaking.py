"""`buf breaking` (the FILE rules of buf.yaml) of the working tree's proto/ against the `main` branch, at
the commit where HEAD forked from it (main's tip when on main or once main is merged in).

buf could read main from git itself (`.git#branch=main`), but main's buf.yaml lists build/protodeps, the
google/api protos scripts/gen_protos.py stages from googleapis-common-protos and git does not hold. So
main's proto/ and buf.yaml are taken with `git archive` into a temporary folder, beside a copy of the same
staged protos, built into an image with `buf build`, and the working tree's proto module is checked
against that image (imports excluded: both sides compile against the same google/api files). Offline; no
checkout or worktree is touched. On main itself it compares main with its working tree.

Without a `main` branch (local, or origin/main) it prints one line and skips only this comparison.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPS_DIR = ROOT / "build" / "protodeps"
MAIN_REFS = ("refs/heads/main", "refs/remotes/origin/main")


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


def main_commit() -> tuple[str, str] | None:
    """(ref, commit) to compare with: where HEAD forked from main (main itself on main, or once main is
    merged in), so that contract changes main made since are not reported as this branch's. None when
    this is no git repository or it has no main."""
    for ref in MAIN_REFS:
        found = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if found.returncode == 0:
            tip = found.stdout.decode().strip()
            base = git("merge-base", "HEAD", tip)
            return ref, base.stdout.decode().strip() if base.returncode == 0 else tip
    return None


def find_buf() -> str:
    found = shutil.which("buf") or shutil.which("buf", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("buf not found: run this with `uv run --frozen` (buf-bin is a dev dependency)")
    return found


def extract(commit: str, paths: list[str], into: Path) -> None:
    archive = git("archive", "--format=tar", commit, "--", *paths)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {commit} {' '.join(paths)} failed: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # Python before 3.11.4; the archive is our own repository's
            tar.extractall(into)


def main() -> int:
    found = main_commit()
    if found is None:
        print("buf breaking: no `main` branch in this repository; the comparison against main is skipped")
        return 0
    ref, commit = found
    short = ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")
    if git("cat-file", "-e", f"{commit}:proto").returncode != 0:
        print(f"buf breaking: {short} has no proto/ at {commit[:12]}; the comparison against it is skipped")
        return 0
    if not DEPS_DIR.is_dir():
        raise SystemExit(f"buf breaking: {DEPS_DIR.relative_to(ROOT)} is missing: run make proto")
    buf = find_buf()
    print(f"buf breaking: proto/ against {short} at {commit[:12]}")
    with tempfile.TemporaryDirectory(prefix="workermon-buf-main-") as tmp:
        against = Path(tmp)
        has_config = git("cat-file", "-e", f"{commit}:buf.yaml").returncode == 0
        extract(commit, ["proto", "buf.yaml"] if has_config else ["proto"], against)
        if not has_config:
            shutil.copy(ROOT / "buf.yaml", against / "buf.yaml")
        shutil.copytree(DEPS_DIR, against / "build" / "protodeps")
        image = against / "main.binpb"
        built = subprocess.run([buf, "build", "proto", "-o", str(image)], cwd=against, check=False)
        if built.returncode != 0:
            print(f"buf breaking: buf build of {short}'s proto/ failed", file=sys.stderr)
            return built.returncode
        checked = subprocess.run(
            [buf, "breaking", "proto", "--against", str(image), "--exclude-imports"], cwd=ROOT, check=False
        )
    if checked.returncode != 0:
        print(f"buf breaking: proto/ breaks the contract of {short} (FILE rules, see above)", file=sys.stderr)
        return checked.returncode
    print(f"buf breaking: no breaking change against {short}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
