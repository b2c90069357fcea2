"""The people who may log in to the gateway: a small JSON file of argon2 password hashes.

The file maps each name to `{"role", "password_hash", "created_at"}`. It is rewritten whole through a
temporary file and a rename (mode 0600), so a reader never sees half a file, and it is read again
whenever its modification changes, so `workermon user add` takes effect in a running gateway.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pwdlib import PasswordHash
from zxcvbn import zxcvbn

from workermon_core.auth import RESERVED_SUBJECTS

from .settings import GatewaySettings

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writers are not serialised across processes there
    fcntl = None  # type: ignore[assignment]

USER_ROLES = ("viewer", "operator", "admin")
MIN_PASSWORD_LENGTH = 12
# zxcvbn's 0-4 scale: 3 is "safely unguessable" (about 10^10 guesses), 2 falls to an offline attack.
MIN_PASSWORD_SCORE = 3
# Words a guesser tries first against this product's accounts.
_SUITE_WORDS = ("workermon", "worker", "monitor", "admin")
# Argon2 takes any length, but hashing megabytes per attempt would be a cheap denial of service.
MAX_PASSWORD_LENGTH = 1024
_NAME_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}")
USERS_FILE = "users.json"


class UserError(ValueError):
    """A user cannot be added or removed as asked; the message says why."""


class UserExists(UserError):
    """The user exists already and replacing was not asked for."""


class WeakPassword(UserError):
    """A password that the policy refuses; `field` names where it was given."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field} {description}")
        self.field = field
        self.description = description


class ReservedName(UserError):
    """A name kept for the suite itself (`system`, the actor of what services do on their own)."""


class UnknownUser(UserError):
    """No user has that name."""


class UsersFileError(UserError):
    """The users file cannot be read or is not what it should be."""


@dataclass(frozen=True, slots=True)
class User:
    """A user as listed: never the password hash."""

    name: str
    role: str
    created_at: str


@cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


@cache
def _dummy_hash() -> str:
    # Unknown names are checked against this, so they cost as long as known ones.
    return _hasher().hash(secrets.token_urlsafe(32))


def users_path(settings: GatewaySettings, data_dir: Path) -> Path:
    """The configured users file, else users.json in the data directory."""
    return settings.users_file or data_dir / USERS_FILE


def check_name(name: str) -> str:
    """Return the name when it is 1-64 characters of letters, digits and . _ @ -, and not a reserved
    one (`system`); else UserError."""
    if not _NAME_RE.fullmatch(name):
        raise UserError("user name must be 1-64 characters of letters, digits and . _ @ -")
    if name.lower() in RESERVED_SUBJECTS:
        raise ReservedName(f"user name {name!r} is reserved for the suite itself; choose another")
    return name


def check_role(role: str) -> str:
    """Return the role when people may hold it (viewer, operator, admin); else UserError."""
    if role not in USER_ROLES:
        raise UserError(f"role must be one of {', '.join(USER_ROLES)}")
    return role


def check_password(password: str, name: str = "", field: str = "password") -> str:
    """Return the password when it is long enough (and not absurdly long) and hard to guess; else
    WeakPassword naming `field` and saying why (zxcvbn's warning and suggestions)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(field, f"must be at most {MAX_PASSWORD_LENGTH} characters")
    # zxcvbn's cost grows with the length; the first 100 characters decide (longer is not weaker).
    verdict = zxcvbn(password[:100], user_inputs=[w for w in (name, *_SUITE_WORDS) if w])
    if int(verdict["score"]) < MIN_PASSWORD_SCORE:
        feedback = verdict.get("feedback") or {}
        reasons = [str(feedback.get("warning") or "").strip()]
        reasons += [str(s).strip() for s in feedback.get("suggestions") or ()]
        why = " ".join(r for r in reasons if r) or "It follows a pattern that is easy to guess."
        raise WeakPassword(field, f"is too easy to guess: {why}")
    return password


class UserStore:
    """Users kept in one JSON file; safe to share between threads, and between processes for writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._users: dict[str, dict[str, Any]] = {}
        self._stamp: tuple[int, int, int] | None = None

    def add(self, name: str, role: str, password: str, *, replace: bool = False) -> None:
        """Create a user (or, with replace=True, give an existing one a new role and password)."""
        check_name(name)
        check_role(role)
        check_password(password, name)
        password_hash = _hasher().hash(password)
        with self._writing() as users:
            previous = users.get(name)
            if previous is not None and not replace:
                raise UserExists(f"user {name!r} exists already; replace it explicitly")
            created = previous["created_at"] if previous else _now()
            users[name] = {"role": role, "password_hash": password_hash, "created_at": created}

    def add_first(self, name: str, role: str, password: str) -> bool:
        """Create the user only when the file holds nobody yet; whether it was created."""
        check_name(name)
        check_role(role)
        check_password(password, name)
        password_hash = _hasher().hash(password)
        with self._writing() as users:
            if users:
                return False
            users[name] = {"role": role, "password_hash": password_hash, "created_at": _now()}
            return True

    def remove(self, name: str) -> None:
        """Delete a user; UnknownUser when there is none of that name."""
        with self._writing() as users:
            if users.pop(name, None) is None:
                raise UnknownUser(f"no user named {name!r}")

    def list(self) -> list[User]:
        """Every user, by name."""
        users = self._current()
        return [
            User(name=name, role=str(entry["role"]), created_at=str(entry["created_at"]))
            for name, entry in sorted(users.items())
        ]

    def verify(self, name: str, password: str) -> str | None:
        """The user's role when the password is right; None otherwise (taking about as long either way)."""
        entry = self._current().get(name)
        stored = str(entry["password_hash"]) if entry is not None else _dummy_hash()
        candidate = password if len(password) <= MAX_PASSWORD_LENGTH else ""
        try:
            matched = _hasher().verify(candidate, stored)
        except Exception:
            # A damaged hash in the file must refuse that user, not fail the request.
            matched = False
        if not matched or entry is None or len(password) > MAX_PASSWORD_LENGTH:
            return None
        role = str(entry["role"])
        return role if role in USER_ROLES else None

    def role_of(self, name: str) -> str | None:
        """The role of user `name`, None when there is no such user (refresh reads it again)."""
        entry = self._current().get(name)
        role = str(entry["role"]) if entry is not None else None
        return role if role in USER_ROLES else None

    def __len__(self) -> int:
        return len(self._current())

    def _current(self) -> dict[str, dict[str, Any]]:
        """The users as on disk, read again only when the file changed."""
        stamp = self._file_stamp()
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._users = self._read() if stamp is not None else {}
                except UsersFileError:
                    # A hand edit in progress must not lock everybody out: keep the last good users
                    # (and try again next time, as the stamp is left as it was).
                    if self._stamp is None:
                        raise
                    return self._users
                self._stamp = stamp
            return self._users

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsersFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        # A rename gives a new inode even when two writes land within the clock's resolution.
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UsersFileError(f"users file {self.path} cannot be read: {exc}") from None
        if not isinstance(data, dict) or not all(
            isinstance(entry, dict) and {"role", "password_hash", "created_at"} <= entry.keys()
            for entry in data.values()
        ):
            raise UsersFileError(
                f"users file {self.path} must map names to {{role, password_hash, created_at}}"
            )
        return data

    @contextlib.contextmanager
    def _writing(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read-modify-write under a lock file, so concurrent `workermon user` runs lose no change."""
        # Created owner-only; an existing directory (the data directory, or one configured) is left as
        # it is here: the suite tightens its data directory at start.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, _file_lock(lock_path):
            users = {name: dict(entry) for name, entry in self._read().items()}
            yield users
            self._write(users)
            self._users = users
            self._stamp = self._file_stamp()

    def _write(self, users: dict[str, dict[str, Any]]) -> None:
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(users, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
