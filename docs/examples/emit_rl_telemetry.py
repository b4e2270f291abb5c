"""Report rewards of one model version: its own stream, `rl/<model_version>`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _local_spine import local_spine

from event_spine import RequestContext, StoredEvent
from event_spine.emitters import emit_rl_telemetry


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(
        tenant_id="t_acme", env="dev", mode="lab", project_id="p_ranker", run_id="run-17"
    )
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        for step, reward in enumerate([0.1, 0.4, 0.55]):
            emit_rl_telemetry(
                ctx,
                "ranker-2024.06",
                reward,
                {"arm": "b", "latency_ms": 41},
                episode_id="ep-9",
                step=step,
                producer=spine.producer,
            )
        events = await spine.read(ctx, "rl/ranker-2024.06", 3)
    print([e.record.payload["reward"] for e in events])  # in emit order
    return events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
