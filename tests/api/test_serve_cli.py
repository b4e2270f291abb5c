"""`spine serve` as users run it: a process, its flags, its errors."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from event_spine.broker.tansu import free_port
from support.api import A, make_key
from support.cli import invoke
from support.pipeline import new_topic, registry_at, route_to_sqlite
from support.waiting import wait_until


async def test_serve_process_answers_and_stops_on_sigterm(broker, tmp_path: Path) -> None:
    topic = await new_topic(broker.bootstrap_servers)
    registry = await registry_at(tmp_path / "registry.db")
    await route_to_sqlite(registry, A, tmp_path / "events.db")
    await registry.store.close()
    _, token = await make_key(tmp_path / "registry.db", A.scope)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "event_spine.cli.main", "serve", "--registry",
         f"sqlite:{tmp_path / 'registry.db'}", "--bootstrap", broker.bootstrap_servers,
         "--topic", topic, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/v1/openapi.json")).status_code == 200
                except httpx.TransportError:
                    assert proc.poll() is None, proc.communicate()
                    return False

            await wait_until(up, 60, message="spine serve to answer")
            emitted = await http.post(
                "/v1/events",
                json={"event_type": "order.placed", "stream_id": "orders/x", "payload": {}},
            )
            assert emitted.status_code == 202, emitted.text
            # A live stream open at the stop must not hold the shutdown.
            async with http.stream("GET", "/v1/streams/orders/x/live?from=start") as live:
                lines = live.aiter_lines()
                async for line in lines:
                    if line.startswith("id: "):
                        break  # the emitted event arrived: the stream is live
                proc.send_signal(signal.SIGTERM)
                rest = [line async for line in lines]  # the stream ends, it does not hang
            assert not any(line.startswith("event: problem") for line in rest)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, err


async def test_serve_and_keys_refuse_bad_registries(tmp_path: Path) -> None:
    missing = await asyncio.to_thread(
        invoke, ["serve", "--registry", f"sqlite:{tmp_path / 'none.db'}", "--bootstrap", "x:1"]
    )
    assert missing.code == 3
    assert "No routing registry" in missing.err
    assert "Traceback" not in missing.err
    folder = tmp_path / "fsreg"
    folder.mkdir()
    unsupported = await asyncio.to_thread(
        invoke, ["keys", "list", "--registry", f"filesystem:{folder}"]
    )
    assert unsupported.code == 3
    assert "SQLite or PostgreSQL" in unsupported.err
