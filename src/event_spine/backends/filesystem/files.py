"""Paths and durable file writes shared by the filesystem stores.

Every id that becomes a path component is checked against its format, and the
joined path must stay under the store's root: a hostile id cannot escape it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from event_spine.backends.base import ScopeKey
from event_spine.errors import EventValidationError, StoreUnavailable
from event_spine.schemas.formats import ENVS, MODES, PROJECT_ID_RE, TENANT_ID_RE


def _checked_scope(scope: ScopeKey) -> ScopeKey:
    tenant, env, mode, project = scope
    for field, ok in (
        ("tenant_id", TENANT_ID_RE.match(tenant)),
        ("env", env in ENVS),
        ("mode", mode in MODES),
        ("project_id", PROJECT_ID_RE.match(project)),
    ):
        if not ok:
            raise EventValidationError(field, "not a valid id: refused as a path component")
    return scope


def _checked(field: str, value: str, pattern: Any) -> str:
    if not pattern.match(value):
        raise EventValidationError(field, "not a valid id: refused as a path component")
    return value


def _inside(root: Path, path: Path) -> Path:
    """The last guard: whatever the checks above allowed must stay under root."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise EventValidationError("id", f"path {str(path)!r} would leave the store's root")
    return path


def _append_durably(path: Path, data: bytes) -> None:
    if not data:
        return
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _replace_durably(path: Path, data: bytes, *, fsync: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    tmp.replace(path)
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (two sink workers may share a folder)."""
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _mapped_errors(root: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"Filesystem store {str(root)!r} is unavailable: {exc}") from exc
