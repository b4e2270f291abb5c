"""One kill -9 under load, instrumented end to end: where the seconds to the first write go.

``python -m benchmarks.recovery_timeline [--config ours] [--kill a|b|leader|follower]``

The setting of ``spine bench recovery`` (two worker processes on a 6-partition topic,
500 events/s, Tansu), one kill. Both workers and the replacement write aiokafka's and
event-spine's DEBUG lines with wall-clock times (every request and response to the
broker, the group callbacks); the broker logs its group coordinator. After the
replacement has written and committed, the lines are merged into one timeline, in
seconds from the kill, and the phases of the recovery are computed from it:

kill -> replacement process started -> imports done -> first request to the broker ->
predecessor handled (LeaveGroup or takeover) -> survivor told to rebalance -> JoinGroup
(sent -> answered: the broker's hold) -> SyncGroup -> partitions assigned -> committed
offsets fetched -> first fetch -> first record handled -> first store write -> commit.

Writes ``<date>-recovery-timeline-<config>-<kill>.json`` into
``benchmarks/results/recovery-timeline/`` (or ``--out``) and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, log, machine_info
from benchmarks.pipeline import PARTITIONS, new_topic, registry_to
from benchmarks.procs import WorkerProcess, merged_committed, wait_assigned
from benchmarks.recovery import _load, configs
from event_spine.broker.tansu import TansuBroker

#: The broker's group coordinator at INFO: expired members, elected leaders.
TANSU_LOG = "warn,tansu_broker::coordinator::group::administrator=info"
_LINE = re.compile(r"^(?P<t>\d+\.\d+) (?P<logger>\S+) (?P<level>\S+) (?P<msg>.*)$")
_WIRE = re.compile(
    r"^(?P<dir>Request to|Response from) \S+ (?P<cid>\d+): (?P<kind>\w+?)_v\d+\((?P<body>.*)"
)
_TANSU = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z)\s+(?P<level>\w+)\s+(?P<rest>.*)$"
)
#: Requests that are part of every worker's steady state: only the ones that matter
#: to the recovery are kept (see ``_keep``).
_GROUP_KINDS = (
    "DescribeGroups",
    "LeaveGroup",
    "FindCoordinator",
    "JoinGroup",
    "SyncGroup",
    "OffsetFetch",
)
_CALLBACKS = (
    "Revoking previously assigned partitions",
    "Setting newly assigned partitions",
    "Elected group leader",
    "because it is rebalancing",
    "removed ",
    "took over",
    "(Re-)joining group",
    "process started at",
    "imports done at",
)


@dataclass(frozen=True)
class Event:
    """One line of the timeline."""

    t_s: float  # seconds from the kill
    who: str  # replacement, survivor, broker, bench
    what: str


def _fields(body: str, *names: str) -> str:
    found = []
    for name in names:
        m = re.search(rf"\b{name}=('[^']*'|[^,)]*)", body)
        if m:
            found.append(f"{name}={m.group(1)}")
    return " ".join(found)


class _WorkerLog:
    """Turns one worker's DEBUG lines into events (state: what was seen already)."""

    def __init__(self, who: str, since: float) -> None:
        self.who, self.since = who, since
        self.events: list[Event] = []
        self.after_sync = False
        self.heartbeats = 0
        self.seen: set[str] = set()

    def add(self, t: float, what: str) -> None:
        if t >= self.since:
            self.events.append(Event(t - self.since, self.who, what))

    def once(self, t: float, key: str, what: str) -> None:
        if key not in self.seen and t >= self.since:
            self.seen.add(key)
            self.add(t, what)

    def line(self, t: float, msg: str) -> None:
        mark = re.match(r"(process started|imports done) at (\d+\.\d+)(.*)", msg)
        if mark:
            self.add(float(mark[2]), mark[1] + mark[3])
        elif (wire := _WIRE.match(msg)) is not None:
            self.wire(t, wire["kind"], wire["body"], "->" if wire["dir"] == "Request to" else "<-")
        elif any(key in msg for key in _CALLBACKS):
            self.add(t, msg[:160])

    def wire(self, t: float, kind: str, body: str, arrow: str) -> None:
        if kind.startswith(_GROUP_KINDS):
            detail = _fields(body, "member_id", "generation_id", "error_code", "leader_id")
            self.add(t, f"{arrow} {kind} {detail}")
            self.after_sync = self.after_sync or kind.startswith("SyncGroupResponse")
        elif kind.startswith("Heartbeat"):
            code = _fields(body, "error_code")
            if (arrow == "<-" and code != "error_code=0") or self.heartbeats < 2:
                self.add(t, f"{arrow} {kind} {code}")
                self.heartbeats += t >= self.since
        elif kind.startswith("FetchRequest") and self.after_sync:
            self.add(t, "-> first Fetch after the assignment")
            self.after_sync = False
        elif kind.startswith("Metadata") and arrow == "->" and self.who == "replacement":
            self.once(t, "metadata", "-> Metadata (first request)")
        elif kind.startswith("OffsetCommit"):
            code = _fields(body, "error_code") if arrow == "<-" else ""
            self.once(t, f"commit{arrow}", f"{arrow} {kind} (first) {code}")


def parse_worker_log(path: Path, who: str, since: float) -> list[Event]:
    """The events of one worker's DEBUG file at or after wall time ``since``."""
    parsed = _WorkerLog(who, since)
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m is not None:
            parsed.line(float(m["t"]), m["msg"])
    return parsed.events


_SPAN_CLOSED = re.compile(
    r"^(?P<span>join|sync|leave)\{(?P<fields>[^}]*)\}: \S+administrator: \d+: close "
    r"time\.busy=(?P<busy>\S+) time\.idle=(?P<idle>\S+)"
)
_KEEP = ("missed heartbeat", "eviction of", "__self.generation_id=")


def _short(fields: str) -> str:
    return re.sub(r'group_id="[^"]*" ?', "", fields).replace('"', "")


def parse_tansu_log(path: Path, since: float) -> list[Event]:
    """The broker's group coordinator at or after wall time ``since``: each JoinGroup,
    SyncGroup and LeaveGroup it answered (with how long it held the request: the span's
    idle time), evictions, elected leaders."""
    events = []
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    for raw in path.read_text(errors="replace").splitlines():
        m = _TANSU.match(ansi.sub("", raw).strip())
        if m is None:
            continue
        t = dt.datetime.fromisoformat(m["ts"].replace("Z", "+00:00")).timestamp()
        if t < since:
            continue
        rest = m["rest"]
        closed = _SPAN_CLOSED.match(rest)
        if closed is not None:
            what = f"answered {closed['span']} {_short(closed['fields'])} (held {closed['idle']})"
            events.append(Event(t - since, "broker", what))
        elif any(key in rest for key in _KEEP):
            text = re.sub(r"^.*administrator: \d+: ", "", rest)
            events.append(
                Event(t - since, "broker", text.replace("__self.", "elected leader, ")[:160])
            )
    return events


def state_events(worker: WorkerProcess, who: str, since: float, wall: float) -> list[Event]:
    """The worker's own progress (monotonic clock, shared by the processes)."""
    events = []
    for key, what in (
        ("assigned_at", "worker: owns partitions"),
        ("first", "worker: first records handed to the handler"),
        ("first_write", "worker: FIRST STORE WRITE"),
    ):
        value = worker.state.get(key)
        if value is not None and value + wall >= since:
            events.append(Event(value + wall - since, who, what))
    committed = worker.first_seen.get("committed")
    if committed is not None and committed + wall >= since:
        events.append(Event(committed + wall - since, who, "worker: first commit acknowledged"))
    return events


def leader_slot(logs: dict[str, Path]) -> str | None:
    """The slot whose worker was elected group leader last."""
    last: tuple[float, str] | None = None
    for slot, path in logs.items():
        for line in path.read_text(errors="replace").splitlines():
            m = _LINE.match(line)
            if m and "Elected group leader" in m["msg"]:
                t = float(m["t"])
                if last is None or t > last[0]:
                    last = (t, slot)
    return last[1] if last else None


async def one_kill(
    config: str, kill: str, workdir: Path, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the scenario; return the timeline document."""
    config_fields = configs()[config] | (overrides or {})
    broker = TansuBroker(env={"RUST_LOG": TANSU_LOG}, log_path=workdir / "tansu.log")
    with broker:
        bootstrap = broker.bootstrap_servers
        topic = await new_topic(bootstrap, "bench-recovery-timeline")
        registry_db = workdir / "registry.db"
        registry = await registry_to(registry_db, "sqlite", {"path": str(workdir / "store.db")})
        await registry.store.close()
        group = f"bench-recovery-timeline-{os.getpid()}"
        logs = {slot: workdir / f"{slot}.log" for slot in ("a", "b")}

        def worker(slot: str, log_file: Path) -> WorkerProcess:
            sink = {
                k: (v.format(slot=slot) if isinstance(v, str) else v)
                for k, v in config_fields.items()
            }
            return WorkerProcess(
                bootstrap, topic, group, registry_db, 0, sink=sink, log_file=log_file
            )

        stop = asyncio.Event()
        load = asyncio.ensure_future(_load(bootstrap, topic, 500, stop))
        workers = {slot: worker(slot, logs[slot]) for slot in ("a", "b")}
        try:
            for w in workers.values():
                await w.start()
            await wait_assigned(list(workers.values()), PARTITIONS, 60)
            await asyncio.sleep(3.0)  # a steady state: both writing, heartbeats flowing
            await wait_assigned(list(workers.values()), PARTITIONS, 60)
            leader = leader_slot(logs)
            if kill in ("a", "b"):
                slot = kill
            else:
                if leader is None:
                    raise RuntimeError("recovery timeline: no worker log names a group leader")
                slot = leader if kill == "leader" else ("b" if leader == "a" else "a")
            survivor_slot = "b" if slot == "a" else "a"
            before = merged_committed(list(workers.values()))
            killed_wall, killed_mono = time.time(), time.monotonic()
            workers[slot].kill()
            await workers[slot].stop()
            replacement_log = workdir / f"{slot}-replacement.log"
            spawned = time.time()
            workers[slot] = worker(slot, replacement_log)
            await workers[slot].start()
            deadline = time.monotonic() + 60
            replacement = workers[slot]
            while not (replacement.state.get("first_write") and replacement.state.get("committed")):
                if time.monotonic() > deadline:
                    raise TimeoutError("no first write and commit within 60 s of the kill")
                await asyncio.sleep(0.01)
            every = None
            while every is None and time.monotonic() < deadline:
                now = merged_committed(list(workers.values()))
                if all(now.get(q, 0) > before.get(q, 0) for q in range(PARTITIONS)):
                    every = time.monotonic() - killed_mono
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.0)
        finally:
            stopping = time.time()  # what the workers log from here on is their shutdown
            for w in workers.values():
                await w.stop()
            stop.set()
            await load
    wall = killed_wall - killed_mono
    events = [
        Event(0.0, "bench", f"kill -9 of slot {slot} (group leader: {leader})"),
        Event(spawned - killed_wall, "bench", "replacement spawned"),
        *parse_worker_log(replacement_log, "replacement", killed_wall),
        *parse_worker_log(logs[survivor_slot], "survivor", killed_wall),
        *parse_tansu_log(workdir / "tansu.log", killed_wall),
        *state_events(workers[slot], "replacement", killed_wall, wall),
        *state_events(workers[survivor_slot], "survivor", killed_wall, wall),
    ]
    events = sorted((e for e in events if e.t_s <= stopping - killed_wall), key=lambda e: e.t_s)
    first_write = float(replacement.state["first_write"]) - killed_mono
    return {
        "config": config,
        "config_fields": config_fields,
        "killed": slot,
        "killed_was_leader": slot == leader,
        "first_write_s": round(first_write, 3),
        "every_partition_s": None if every is None else round(every, 3),
        "events": [asdict(e) | {"t_s": round(e.t_s, 3)} for e in events],
    }


def render(doc: dict[str, Any]) -> str:
    """The timeline as a text table."""
    lines = [
        f"config {doc['config']} {doc['config_fields']}; killed slot {doc['killed']} "
        f"(leader: {doc['killed_was_leader']}); first write {doc['first_write_s']} s, "
        f"every partition {doc['every_partition_s']} s; load {doc.get('loadavg')}",
    ]
    lines += [f"{e['t_s']:8.3f}  {e['who']:<11} {e['what']}" for e in doc["events"]]
    return "\n".join(lines)


def main() -> None:
    """Run one instrumented kill and write its timeline."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="ours", choices=sorted(configs()))
    parser.add_argument("--kill", default="follower", choices=["a", "b", "leader", "follower"])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "recovery-timeline")
    parser.add_argument("--keep", type=Path, help="Keep the raw logs in this folder.")
    parser.add_argument(
        "--set",
        default="{}",
        help="More SinkSettings fields (JSON), e.g. '{\"session_timeout_ms\": 10000}'.",
    )
    args = parser.parse_args()
    overrides = json.loads(args.set)
    machine = machine_info()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        doc = asyncio.run(one_kill(args.config, args.kill, args.keep, overrides))
    else:
        with tempfile.TemporaryDirectory(prefix="spine-recovery-timeline-") as tmp:
            doc = asyncio.run(one_kill(args.config, args.kill, Path(tmp), overrides))
    doc["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    doc["machine"] = machine
    text = render(doc)
    log(f"recovery timeline\n{text}")
    args.out.mkdir(parents=True, exist_ok=True)
    day = dt.date.today().isoformat()
    path = args.out / f"{day}-recovery-timeline-{args.config}-{args.kill}.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
