"""RecordAges: per-record ages counted in bulk, exposed as a Prometheus histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from event_spine.kafka.records import MemoryRecord
from event_spine.observability.ages import BUCKETS_S, RecordAges

NOW_S = 1_800_000_000.0


def records(*ages_ms: float) -> list[MemoryRecord]:
    return [
        MemoryRecord("t", 0, i, b"k", b"v", (), int(NOW_S * 1000 - age))
        for i, age in enumerate(ages_ms)
    ]


def test_each_record_lands_in_its_bucket_cumulatively_with_the_sum() -> None:
    ages = RecordAges()
    ages.observe("received", records(1, 5, 7, 400, 1_000_000), now_s=NOW_S)
    ages.observe("durable", records(30), now_s=NOW_S)
    (family,) = ages.families("spine_sink_record_age_seconds", "doc", "events")
    received = {
        s.labels["le"]: s.value
        for s in family.samples
        if s.name.endswith("_bucket") and s.labels["stage"] == "received"
    }
    assert received["0.005"] == 2  # 1 ms and exactly 5 ms (le is inclusive)
    assert received["0.01"] == 3
    assert received["0.3"] == 3
    assert received["0.5"] == 4
    assert received["300.0"] == 4  # 1,000 s is past the last bound
    assert received["+Inf"] == 5
    sums = {s.labels["stage"]: s.value for s in family.samples if s.name.endswith("_sum")}
    assert abs(sums["received"] - 1000.413) < 1e-6
    assert abs(sums["durable"] - 0.03) < 1e-9
    assert sum(ages.snapshot()["durable"]) == 1
    assert len(received) == len(BUCKETS_S) + 1


def test_the_exposition_is_a_valid_histogram() -> None:
    ages = RecordAges()
    ages.observe("durable", records(20, 70), now_s=NOW_S)

    class One(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            yield from ages.families("spine_sink_record_age_seconds", "doc", "events")

    registry = CollectorRegistry()
    registry.register(One())
    text = generate_latest(registry).decode()
    assert 'spine_sink_record_age_seconds_count{stage="durable",topic="events"} 2.0' in text
    assert (
        'spine_sink_record_age_seconds_bucket{le="0.05",stage="durable",topic="events"} 1.0' in text
    )
