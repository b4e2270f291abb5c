"""Route config of the filesystem backend."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FilesystemConfig(BaseModel):
    """Route config of the filesystem backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = Field(description="Folder holding the store; created if missing.")
