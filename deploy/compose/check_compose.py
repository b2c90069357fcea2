"""Check deploy/compose/compose.yaml offline (run by `make lint`).

1. Every `${VAR}` the file uses is listed in .env.example, and interpolation succeeds with it (the empty
   secrets filled with placeholders).
2. The interpolated file validates against the Compose Specification's JSON schema, compose-spec.json
   beside this script: `schema/compose-spec.json` of the compose-spec/compose-go repository at tag v2.13.0
   (commit faa67b213c471d63997f55cc145e6eab9dc3630f, Apache License 2.0), the schema Docker Compose v2
   validates with. To update it, replace the file and this line.
3. What the schema cannot see: `depends_on`, networks and named volumes refer to what the file declares;
   files mounted from the repository exist.
4. When `docker-compose` (Debian's) or `docker compose` is installed, `config -q` on the same file.

Exits 1 naming each problem.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml  # type: ignore[import-untyped]  # (types-PyYAML is not a dependency)

HERE = Path(__file__).resolve().parent
COMPOSE_FILE = HERE / "compose.yaml"
ENV_EXAMPLE = HERE / ".env.example"
SCHEMA_FILE = HERE / "compose-spec.json"
# Placeholders for the secrets .env.example leaves empty (compose refuses to start without them).
PLACEHOLDER = "placeholder-for-check-compose-0123456789abcdef"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, ${NAME:+x}; $$ is a "$".
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})")
_ENV_LINE = re.compile(r"^#?\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def env_example(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """Every variable .env.example names, set (`NAME=value`) or shown commented out (`#NAME=value`);
    the commented ones map to "" (unset: the compose file's default applies)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if match:
            commented = line.lstrip().startswith("#")
            found[match["name"]] = "" if commented else match["value"].strip()
    return found


def variables(text: str) -> set[str]:
    """The names of the variables a compose file interpolates."""
    return {m["name"] for m in _VARIABLE.finditer(text) if m["name"]}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """The file with its variables replaced as Compose does; ValueError for a required one unset."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        if name is None:
            return "$"
        value = env.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if empty else str(value)
        if op in (":?", "?"):
            if empty:
                raise ValueError(f"{name}: {arg}")
            return str(value)
        if op in (":+", "+"):
            return "" if empty else arg
        return value or ""

    return _VARIABLE.sub(replace, text)


def check_env(text: str, listed: Mapping[str, str]) -> list[str]:
    """Variables the compose file uses that .env.example does not list."""
    return [f".env.example does not list {name}" for name in sorted(variables(text) - set(listed))]


def check_schema(document: object, schema_file: Path = SCHEMA_FILE) -> list[str]:
    """Schema violations, each with the path of the offending value."""
    validator = jsonschema_rs.validator_for(json.loads(schema_file.read_text()))
    problems = []
    for error in validator.iter_errors(document):
        where = "/".join(str(part) for part in error.instance_path) or "(top level)"
        problems.append(f"schema: {where}: {error.message}")
    return problems


def _names(value: object) -> list[str]:
    """The names of a list or a mapping of them (depends_on, networks)."""
    if isinstance(value, dict):
        return [str(key) for key in value]
    if isinstance(value, list):
        return [str(item) for item in value]
    return []


def _mounts(service: Mapping[str, Any]) -> Iterator[str]:
    for volume in service.get("volumes", []):
        yield str(volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0])


def check_references(document: Mapping[str, Any], base: Path = HERE) -> list[str]:
    """depends_on, networks and volumes that name nothing declared; mounted files that do not exist."""
    services: Mapping[str, Any] = document.get("services") or {}
    networks = set(document.get("networks") or {}) | {"default"}
    volumes = set(document.get("volumes") or {})
    problems = []
    for name, service in services.items():
        for other in _names(service.get("depends_on")):
            if other not in services:
                problems.append(f"{name}: depends_on names no service: {other}")
        for network in _names(service.get("networks")):
            if network not in networks:
                problems.append(f"{name}: network {network} is not declared")
        for source in _mounts(service):
            if source.startswith((".", "/")):
                if not (base / source).exists():
                    problems.append(f"{name}: mounts {source}, which does not exist")
            elif source not in volumes:
                problems.append(f"{name}: volume {source} is not declared")
    return problems


def check_with_docker_compose(env: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """`config -q` with whichever Compose is installed: (what ran or None, problems)."""
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif shutil.which("docker") and _works(["docker", "compose", "version"]):
        command = ["docker", "compose"]
    else:
        return None, []
    command += ["--project-directory", str(HERE), "-f", str(COMPOSE_FILE), "config", "-q"]
    # Only the variables of .env.example (and PATH), so the caller's shell cannot hide a missing one.
    done = subprocess.run(
        command,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    output = (done.stderr + done.stdout).strip()
    name = " ".join(command[: command.index("--project-directory")])
    return name, [f"{name}: {output}"] if done.returncode else []


def _works(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def main() -> int:
    """Run every check; print what ran and each problem."""
    text = COMPOSE_FILE.read_text()
    listed = env_example()
    env = {name: value or PLACEHOLDER for name, value in listed.items() if value or _required(name, text)}
    problems = check_env(text, listed)
    try:
        document = yaml.safe_load(interpolate(text, env))
    except ValueError as exc:
        problems.append(f"interpolation: {exc}")
        document = yaml.safe_load(interpolate(text, {name: PLACEHOLDER for name in variables(text)}))
    problems += check_schema(document)
    problems += check_references(document)
    ran, more = check_with_docker_compose(env)
    problems += more
    checked = "the compose-spec schema" + (f" and `{ran} config -q`" if ran else "; no Compose installed")
    shown = os.path.relpath(COMPOSE_FILE)
    if problems:
        print(f"{shown}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"{shown}: valid ({checked})")
    return 0


def _required(name: str, text: str) -> bool:
    """Whether the compose file requires `name` (`${NAME:?...}`)."""
    return any(m["name"] == name and (m["op"] or "").endswith("?") for m in _VARIABLE.finditer(text))


if __name__ == "__main__":
    sys.exit(main())
