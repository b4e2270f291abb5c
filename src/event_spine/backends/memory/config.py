"""Route config of the memory backend."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class MemoryConfig(BaseModel):
    """The memory backend takes no settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")
