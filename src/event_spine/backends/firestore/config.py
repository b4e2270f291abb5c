"""Route config of the Firestore backend."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

MIB: Final = 1024 * 1024


class FirestoreConfig(BaseModel):
    """Route config of the Firestore backend (no credentials: the SDK's default chain)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str | None = Field(default=None, description="None: from the environment.")
    database: str = "(default)"
    collection_prefix: str = Field(default="spine_", pattern=r"^[A-Za-z0-9_-]{0,100}$")
    timeout_s: float = Field(default=10.0, gt=0, description="Deadline of one RPC attempt.")
    retry_timeout_s: float = Field(default=30.0, ge=0, description="Retrying, per call.")
    # Below the 1 MiB document limit with room for the document name and other fields.
    max_inline_bytes: int = Field(default=1_000_000, ge=65_536, le=1_000_000)
    max_commit_writes: int = Field(default=500, ge=1, le=500)
    # The request limit is 10 MiB; keep a margin for names and encoding.
    max_commit_bytes: int = Field(default=9 * MIB, ge=MIB, le=10 * MIB - 512 * 1024)
    concurrency: int = Field(default=8, ge=1, le=64, description="Parallel RPCs per call.")
