"""Route config of the sqlite backend."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SqliteConfig(BaseModel):
    """Route config of the sqlite backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Database file; created with its folder if missing.")
    # FULL fsyncs every commit: offsets are committed only after a durable write.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: int = Field(default=30_000, ge=0)
    inline_reads: bool = Field(
        default=True,
        description="list_after reads on the caller's thread through a read connection of "
        "its own, instead of a hop to the database thread that cost more than the read "
        "(benchmarks/results/PROFILE.md, round 3); the event loop waits for the page (on a "
        "cold cache, for the disk). A busy file falls back to the hop. False: every call "
        "on the database thread.",
    )
    type_index: bool = Field(
        default=True,
        description="Keep the events_by_type index (fast queries by event type and "
        "counts per type; costs write throughput, see Queries below). False: not "
        "created (an existing one is kept: drop it by hand); queries stay correct.",
    )
