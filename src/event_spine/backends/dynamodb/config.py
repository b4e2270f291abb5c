"""Route config of the DynamoDB backend."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_TABLE_NAME = r"^[A-Za-z0-9_.-]{3,255}$"


class DynamoConfig(BaseModel):
    """Route config of the DynamoDB backend (no credentials: the SDK chain provides them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events_table: str = Field(default="spine_events", pattern=_TABLE_NAME)
    registry_table: str = Field(default="spine_routes", pattern=_TABLE_NAME)
    tabular_table: str = Field(default="spine_rows", pattern=_TABLE_NAME)
    region: str | None = Field(default=None, description="None: the SDK's default region.")
    endpoint_url: str | None = Field(default=None, description="DynamoDB Local, for tests.")
    create_tables: bool = Field(default=False, description="Create missing tables (dev only).")
    max_attempts: int = Field(default=3, ge=1, le=20, description="SDK attempts per call.")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    max_concurrency: int = Field(default=16, ge=1, le=256, description="Batch calls in flight.")
    unprocessed_retries: int = Field(default=8, ge=0, le=30)
    backoff_base_s: float = Field(default=0.05, gt=0)
    backoff_cap_s: float = Field(default=2.0, gt=0)
