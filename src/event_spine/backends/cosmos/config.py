"""Route config of the cosmos backend."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

_NAME: Final = r"^[^/\\?#]{1,255}$"  # Cosmos resource ids


class CosmosConfig(BaseModel):
    """Route config of the cosmos backend. The account key is never part of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = Field(pattern=r"^https?://", description="Account URL (or an emulator's).")
    database: str = Field(pattern=_NAME)
    events_container: str = Field(default="spine_events", pattern=_NAME)
    registry_container: str = Field(default="spine_routes", pattern=_NAME)
    tabular_container: str = Field(default="spine_rows", pattern=_NAME)
    # Creating needs the account key (Entra ID data-plane roles cannot): else provision first.
    create_if_missing: bool = Field(default=True, description="Create database/containers.")
    key_env: str = Field(default="COSMOS_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Only for an emulator's self-signed certificate; production always verifies.
    verify_tls: bool = True
    request_timeout_s: float = Field(default=30.0, gt=0)
    # The SDK retries 429s itself, honouring x-ms-retry-after-ms, up to these bounds.
    throttle_retries: int = Field(default=9, ge=1)
    throttle_max_wait_s: int = Field(default=30, ge=1)
    max_concurrency: int = Field(default=16, ge=1, le=256)
    transactional_batch: bool = Field(default=True, description="False: single creates only.")
