"""Route config of the postgres backend."""

from __future__ import annotations

from typing import Self
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class PostgresConfig(BaseModel):
    """Route config of the postgres backend. Credentials come from the libpq env."""

    # hide_input_in_errors: a mistaken password in `dsn` must not reach the logs.
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, hide_input_in_errors=True
    )

    dsn: str = Field(description="postgresql://user@host:port/db?sslmode=... (no password here)")
    db_schema: str = Field(default="public", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    # At most 40 characters: with the longest suffix ("events_by_stream") a name
    # stays within PostgreSQL's 63-byte identifiers.
    table_prefix: str = Field(default="spine_", pattern=r"^[a-z0-9_]{0,40}$")
    min_pool_size: int = Field(default=1, ge=0)
    max_pool_size: int = Field(default=10, ge=1)
    command_timeout_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    # 0 disables prepared-statement caching (needed behind PgBouncer transaction mode).
    statement_cache_size: int = Field(default=100, ge=0)

    @field_validator("dsn")
    @classmethod
    def _no_secret_in_dsn(cls, dsn: str) -> str:
        parts = urlsplit(dsn)
        if parts.scheme not in {"postgres", "postgresql"}:
            raise ValueError("`dsn` must be a postgresql:// URL")
        if parts.password is not None or "password" in parse_qs(parts.query):
            raise ValueError("`dsn` must not contain a password: set PGPASSWORD or use ~/.pgpass")
        return dsn

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.min_pool_size > self.max_pool_size:
            raise ValueError("`min_pool_size` must not exceed `max_pool_size`")
        return self

    def table(self, name: str) -> str:
        """The quoted, schema-qualified name of one of the backend's tables."""
        return f'"{self.db_schema}"."{self.table_prefix}{name}"'

    def where(self, name: str) -> str:
        """Where a table lives, for messages (never holds a secret: see the validator)."""
        parts = urlsplit(self.dsn)
        server = (parts.netloc.rpartition("@")[2] or "local socket") + parts.path
        return f"PostgreSQL table {self.db_schema}.{self.table_prefix}{name} on {server}"
