"""Log configuration changes into the scope's one ordered tuning log."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _local_spine import local_spine

from event_spine import RequestContext, StoredEvent, request_context
from event_spine.emitters import emit_tuning_log


async def main(bootstrap_servers: str, workdir: Path) -> list[StoredEvent]:
    ctx = RequestContext(
        tenant_id="t_acme",
        env="staging",
        mode="enterprise",
        project_id="p_search",
        user_id="u_ops",
    )
    async with local_spine(bootstrap_servers, workdir, ctx) as spine:
        # ctx=None takes the context set for this task with request_context().
        with request_context(ctx):
            emit_tuning_log(
                None,
                "cfg-41",
                "top_k 20 -> 40 after the recall regression",
                previous_version="cfg-40",
                parameters={"top_k": 40},
                producer=spine.producer,
            )
        events = await spine.read(ctx, "tuning/log", 1)
    print(events[0].record.payload["change_description"])
    return events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else ".")))
